"""Run one trial: (algorithm, hyperparameters, workload, seed) -> a :class:`TrialResult`.

The runner owns the training loop, so that every optimizer sees the same harness:

* the learning-rate schedule (linear warm-up then cosine/linear decay or constant, relative to the run's step
  budget; ``sched_*`` keys of the hyperparameters), applied by a ``LambdaLR`` on top of the optimizer's lr;
* a closure for optimizers whose registry record says ``requires_closure`` (SAM, line searches); it re-evaluates
  the loss on the step's batch, and every call counts as one gradient evaluation;
* Hessian-vector-product support for optimizers that ask for it (``requires_hvp``): backward runs with
  ``create_graph=True``, and every ``torch.autograd.grad`` call the optimizer makes inside ``step`` counts as one
  HVP evaluation;
* logits for optimizers whose closure must return ``(loss, logits)`` (``requires_logits``, the registry's
  ``closure_returns_logits``: Sophia-G's Gauss–Newton–Bartlett estimator). On workloads whose loss is the
  cross-entropy of the model's logits (``Workload.provides_logits``) the closure returns the logits of the same
  forward pass (shape ``(..., num_classes)``, no mask: every position counts) and keeps their graph on the steps
  where the optimizer's ``refresh_due()`` says it will use them (every step if it has no such method). The
  optimizer's own backward through them (the sampled-label gradient, a ``torch.autograd.grad`` call inside
  ``step``) counts as one gradient evaluation, so Sophia-G with ``update_period`` k uses 1 + 1/k gradient
  evaluations per step. On any other workload such an optimizer is **not applicable** (:func:`not_applicable`):
  the sweep plans (:mod:`~optimlab.bench.tuning`, TPE, step costs, calibration) leave the pair out and the CLI
  prints the pairs left out and why; a trial run directly on such a pair ends at once with status ``error`` and
  the message ``not applicable: …`` (no training). In scoring a left-out pair counts like a miss (AlgoPerf: a
  method is ranked on every workload of the suite);
* no class-split closures: an optimizer whose closure must return ``(head_loss, tail_loss)`` (ImbSAM,
  ``closure_returns_head_tail``) needs a class-imbalanced workload, and the suite has none, so it is not applicable
  everywhere rather than run as SAM under its name;
* ``optimizer.train()``/``optimizer.eval()`` around evaluations for optimizers that have them (schedule-free);
  that switch counts as training time;
* train-only wall time (batch, forward, backward, step, schedule; evaluation excluded), evaluation every
  ``eval_every`` steps, the first evaluation step meeting the target (the run stops there: ``hit``), divergence
  (a non-finite loss or metric, or the mean training loss of an evaluation interval above
  ``explosion_factor`` × the first loss: ``diverged``), exceptions (``error``, with the message), and otherwise
  ``miss`` at ``max_steps``. A trial never raises: a sweep never crashes on one bad run.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .. import training
from ..memory import state_bytes
from ..training import Capabilities, create_graph_warning_silenced
from . import adapters, multitask_methods
from . import workloads as W
from .scoring import HVP_COST

#: bump when the training loop's semantics change (part of every result's cache key)
HARNESS_VERSION = "2"
#: harness-level hyperparameters (the LR schedule); all other keys go to the optimizer
SCHEDULE_DEFAULTS: dict[str, Any] = {"sched_kind": "cosine", "sched_warmup": 0.02, "sched_horizon": 1.0}
SCHEDULE_KINDS = ("cosine", "linear", "constant")
STATUSES = ("hit", "miss", "diverged", "error")
#: what a run's budget (max_steps) and LR schedule count: optimizer steps, or gradient-equivalent evaluations
#: (gradients + HVP_COST × Hessian-vector products), the equal-compute budget the leaderboard ranks by
BUDGET_UNITS = ("grads", "steps")
DEFAULT_BUDGET_UNIT = "grads"


@dataclass(frozen=True)
class TrialSpec:
    """What to run. ``hparams`` override the algorithm's defaults; ``sched_*`` keys set the LR schedule."""

    algorithm: str
    workload: str
    seed: int = 0
    hparams: Mapping[str, Any] = field(default_factory=dict)
    smoke: bool = False
    budget_factor: float = 1.0
    device: str = "cpu"
    #: stop at the first evaluation meeting the target (False: run the whole budget, for target calibration)
    stop_at_target: bool = True
    #: ``grads`` (equal compute: SAM gets half AdamW's steps) or ``steps`` (every optimizer the same step count)
    budget_unit: str = DEFAULT_BUDGET_UNIT


