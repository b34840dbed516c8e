"""Every workload runs a few smoke steps with every registered algorithm (closure, HVP and logits ones included;
a logits optimizer on a workload without logits is "not applicable"), and the workloads' data and model definitions
are fixed and deterministic."""

from __future__ import annotations

import math

import pytest
import torch

import optimlab
from optimlab.bench import adapters, runner
from optimlab.bench import workloads as W
from optimlab.training import capabilities

from ._toys import ToyHutchinson, ToySAM, handle

WORKLOADS = [w.id for w in W.all_workloads()]


def _check(result: runner.TrialResult, workload_id: str) -> None:
    assert result.status in ("hit", "miss", "diverged"), result.error
    assert result.steps >= 1
    curve = result.curve
    n = len(curve["step"])
    assert n >= 2 and all(len(v) == n for v in curve.values())
    assert curve["step"][0] == 0 and curve["step"] == sorted(curve["step"])
    assert result.grad_evals >= result.steps
    assert result.train_time > 0
    assert result.param_bytes > 0
    if result.status != "diverged":
        assert math.isfinite(result.final_metric)


@pytest.mark.parametrize("algorithm", optimlab.available())
@pytest.mark.parametrize("workload", WORKLOADS)
def test_smoke_every_algorithm_on_every_workload(workload, algorithm):
    result = runner.run_trial(runner.TrialSpec(algorithm, workload, seed=0, smoke=True))
    if runner.not_applicable(adapters.resolve(algorithm), W.get(workload)):
        # Sophia-G on a loss without logits, ImbSAM anywhere (no class-imbalanced workload): not run, recorded
        # clearly (and left out of every plan: test_tuning)
        needs = capabilities(optimlab.spec(algorithm))
        if needs.head_tail:
            assert result.error.startswith(f"not applicable: {algorithm} needs head/tail class-split losses")
        else:
            assert needs.logits and not W.get(workload).provides_logits
            assert result.error.startswith(f"not applicable: {algorithm} needs the model's logits"), result.error
        assert result.status == "error" and result.steps == 0 and result.grad_evals == 0
        return
    _check(result, workload)
    assert result.state_bytes >= 0
    if capabilities(optimlab.spec(algorithm)).logits:
        # fed (loss, logits): the Gauss-Newton-Bartlett refresh at step 1 adds one counted gradient evaluation
        assert result.state_bytes > 0 and result.hvp_evals == 0
        assert result.grad_evals == result.steps + 1


def test_sophia_g_is_fed_logits_and_its_sampled_label_backward_counts():
    """update_period 2: refreshes at steps 1 and 3, each one extra gradient evaluation (the backward of labels
    sampled from the logits); the Hessian EMA is filled and the weights move. (Sequence logits (batch, time, vocab):
    charlm_gpt in the smoke matrix above.)"""
    h = adapters.resolve("sophia_g")
    assert h.requires_logits and h.requires_closure and not h.requires_hvp
    task = W.get("mlp_mnist1d").build(0, smoke=True)
    opt = adapters.build_optimizer(h, runner.make_param_groups(task, h), {"update_period": 2, "lr": 1e-3})
    params = list(task.model.parameters())
    before = [p.detach().clone() for p in params]
    with runner.step_counter(h) as counter:
        counts = [runner.train_step(task, opt, h, counter, task.next_batch())[1] for _ in range(4)]
    assert counts == [2, 1, 2, 1] and counter.count == 0
    hessians = [opt.state[p]["hessian"] for p in params]
    assert all(bool(torch.isfinite(x).all()) for x in hessians) and sum(float(x.sum()) for x in hessians) > 0
    assert all(not torch.equal(b, p.detach()) for b, p in zip(before, params))
    # the runner counts the same way: 4 steps + 2 refreshes (with a budget of 4 steps)
    hp = {"update_period": 2}
    spec = runner.TrialSpec("sophia_g", "grok_modadd", smoke=True, hparams=hp, budget_unit="steps")
    result = runner.run_trial(spec)
    _check(result, "grok_modadd")
    assert (result.steps, result.grad_evals, result.hvp_evals) == (4, 6, 0)
    assert result.curve["grad_evals"] == [0, 3, 6]  # evaluations at steps 0, 2, 4
    # with the equal-compute budget (4 gradient evaluations, the default) the refreshes are paid for: the run
    # stops at the first step that reaches it — 3 steps, 5 gradients — and evaluates every 2 gradient-equivalents
    result = runner.run_trial(runner.TrialSpec("sophia_g", "grok_modadd", smoke=True, hparams=hp))
    assert (result.steps, result.grad_evals, result.budget_unit) == (3, 5, "grads")
    assert result.curve["grad_evals"] == [0, 2, 5]


