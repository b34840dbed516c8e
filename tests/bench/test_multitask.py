"""Multi-task workloads and ``optimizer+method`` candidates: the per-task loss contract, candidate ids, the step
the runner takes (the aggregation of the per-task gradients, not their sum), the gradient-evaluation rule, and a
short sweep that stores and reports two aggregator candidates beside equal weighting."""

from __future__ import annotations

import pytest
import torch

from optimlab import multitask as mt
from optimlab.bench import adapters, cli, multitask_methods, runner
from optimlab.bench import workloads as W

MTL = "mtl_regression"


def _step(algorithm: str, hparams: dict, seed: int = 0) -> tuple[W.MultiTaskTask, dict[str, torch.Tensor], int]:
    """One runner step of ``algorithm`` on a fresh smoke task: (task, parameters before the step, grads used)."""
    handle = adapters.resolve(algorithm)
    task = W.get(MTL).build(seed, smoke=True)
    before = {n: p.detach().clone() for n, p in task.model.named_parameters()}
    optimizer = adapters.build_optimizer(handle, runner.make_param_groups(task, handle), hparams)
    with runner.step_counter(handle) as counter:
        _, grads = runner.train_step(task, optimizer, handle, counter, task.next_batch())
    return task, before, grads


def test_the_multitask_workload_gives_per_task_losses_whose_sum_is_the_loss():
    w = W.get(MTL)
    assert isinstance(w, W.MultiTaskWorkload) and w.describe()["tasks"] == w.num_tasks == 4
    task = w.build(0, smoke=True)
    batch = task.next_batch()
    losses = task.task_losses(batch)
    assert losses.shape == (4,) and losses.grad_fn is not None
    torch.testing.assert_close(task.loss(batch), losses.sum())
    # the task scales differ by 30x: equal weighting is dominated by the largest task
    assert float(losses[3].detach()) > 100 * float(losses[0].detach())
    shared, heads = task.shared_parameters(), task.task_parameters()
    assert {id(p) for p in shared} | {id(p) for p in heads} == {id(p) for p in task.model.parameters()}
    assert not {id(p) for p in shared} & {id(p) for p in heads}
    assert {id(p) for p in task.last_shared_parameters()} < {id(p) for p in shared}
    assert {k for _, p, k in task.typed_parameters() if p.ndim == 2 and any(p is h for h in heads)} == {"head"}


def test_suites_keep_core_frozen_and_the_smoke_suite_runs_every_workload():
    core = {w.id for w in W.suite("core")[2]}
    version, smoke, wls = W.suite("multitask")
    assert MTL not in core and len(core) == 12
    assert version == W.MULTITASK_VERSION == "multitask-v1" and not smoke and [w.id for w in wls] == [MTL]
    assert {w.id for w in W.suite("smoke")[2]} == core | {MTL}
    # the multi-task contract module is part of the workload's code hash (the core workloads' hashes are unchanged)
    assert W.get(MTL).code_hash() != W.Workload.code_hash(W.get(MTL))


def test_a_bad_parameter_split_names_the_field():
    task = W.get(MTL).build(0, smoke=True)
    make = W.MultiTaskTask.create
    args = (task.model, task.next_batch, task.task_losses_fn, task.eval_fn)
    with pytest.raises(ValueError, match="shared_prefix 'body.'"):
        make(*args, task_names=task.task_names, shared_prefix="body.", last_shared_prefix="body.")
    with pytest.raises(ValueError, match="last_shared_prefix 'heads.0.'"):
        make(*args, task_names=task.task_names, shared_prefix="trunk.", last_shared_prefix="heads.0.")
    with pytest.raises(ValueError, match="task_names"):
        make(*args, task_names=("one",), shared_prefix="trunk.", last_shared_prefix="trunk.2.")


def test_candidate_ids_parse():
    base = adapters.resolve("adamw")
    h = adapters.resolve("AdamW + UPGrad")
    assert h.id == "adamw+upgrad" and h.multitask is multitask_methods.METHODS["upgrad"]
    assert h.defaults == base.defaults and h.search_space == base.search_space  # the optimizer's, tuned as usual
    assert h.source_hash != base.source_hash
    assert adapters.resolve("torch:AdamW+pcgrad").library == "torch"
    assert [x.id for x in adapters.resolve_many("adamw,adamw+mgda,sgd+gradnorm")] == [
        "adamw",
        "adamw+mgda",
        "sgd+gradnorm",
    ]
    with pytest.raises(ValueError, match="unknown multi-task method 'nash'.*upgrad, mgda, pcgrad"):
        adapters.resolve("adamw+nash")
    with pytest.raises(ValueError, match="one multi-task method"):
        adapters.resolve("adamw+upgrad+mgda")
    with pytest.raises(ValueError, match="unknown optimizer 'adamx'"):
        adapters.resolve("adamx+upgrad")