@dataclass
class TrialResult:
    """What one run produced (see the module docstring for the status rules)."""

    status: str
    max_steps: int
    steps: int = 0
    steps_to_target: int | None = None
    grad_evals_to_target: int | None = None
    hvp_evals_to_target: int | None = None
    time_to_target: float | None = None
    grad_evals: int = 0
    hvp_evals: int = 0
    train_time: float = 0.0
    wall_time: float = 0.0
    #: CPU seconds of this process during the run (all threads; a load-independent measure of the work)
    cpu_time: float = 0.0
    initial_metric: float | None = None
    best_metric: float | None = None
    final_metric: float | None = None
    #: bytes of optimizer state after the run (:func:`optimlab.state_bytes`: each storage once, wrapped optimizers'
    #: state included)
    state_bytes: int = 0
    param_bytes: int = 0
    peak_rss_bytes: int = 0
    #: resident set size when the run started (the peak minus this is what the run added)
    start_rss_bytes: int = 0
    hparams: dict[str, Any] = field(default_factory=dict)
    budget_unit: str = DEFAULT_BUDGET_UNIT
    curve: dict[str, list] = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def hit(self) -> bool:
        return self.status == "hit"


# ---------------------------------------------------------------------------------------------- schedule
def lr_factor(step: int, total: int, kind: str, warmup: float, horizon: float) -> float:
    """Multiplier of the base lr before optimizer step ``step`` (0-based) of a ``total``-step run.

    Linear warm-up over ``warmup × total`` steps, then ``kind`` decay reaching 0 at ``horizon × total`` steps
    (and staying there); ``constant`` keeps 1 after the warm-up.
    """
    warm = int(round(warmup * total))
    if step < warm:
        return (step + 1) / warm
    if kind == "constant":
        return 1.0
    end = max(warm + 1, int(round(horizon * total)))
    t = min(1.0, (step - warm) / (end - warm))
    if kind == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * t))
    if kind == "linear":
        return 1.0 - t
    raise ValueError(f"unknown schedule {kind!r}; known: {', '.join(SCHEDULE_KINDS)}")