def test_sophia_g_on_a_workload_without_logits_is_not_applicable():
    """The documented behaviour (runner module docstring): the trial ends at once with a clear ``error``."""
    h = adapters.resolve("sophia_g")
    for wid in ("quad_noisy", "ae_digits", "lstm_adding"):
        reason = runner.not_applicable(h, W.get(wid))
        assert reason and wid in reason and "mlp_mnist1d" in reason  # names the workloads that do have logits
        result = runner.run_trial(runner.TrialSpec("sophia_g", wid, smoke=True))
        assert result.status == "error" and result.error == f"not applicable: {reason}"
        assert result.steps == 0 and result.curve == {}
    assert runner.not_applicable(h, W.get("mlp_mnist1d")) is None
    assert runner.not_applicable(adapters.resolve("adamw"), W.get("quad_noisy")) is None


@pytest.mark.parametrize("workload", WORKLOADS)
def test_closure_and_hvp_paths(workload):
    sam = runner.run_trial(runner.TrialSpec("toy_sam", workload, smoke=True), handle=handle(ToySAM, "toy_sam"))
    _check(sam, workload)
    assert sam.grad_evals == 2 * sam.steps  # two closure calls per step, each counted
    hut = runner.run_trial(runner.TrialSpec("toy_hvp", workload, smoke=True), handle=handle(ToyHutchinson, "toy_hvp"))
    _check(hut, workload)
    assert hut.grad_evals == hut.steps
    assert hut.hvp_evals == hut.steps  # one torch.autograd.grad call per step, counted; the closure's are not


def test_equal_compute_budget_gives_sam_half_the_steps_and_charges_hvps():
    """The default budget counts gradient-equivalents (HVP = 2): with a smoke budget of 4, AdamW takes 4 steps,
    SAM 2 (two gradients each) and a one-HVP-per-step method 2 (1 + 2 each, the second step crossing the budget);
    ``budget_unit="steps"`` gives each 4 steps. The LR schedule follows the same clock."""
    sam_h, hvp_h = handle(ToySAM, "toy_sam"), handle(ToyHutchinson, "toy_hvp")
    adamw = runner.run_trial(runner.TrialSpec("adamw", "quad_noisy", smoke=True))
    sam = runner.run_trial(runner.TrialSpec("toy_sam", "quad_noisy", smoke=True), handle=sam_h)
    hvp = runner.run_trial(runner.TrialSpec("toy_hvp", "quad_noisy", smoke=True), handle=hvp_h)
    assert (adamw.steps, sam.steps, hvp.steps) == (4, 2, 2)
    assert (sam.grad_evals, hvp.grad_evals + 2 * hvp.hvp_evals) == (4, 6)
    steps = runner.run_trial(runner.TrialSpec("toy_sam", "quad_noisy", smoke=True, budget_unit="steps"), handle=sam_h)
    assert (steps.steps, steps.grad_evals, steps.budget_unit) == (4, 8, "steps")
    assert runner.lr_factor(2, 4, "linear", 0.0, 1.0) == 0.5  # SAM's 2nd step starts at 2 of 4 gradient-equivalents


def test_foreign_closure_optimizer_counts_every_evaluation():
    result = runner.run_trial(runner.TrialSpec("torch:LBFGS", "rosenbrock50", smoke=True, hparams={"lr": 0.5}))
    _check(result, "rosenbrock50")
    assert adapters.resolve("torch:LBFGS").requires_closure
    assert result.grad_evals > result.steps  # L-BFGS evaluates several times per step


def test_runs_are_deterministic_given_the_seed():
    a = runner.run_trial(runner.TrialSpec("adamw", "mlp_mnist1d", seed=3, smoke=True))
    b = runner.run_trial(runner.TrialSpec("adamw", "mlp_mnist1d", seed=3, smoke=True))
    c = runner.run_trial(runner.TrialSpec("adamw", "mlp_mnist1d", seed=4, smoke=True))
    assert a.curve["metric"] == b.curve["metric"] and a.curve["train_loss"] == b.curve["train_loss"]
    assert a.curve["train_loss"] != c.curve["train_loss"]


