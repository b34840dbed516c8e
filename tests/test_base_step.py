"""The base step loop's fast paths keep torch.optim / documented behaviour: the non-finite check is exact (an
overflowing sum of finite values is not a NaN), counters advance together, mixed dtypes share a group, and the
compiled path's scalar hoisting changes no values."""

from __future__ import annotations

import math

import pytest
import torch

import optimlab
from optimlab.optim import _base


def _param(values, dtype=torch.float32, grad=None):
    p = torch.tensor(values, dtype=dtype, requires_grad=True)
    p.grad = torch.tensor(grad if grad is not None else [0.5] * len(values), dtype=dtype)
    return p


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_skip_leaves_a_nonfinite_gradients_param_and_state_alone(bad):
    good, poisoned = _param([1.0, 2.0]), _param([3.0, 4.0], grad=[0.1, bad])
    opt = optimlab.AdamW([good, poisoned], lr=0.1)
    opt.step()
    assert torch.equal(poisoned.detach(), torch.tensor([3.0, 4.0]))
    state = opt.state[poisoned]  # created lazily, but neither advanced nor updated
    assert state["step"].item() == 0 and not state["exp_avg"].any() and not state["exp_avg_sq"].any()
    assert not torch.equal(good.detach(), torch.tensor([1.0, 2.0]))
    assert opt.param_groups[0]["nonfinite_skips"] == 1
    with pytest.raises(FloatingPointError):
        optimlab.AdamW([_param([1.0], grad=[bad])], nonfinite="raise").step()


def test_finite_gradients_whose_sum_overflows_are_not_skipped():
    big = 3e38  # finite in fp32; the sum of two is inf
    p_skip, p_prop = _param([1.0, 2.0], grad=[big, big]), _param([1.0, 2.0], grad=[big, big])
    assert not torch.isfinite(p_skip.grad.sum())
    opt_skip, opt_prop = optimlab.AdamW([p_skip]), optimlab.AdamW([p_prop], nonfinite="propagate")
    for _ in range(3):
        opt_skip.step()
        opt_prop.step()
    assert opt_skip.param_groups[0]["nonfinite_skips"] == 0
    assert torch.equal(p_skip, p_prop) and torch.equal(opt_skip.state[p_skip]["step"], torch.tensor(3.0))
    assert _base.Optimizer._finite_mask([torch.tensor([big, big]), torch.tensor([big, -math.inf])]) == [True, False]
    assert _base.Optimizer._finite_mask([torch.tensor([math.nan])]) == [False]


def test_mixed_dtypes_in_one_group_match_separate_optimizers():
    a32, a64 = _param([1.0, -2.0], grad=[0.3, -0.2]), _param([0.5], torch.float64, grad=[0.7])
    b32, b64 = (p.detach().clone().requires_grad_(True) for p in (a32, a64))
    b32.grad, b64.grad = a32.grad.clone(), a64.grad.clone()
    together = optimlab.Adam([a32, a64], lr=0.1)
    alone = [optimlab.Adam([b32], lr=0.1), optimlab.Adam([b64], lr=0.1)]
    for _ in range(4):
        together.step()
        for o in alone:
            o.step()
    assert torch.equal(a32, b32) and torch.equal(a64, b64)
    assert together.state[a32]["step"].item() == together.state[a64]["step"].item() == 4.0


def test_eager_step_counters_match_torch_after_a_skip():
    """A skipped parameter's counter lags; each tensor's update uses its own counter (as torch.optim does)."""
    p, q = _param([1.0]), _param([2.0])
    tp, tq = (x.detach().clone().requires_grad_(True) for x in (p, q))
    opt, ref = optimlab.Adam([p, q], lr=0.1), torch.optim.Adam([tp, tq], lr=0.1, foreach=False)
    for t in range(5):
        p.grad = torch.tensor([math.nan if t == 1 else 0.3 * (t + 1)])
        q.grad = torch.tensor([0.2 - 0.1 * t])
        opt.step()
        tq.grad = q.grad.clone()
        if t == 1:
            tp.grad = None  # torch has no skip: leave p out of that step
        else:
            tp.grad = p.grad.clone()
        ref.step()
    assert opt.state[p]["step"].item() == 4.0 and opt.state[q]["step"].item() == 5.0
    torch.testing.assert_close(p, tp, rtol=0, atol=1e-7)
    torch.testing.assert_close(q, tq, rtol=0, atol=1e-7)


@pytest.mark.compile
def test_scalar_hoisting_marks_libm_chains_only_and_keeps_values():
    """The graph pass wraps 0-d results of pow/sqrt chains feeding full-size ops, nothing else."""
    import torch._dynamo

    seen = {}

    def backend(gm, example_inputs):
        seen["count"] = _base._hoist_scalars(gm)
        seen["graph"] = gm
        return gm.forward

    def update(p, g, m, step, lr, beta):
        step += 1
        m.mul_(beta).add_(g * (1 - beta))  # cheap scalar: stays inlined
        p.add_(m * (-lr / (1 - beta**step)))  # libm chain: hoisted
        p.mul_(step.sqrt())  # libm on the counter: hoisted

    torch._dynamo.reset()
    args = lambda: (  # noqa: E731
        torch.linspace(-1, 1, 7),
        torch.linspace(0.5, -0.5, 7),
        torch.full((7,), 0.1),
        torch.tensor(2.0),
        torch.tensor(0.01, dtype=torch.float64),
        torch.tensor(0.9, dtype=torch.float64),
    )
    eager, compiled = args(), args()
    update(*eager)
    torch.compile(update, backend=backend, dynamic=False)(*compiled)
    assert seen["count"] == 2
    hoisted = [n for n in seen["graph"].graph.nodes if n.target is torch.as_strided]
    assert len(hoisted) == 2
    for x, y in zip(eager, compiled):
        assert torch.equal(x, y)
