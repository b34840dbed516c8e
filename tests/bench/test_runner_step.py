"""The runner's step and memory column are the library's: ``runner.train_step`` is ``optimlab.training.train_step``
with the handle's needs and counting, and a trial's ``state_bytes`` is ``optimlab.state_bytes`` (wrappers included)."""

from __future__ import annotations

import math

import torch

import optimlab
from optimlab import training
from optimlab.bench import adapters, runner
from optimlab.bench import workloads as W


def test_a_wrappers_trial_counts_the_state_of_its_base():
    """SAM holds its base's (AdamW's) moments; the runner used to read ``state_dict()``, which a wrapper's does
    not include, and stored 0 bytes. Now it is the registry's analytic formula, summed over the parameters."""
    for name in ("sam", "adamw"):
        result = runner.run_trial(runner.TrialSpec(name, "quad_noisy", smoke=True))
        assert result.status in ("hit", "miss"), result.error
        params = list(W.get("quad_noisy").build(0, smoke=True).model.parameters())
        expected = sum(optimlab.spec(name).state_bytes(tuple(p.shape), p.dtype) for p in params)
        assert result.state_bytes == expected > 0, name


def test_a_foreign_closure_optimizer_steps_with_the_handles_needs():
    """torch.optim.LBFGS does not say it needs a closure (the adapters know it does): the handle's needs are passed
    to ``training.train_step``, and every evaluation of the closure is one counted gradient evaluation."""
    h = adapters.resolve("torch:LBFGS")
    assert h.requires_closure and not training.capabilities(torch.optim.LBFGS).closure
    task = W.get("quad_noisy").build(0, smoke=True)
    opt = adapters.build_optimizer(h, runner.make_param_groups(task, h), {"lr": 0.1, "max_iter": 4})
    calls = []
    loss = task.loss
    task.loss = lambda batch: calls.append(1) or loss(batch)
    before = [p.detach().clone() for p in task.model.parameters()]
    with runner.step_counter(h) as counter:
        value, grads = runner.train_step(task, opt, h, counter, task.next_batch())
    assert math.isfinite(value) and grads == len(calls) >= 2
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, task.model.parameters()))


class _NeverEvaluates(torch.optim.SGD):
    requires_closure = True

    def step(self, closure=None):
        return None


def test_train_step_is_nan_when_the_closure_never_ran():
    """What the runner's own step returned before it was folded into ``training.train_step``."""
    p = torch.zeros(2, requires_grad=True)
    loss = training.train_step(_NeverEvaluates([p], lr=0.1), lambda: (p**2).sum())
    assert math.isnan(float(loss))