def split_hparams(hparams: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(schedule settings with defaults filled in, optimizer hyperparameters)."""
    sched = dict(SCHEDULE_DEFAULTS)
    opt = {}
    for k, v in hparams.items():
        (sched if k in SCHEDULE_DEFAULTS else opt)[k] = v
    if sched["sched_kind"] not in SCHEDULE_KINDS:
        raise ValueError(f"sched_kind must be one of {SCHEDULE_KINDS}, got {sched['sched_kind']!r}")
    return sched, opt


# ---------------------------------------------------------------------------------------------- applicability
class NotApplicable(ValueError):
    """The optimizer cannot run on the workload at all (not a failure of a run: see :func:`not_applicable`)."""


def not_applicable(handle: adapters.AlgorithmHandle, workload: W.Workload) -> str | None:
    """Why ``handle`` cannot run on ``workload`` (None when it can): an optimizer whose closure must return
    ``(loss, logits)`` needs a workload whose loss is the cross-entropy of logits; one whose closure must return
    class-split losses ``(head, tail)`` (ImbSAM) needs a class-imbalanced workload, which the suite does not have
    (run with a plain loss it would be SAM under another name); a multi-task candidate (``adamw+upgrad``) needs a
    multi-task workload (:func:`optimlab.bench.multitask_methods.not_applicable`)."""
    if handle.multitask is not None:
        return multitask_methods.not_applicable(handle, workload)
    if handle.requires_head_tail:
        return (
            f"{handle.id} needs head/tail class-split losses (its closure returns (head_loss, tail_loss)) from a "
            f"class-imbalanced classification workload; {workload.id}, like every workload of the suite, has "
            "no rare classes to split off (a plain loss would run it as SAM)"
        )
    if handle.requires_logits and not workload.provides_logits:
        with_logits = ", ".join(w.id for w in W.all_workloads() if w.provides_logits)
        return (
            f"{handle.id} needs the model's logits (its closure returns (loss, logits)), and the loss of workload "
            f"{workload.id} is not a cross-entropy of logits (workloads with logits: {with_logits})"
        )
    return None


# ---------------------------------------------------------------------------------------------- counters
class _HvpCounter:
    """Counts ``torch.autograd.grad`` calls made while ``active`` (inside ``optimizer.step`` but outside the
    closure): the optimizer's Hessian-vector products (``count``), or with ``as_gradients`` its extra gradient
    evaluations (``grads``: Sophia-G's backward of sampled labels through the logits)."""

    def __init__(self, enabled: bool, as_gradients: bool = False) -> None:
        self.enabled = enabled
        self.as_gradients = as_gradients
        self.count = 0
        self.grads = 0
        self.active = False
        self._orig: Callable | None = None

    def __enter__(self) -> _HvpCounter:
        if self.enabled:
            orig = self._orig = torch.autograd.grad

            def counting_grad(*args, **kwargs):
                if self.active:
                    if self.as_gradients:
                        self.grads += 1
                    else:
                        self.count += 1
                return orig(*args, **kwargs)

            torch.autograd.grad = counting_grad
        return self

    def __exit__(self, *exc) -> None:
        if self._orig is not None:
            torch.autograd.grad = self._orig
            self._orig = None

    @contextlib.contextmanager
    def stepping(self):
        self.active = True
        try:
            yield
        finally:
            self.active = False

    @contextlib.contextmanager
    def paused(self):
        was, self.active = self.active, False
        try:
            yield
        finally:
            self.active = was


def step_counter(handle: adapters.AlgorithmHandle) -> _HvpCounter:
    """The counter of what ``handle``'s ``step`` evaluates itself: HVPs (``requires_hvp``; they win if an optimizer
    asked for both) or sampled-label gradients (``requires_logits``)."""
    return _HvpCounter(
        handle.requires_hvp or handle.requires_logits, as_gradients=handle.requires_logits and not handle.requires_hvp
    )


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark of this process (Linux ``clear_refs`` 5); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss(field: str) -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _peak_rss() -> int:
    return _rss("VmHWM:") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def make_param_groups(task: W.Task, handle: adapters.AlgorithmHandle) -> list[dict[str, Any]] | list[Any]:
    """One param group per parameter type (``param_type`` key) for optimizers that accept extra group keys,
    a plain parameter list otherwise."""
    typed = task.typed_parameters()
    if not handle.typed_groups:
        return [p for _, p, _ in typed]
    groups: dict[str, list] = {}
    for _, p, kind in typed:
        groups.setdefault(kind, []).append(p)
    return [{"params": ps, "param_type": kind} for kind, ps in groups.items()]


def train_step(
    task: W.Task, optimizer: torch.optim.Optimizer, handle: adapters.AlgorithmHandle, counter: _HvpCounter, batch: Any
) -> tuple[float, int]:
    """One optimizer step on ``batch`` by :func:`optimlab.training.train_step` with the handle's needs (closure,
    HVPs, logits): ``(loss before the step, gradient evaluations used)``. The gradient evaluations are the forward
    passes of the closure plus the optimizer's own gradient calls inside ``step`` (Sophia-G's backward of sampled
    labels, counted by ``counter``); the closure's forward runs with ``counter`` paused. A multi-task candidate
    (``handle.multitask``) steps on its aggregated per-task gradients instead
    (:func:`optimlab.bench.multitask_methods.train_step`)."""
    if handle.multitask is not None:
        return multitask_methods.train_step(task, optimizer, handle, batch)
    needs = Capabilities(closure=handle.requires_closure, hvp=handle.requires_hvp, logits=handle.requires_logits)
    forwards = 0

    def loss_fn():
        nonlocal forwards
        forwards += 1
        with counter.paused():
            return task.loss_and_logits(batch) if needs.logits else task.loss(batch)

    grads_before = counter.grads
    with counter.stepping():
        loss = training.train_step(optimizer, loss_fn, needs=needs)
    return float(loss), forwards + counter.grads - grads_before


# ---------------------------------------------------------------------------------------------- the loop
def run_trial(
    spec: TrialSpec,
    *,
    progress: Callable[[int, int], None] | None = None,
    handle: adapters.AlgorithmHandle | None = None,
) -> TrialResult:
    """Train ``spec.algorithm`` on ``spec.workload`` once; never raises (failures become ``status="error"``).

    ``progress(step, max_steps)`` is called after every evaluation.
    """
    workload = W.get(spec.workload)
    budget = workload.budget_for(spec.smoke).scaled(spec.budget_factor)
    result = TrialResult(status="error", max_steps=budget.max_steps)
    wall0 = time.perf_counter()
    cpu0 = time.process_time()
    rss_reset = _reset_peak_rss()
    result.start_rss_bytes = _rss("VmRSS:") if rss_reset else 0
    try:
        _train(spec, workload, budget, result, progress, handle)
    except NotApplicable as exc:
        result.status = "error"
        result.error = f"not applicable: {exc}"
    except Exception as exc:  # a trial never crashes a sweep
        result.status = "error"
        tail = traceback.format_exc(limit=-3)
        result.error = f"{type(exc).__name__}: {exc}\n{tail}"[:4000]
    result.wall_time = time.perf_counter() - wall0
    result.cpu_time = time.process_time() - cpu0
    result.peak_rss_bytes = _peak_rss() if rss_reset else 0
    return result


def _train(
    spec: TrialSpec,
    workload: W.Workload,
    budget: W.Budget,
    result: TrialResult,
    progress: Callable[[int, int], None] | None,
    handle: adapters.AlgorithmHandle | None,
) -> None:
    """Set up, then train until the target, divergence or the end of the budget (stages: :class:`_Loop`)."""
    handle = handle or adapters.resolve(spec.algorithm)
    reason = not_applicable(handle, workload)
    if reason:
        raise NotApplicable(reason)
    loop = _Loop(spec, workload, budget, result, handle)
    with step_counter(handle) as loop.counter, create_graph_warning_silenced():
        loop.run(progress)
    result.state_bytes = state_bytes(loop.optimizer)


def budget_used(result: TrialResult, unit: str) -> float:
    """How much of the budget a run has used: optimizer steps (``steps``) or gradient-equivalent evaluations
    (``grads``: gradients + ``HVP_COST`` × HVPs, so that SAM's second gradient and Sophia-H's HVPs are paid for)."""
    if unit == "steps":
        return float(result.steps)
    return result.grad_evals + HVP_COST * result.hvp_evals


class _Loop:
    """The training loop as named stages: ``__init__`` (model, optimizer, schedule), :meth:`step`,
    :meth:`evaluate`, :meth:`judge` and :meth:`run`. The budget and the LR schedule are measured in the run's
    budget unit (``spec.budget_unit``): optimizer steps, or gradient-equivalent evaluations, in which AdamW's step
    is 1 and SAM's is 2 (an equal-compute budget)."""

    def __init__(
        self,
        spec: TrialSpec,
        workload: W.Workload,
        budget: W.Budget,
        result: TrialResult,
        handle: adapters.AlgorithmHandle,
    ) -> None:
        if spec.budget_unit not in BUDGET_UNITS:
            raise ValueError(f"budget_unit must be one of {BUDGET_UNITS}, got {spec.budget_unit!r}")
        self.spec, self.workload, self.budget, self.result, self.handle = spec, workload, budget, result, handle
        sched, opt_hparams = split_hparams(spec.hparams)
        result.hparams = {**handle.resolved_hparams(opt_hparams), **sched}
        result.budget_unit = spec.budget_unit
        self.task = workload.build(spec.seed, spec.smoke, spec.device)
        self.task.model.train()
        self.optimizer = adapters.build_optimizer(handle, make_param_groups(self.task, handle), opt_hparams)
        result.param_bytes = sum(p.numel() * p.element_size() for p in self.task.model.parameters())
        total = budget.max_steps
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda _: lr_factor(
                min(int(self.used()), total - 1),
                total,
                sched["sched_kind"],
                sched["sched_warmup"],
                sched["sched_horizon"],
            ),
        )
        self.has_modes = has_train_eval_modes(self.optimizer)
        self.cuda = torch.device(spec.device).type == "cuda"
        self.counter: _HvpCounter
        self.first_loss: float | None = None
        self.interval: list[float] = []
        self.next_eval = float(budget.eval_every)
        keys = ("step", "grad_evals", "hvp_evals", "train_time", "metric", "train_loss")
        result.curve = {k: [] for k in keys}

    def used(self) -> float:
        return budget_used(self.result, self.spec.budget_unit)

    def _sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def _timed(self, fn: Callable[[], Any]) -> Any:
        self._sync()
        t0 = time.perf_counter()
        out = fn()
        self._sync()
        self.result.train_time += time.perf_counter() - t0
        return out

    def step(self) -> float:
        """One timed training step (batch, forward, backward, optimizer, schedule); the loss before it."""

        def work() -> float:
            batch = self.task.next_batch()
            loss_value, n_grads = train_step(self.task, self.optimizer, self.handle, self.counter, batch)
            self.result.steps += 1
            self.result.grad_evals += n_grads
            self.result.hvp_evals = self.counter.count
            self.scheduler.step()
            return loss_value

        loss = self._timed(work)
        if self.first_loss is None:
            self.first_loss = abs(loss)
        self.interval.append(loss)
        return loss

    def evaluate(self, diverged: bool) -> tuple[float, float | None]:
        """The metric (schedule-free ``eval()``/``train()`` switches timed as training) and the interval's mean
        training loss, recorded on the curve."""
        train_loss = sum(self.interval) / len(self.interval) if self.interval else None
        self.interval = []
        if self.has_modes:
            self._timed(self.optimizer.eval)
        metric = self.task.evaluate() if not diverged else float("nan")
        if self.has_modes:
            self._timed(self.optimizer.train)
        r, c = self.result, self.result.curve
        for k, v in (("step", r.steps), ("grad_evals", r.grad_evals), ("hvp_evals", r.hvp_evals)):
            c[k].append(v)
        c["train_time"].append(r.train_time)
        c["metric"].append(metric if math.isfinite(metric) else None)
        c["train_loss"].append(train_loss if train_loss is None or math.isfinite(train_loss) else None)
        return metric, train_loss

    def judge(self, metric: float, train_loss: float | None, status: str | None) -> str | None:
        """Update best/final metric and the target hit; the status after this evaluation (None: go on)."""
        r, w = self.result, self.workload
        if status is None:
            if not math.isfinite(metric):
                status = "diverged"
            elif train_loss is not None and math.isfinite(train_loss):
                if train_loss > w.explosion_factor * max(self.first_loss or 0.0, 1e-12):
                    status = "diverged"
        if math.isfinite(metric):
            r.final_metric = metric
            better = metric > r.best_metric if w.higher_is_better else metric < r.best_metric
            if better or not math.isfinite(r.best_metric):
                r.best_metric = metric
        if r.steps_to_target is None and status is None and w.passes(metric):
            r.steps_to_target, r.grad_evals_to_target = r.steps, r.grad_evals
            r.hvp_evals_to_target, r.time_to_target = r.hvp_evals, r.train_time
            if self.spec.stop_at_target:
                status = "hit"
        return status

    def run(self, progress: Callable[[int, int], None] | None) -> None:
        r, cap = self.result, self.budget.max_steps
        metric0, _ = self.evaluate(False)
        r.initial_metric = r.best_metric = r.final_metric = metric0
        if self.has_modes:
            self.optimizer.train()
        status = None
        while status is None and self.used() < cap:
            loss = self.step()
            status = None if math.isfinite(loss) else "diverged"
            if self.used() >= self.next_eval or self.used() >= cap or status:
                while self.next_eval <= self.used():
                    self.next_eval += self.budget.eval_every
                metric, train_loss = self.evaluate(status is not None)
                status = self.judge(metric, train_loss, status)
                if progress is not None:
                    progress(int(self.used()), cap)
        r.status = status or ("hit" if r.steps_to_target is not None else "miss")


# ---------------------------------------------------------------------------------------------- helpers
def objective_value(result: TrialResult | Mapping[str, Any], workload: W.Workload) -> float:
    """A scalar to minimize for tuning: the budget used to reach the target / max_steps on a hit (≤ 1; steps or
    gradient-equivalents, the run's budget unit); 1 + the remaining fraction of the way to the target on a miss
    (measured in decades for log-scale metrics); 2 if diverged; 3 on error."""
    r = result if isinstance(result, Mapping) else result.to_dict()
    if r["status"] == "hit":
        if r.get("budget_unit", "steps") == "grads" and r.get("grad_evals_to_target") is not None:
            used = r["grad_evals_to_target"] + HVP_COST * (r.get("hvp_evals_to_target") or 0)
            return used / r["max_steps"]
        return r["steps_to_target"] / r["max_steps"]
    if r["status"] == "diverged":
        return 2.0
    if r["status"] != "miss":
        return 3.0
    best, start, target = r.get("best_metric"), r.get("initial_metric"), workload.target
    if best is None or start is None or not (math.isfinite(best) and math.isfinite(start)):
        return 2.0
    if workload.metric_scale == "log" and best > 0 and start > 0 and target > 0:
        best, start, target = math.log10(best), math.log10(start), math.log10(target)
    span = (target - start) if workload.higher_is_better else (start - target)
    gap = (target - best) if workload.higher_is_better else (best - target)
    remaining = gap / span if span > 0 else 1.0
    return 1.0 + min(1.0, max(0.0, remaining))


def has_train_eval_modes(optimizer: torch.optim.Optimizer) -> bool:
    """Whether the optimizer has schedule-free style ``train()``/``eval()`` switches."""
    return callable(getattr(optimizer, "train", None)) and callable(getattr(optimizer, "eval", None))


def set_threads(threads: int | None) -> None:
    """Pin torch's intra-op threads (the benchmark's timing convention: 2)."""
    if threads:
        torch.set_num_threads(int(threads))
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