def test_methods_are_not_applicable_to_single_loss_workloads_or_second_order_optimizers():
    reason = runner.not_applicable(adapters.resolve("adamw+upgrad"), W.get("quad_noisy"))
    assert reason.startswith("adamw+upgrad aggregates per-task losses") and MTL in reason
    assert "Hessian-vector" in runner.not_applicable(adapters.resolve("sophia_h+upgrad"), W.get(MTL))
    assert runner.not_applicable(adapters.resolve("adamw+upgrad"), W.get(MTL)) is None
    assert runner.not_applicable(adapters.resolve("adamw"), W.get(MTL)) is None  # equal weighting runs anywhere
    result = runner.run_trial(runner.TrialSpec("adamw+pcgrad", "quad_noisy", smoke=True))
    assert result.status == "error" and result.error.startswith("not applicable: adamw+pcgrad")


def test_the_runner_steps_on_the_upgrad_aggregation_of_the_per_task_gradients():
    """Known answer: plain SGD moves the trunk by −lr Jᵀw (w = UPGrad's weights of J Jᵀ, J from one backward per
    task, computed here by hand) and every head by −lr × its own task's gradient; not by the summed gradient."""
    lr = 0.1
    task, before, grads = _step("sgd+upgrad", {"lr": lr, "momentum": 0.0, "weight_decay": 0.0})
    assert grads == task.num_tasks  # one backward per task
    ref = W.get(MTL).build(0, smoke=True)
    ref.model.load_state_dict(before)
    losses = ref.task_losses(ref.next_batch())  # the same batch (same seed, first draw)
    shared = ref.shared_parameters()
    rows = [torch.autograd.grad(losses[i], shared, retain_graph=True) for i in range(4)]
    jac = torch.stack([torch.cat([g.reshape(-1) for g in row]) for row in rows])
    direction = mt.UPGrad()(jac)
    summed = jac.sum(0)
    assert (jac @ direction).min() >= -1e-5  # UPGrad never conflicts with a task
    moved = torch.cat([(before[n] - p.detach()).reshape(-1) for n, p in task.model.named_parameters()][:4]) / lr
    torch.testing.assert_close(moved, direction, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(moved, summed, rtol=1e-2)
    head_grads = torch.autograd.grad(losses.sum(), ref.task_parameters())
    for (n, p), g in zip(list(task.model.named_parameters())[4:], head_grads):
        torch.testing.assert_close((before[n] - p.detach()) / lr, g, rtol=1e-4, atol=1e-6)


def test_gradnorm_counts_one_gradient_and_updates_its_weights():
    task, before, grads = _step("sgd+gradnorm", {"lr": 0.1})
    assert grads == 1
    assert any(not torch.equal(before[n], p) for n, p in task.model.named_parameters())


@pytest.mark.parametrize(("algorithm", "grads_per_step"), [("adamw", 1), ("adamw+upgrad", 4), ("sam+pcgrad", 8)])
def test_gradient_evaluations_per_step(algorithm, grads_per_step):
    """Equal weighting: 1 backward per step; a Jacobian step: m = 4; SAM's two closure calls: 2 × 4."""
    result = runner.run_trial(runner.TrialSpec(algorithm, MTL, smoke=True, budget_unit="steps"))
    assert result.status in ("hit", "miss"), result.error
    assert result.steps == 4 and result.grad_evals == 4 * grads_per_step
    # under the default equal-compute budget (4 gradient evaluations in the smoke config) the step count shrinks
    equal = runner.run_trial(runner.TrialSpec(algorithm, MTL, smoke=True))
    assert equal.steps == -(-4 // grads_per_step)


def test_pcgrad_runs_are_deterministic_given_the_seed():
    a, b, c = (runner.run_trial(runner.TrialSpec("adamw+pcgrad", MTL, seed=s, smoke=True)) for s in (3, 3, 4))
    assert a.curve["train_loss"] == b.curve["train_loss"] != c.curve["train_loss"]


def test_a_short_sweep_with_two_aggregator_candidates_stores_and_reports(tmp_path, capsys):
    common = ["--suite", "smoke", "--results", str(tmp_path), "--no-progress", "--threads", "1"]
    sel = ["--optimizers", "adamw,adamw+upgrad,adamw+pcgrad", "--workloads", f"{MTL},quad_noisy", "--seeds", "1"]
    assert cli.main(["run", *common, *sel]) == 0
    out, err = capsys.readouterr()
    assert "4 runs planned, 0 already in the store, 4 ran" in out  # the two candidates left out on quad_noisy
    assert "adamw+upgrad on quad_noisy" in err and "adamw+pcgrad on quad_noisy" in err
    assert cli.main(["report", "--suite", "smoke", "--results", str(tmp_path), "--bootstrap", "20"]) == 0
    md = (tmp_path / "LEADERBOARD.md").read_text()
    assert "adamw+upgrad" in md and "adamw+pcgrad" in md
    assert "adamw+upgrad" in (tmp_path / "report.html").read_text()


def test_multitask_suite_is_frozen():
    from optimlab.bench import calibration

    for w in W.suite("multitask")[2]:
        assert not w.provisional and w.target_kind == "calibrated", w.id
        assert w.budget.step_hint == calibration.step_hint_for(w), w.id  # max_steps = 1.5 × step_hint
    assert "--suite multitask" in W.MULTITASK_CALIBRATION["command"]