def test_workload_contract():
    ids = set()
    for w in W.all_workloads():
        assert w.id not in ids
        ids.add(w.id)
        b = w.budget
        assert 0 < b.step_hint <= b.max_steps and 0 < b.eval_every <= b.max_steps
        assert 20 <= b.max_steps // b.eval_every <= 60, w.id  # about 25–50 evaluations per run
        assert w.smoke_budget.max_steps <= 10
        d = w.describe()
        assert {"id", "metric", "target", "step_hint", "max_steps"} <= set(d)
        assert len(w.code_hash()) == 16 and len(w.data_hash(smoke=True)) == 16
        task = w.build(0, smoke=True)
        kinds = {k for _, _, k in task.typed_parameters()}
        assert kinds <= set(W.PARAM_TYPES), (w.id, kinds)
        assert task.provides_logits == w.provides_logits == d["logits"]
        batch = task.next_batch()
        if w.provides_logits:  # the loss is the cross-entropy of the logits the task returns
            loss, logits = task.loss_and_logits(batch)
            assert logits.grad_fn is not None and logits.ndim >= 2 and logits.shape[-1] >= 10
            assert torch.equal(loss, task.loss(batch))
        else:
            with pytest.raises(ValueError, match="not a cross-entropy"):
                task.loss_and_logits(batch)
    assert len(ids) == 13  # the 12 of core-v1 and the multi-task workload
    logits = {w.id for w in W.all_workloads() if w.provides_logits}
    assert logits == {"mlp_mnist1d", "cnn1d_mnist1d", "labelnoise_cnn", "charlm_gpt", "grok_modadd"}
    with pytest.raises(TypeError, match="exactly one"):
        W.Task(torch.nn.Linear(1, 1), lambda: None, None, lambda m: 0.0)


def test_param_types_cover_the_interesting_shapes():
    kinds = {k for w in W.all_workloads() for _, _, k in w.build(0, smoke=True).typed_parameters()}
    assert kinds == set(W.PARAM_TYPES)


def test_data_are_fixed():
    from optimlab.bench.workloads import charlm, mnist1d

    text = charlm.load_text()
    assert len(text) > 250_000 and len(set(text)) == 102
    a = mnist1d.make_mnist1d(500, 0)
    assert a["x"].shape == (400, 40) and a["x_test"].shape == (100, 40)
    assert abs(float(torch.cat([a["x"], a["x_test"]]).std()) - 1.0) < 1e-3
    assert W.get("cnn1d_mnist1d").data_hash() == W.get("cnn1d_mnist1d").data_hash()


def test_charlm_text_checksum_is_enforced(monkeypatch):
    from optimlab.bench.workloads import charlm

    charlm.load_text.cache_clear()
    monkeypatch.setattr(charlm, "TEXT_SHA256", "0" * 64)
    with pytest.raises(RuntimeError, match="sha256"):
        charlm.load_text()
    charlm.load_text.cache_clear()


def test_divergence_ends_the_run_early():
    result = runner.run_trial(runner.TrialSpec("sgd", "rosenbrock50", hparams={"lr": 10.0}, budget_factor=0.01))
    assert result.status == "diverged"
    assert result.steps < result.max_steps


def test_errors_are_recorded_not_raised():
    result = runner.run_trial(runner.TrialSpec("adamw", "quad_noisy", smoke=True, hparams={"lr": -1.0}))
    assert result.status == "error" and "lr" in result.error


def test_schedule():
    assert runner.lr_factor(0, 100, "cosine", 0.1, 1.0) == pytest.approx(0.1)
    assert runner.lr_factor(9, 100, "cosine", 0.1, 1.0) == pytest.approx(1.0)
    assert runner.lr_factor(10, 100, "cosine", 0.1, 1.0) == pytest.approx(1.0)
    assert runner.lr_factor(55, 100, "cosine", 0.1, 1.0) == pytest.approx(0.5)
    assert runner.lr_factor(100, 100, "cosine", 0.1, 1.0) == pytest.approx(0.0)
    assert runner.lr_factor(50, 100, "constant", 0.0, 1.0) == 1.0
    assert runner.lr_factor(25, 100, "linear", 0.0, 0.5) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        runner.split_hparams({"sched_kind": "nope"})


def test_core_suite_is_frozen():
    from optimlab.bench import calibration

    version, smoke, wls = W.suite("core")
    assert version == W.CORE_VERSION == "core-v1" and not smoke
    assert W.CORE_CALIBRATION["command"] == calibration.CALIBRATION_COMMAND
    for w in wls:
        assert not w.provisional, w.id
        assert w.target_kind in ("precision", "calibrated")
        assert w.budget.step_hint == calibration.step_hint_for(w), w.id  # max_steps = 1.5 × step_hint
