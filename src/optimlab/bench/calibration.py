"""Target and budget calibration (benchmark.md §6.4), run by maintainers when a suite version is frozen.

The procedure is budget-first: every workload's ``max_steps`` is fixed by the suite's time budget (the ``core``
suite must run on 2 cores in 30 minutes), and §6.4's rule "max_steps = 1.5 × step_hint" is read backwards:
``step_hint = max_steps / 1.5``, and the target is what the target-setting baseline reaches by ``step_hint``.

1. The target-setting optimizers (AdamW and SGD-Nesterov; NAdamW and heavy-ball join when registered) each run
   ``trials`` quasi-random configurations from :data:`CALIBRATION_SPACES` (their registry search spaces when not
   listed there) for the whole budget, without stopping at the current target.
2. For workloads with a ``calibrated`` target (validation metrics: accuracy, cross-entropy, ...), the
   configuration with the best metric by ``step_hint`` is rerun on ``seeds`` fresh seeds; the target is the
   per-seed best metric by ``step_hint`` that ``hit_fraction`` (90%) of the seeds reach (§6.4's relaxation δ),
   rounded to three significant digits towards the easy side.
3. For workloads with a ``precision`` target (analytic optimum: a suboptimality, a relative error), the target is
   part of the workload's design; the configuration reaching it in the fewest steps is rerun on the seeds, which
   checks that 90% of them reach it within the budget and measures the steps they need.

All runs go to the results store (rulesets ``calibration`` and ``calibration-seeds``), so an interrupted
calibration resumes. The proposals are printed and returned; freezing a suite version means copying them into the
workload classes and bumping ``workloads.CORE_VERSION`` (the command that produced them is
:data:`CALIBRATION_COMMAND`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .. import registry as R
from . import adapters, store, sweep, tuning
from . import workloads as W

TARGET_SETTERS = ("adamw", "sgd_nesterov")
#: the exact command that produced the frozen core-v1 targets (details in ``workloads.CORE_CALIBRATION``)
CALIBRATION_COMMAND = W.CORE_CALIBRATION["command"]
#: max_steps = HEADROOM × step_hint (§6.4 step 5)
HEADROOM = 1.5

#: narrower, denser spaces for the target setters than their tuning spaces: with a handful of trials (instead of
#: §6.4's 100–200) the learning rate must be sampled where it matters
CALIBRATION_SPACES: dict[str, dict[str, R.SearchDim]] = {
    "adamw": {
        "lr": R.LogUniform(3e-4, 3e-2),
        "weight_decay": R.LogUniform(1e-4, 1.0),
        "beta2": R.Choice((0.95, 0.99, 0.999)),
    },
    "sgd_nesterov": {
        "lr": R.LogUniform(1e-3, 0.3),
        "momentum": R.Choice((0.9, 0.95, 0.99)),
        "weight_decay": R.LogUniform(1e-6, 1e-3),
    },
}


def target_kind(workload: W.Workload) -> str:
    """``precision`` (the target is part of the workload's design) or ``calibrated`` (set by this procedure)."""
    return workload.target_kind


def step_hint_for(workload: W.Workload, smoke: bool = False, budget_factor: float = 1.0) -> int:
    """max_steps / HEADROOM, rounded down to the evaluation cadence."""
    b = workload.budget_for(smoke).scaled(budget_factor)
    return max(b.eval_every, int(b.max_steps / HEADROOM) // b.eval_every * b.eval_every)


def best_by(record: dict[str, Any], workload: W.Workload, step: int) -> float:
    """The run's best metric among evaluations at or before ``step`` (the worst value if none, or diverged
    before it)."""
    higher = workload.higher_is_better
    c = record.get("curve") or {}
    vals = [m for s, m in zip(c.get("step", []), c.get("metric", [])) if s <= step and m is not None and s > 0]
    if not vals or not all(math.isfinite(v) for v in vals):
        return -math.inf if higher else math.inf
    return max(vals) if higher else min(vals)


def first_hit(record: dict[str, Any], workload: W.Workload, target: float) -> float:
    c = record.get("curve") or {}
    for s, m in zip(c.get("step", []), c.get("metric", [])):
        if m is not None and s > 0 and (m >= target if workload.higher_is_better else m <= target):
            return float(s)
    return math.inf


def _rank_key(record: dict[str, Any], workload: W.Workload, hint: int) -> tuple:
    """Sort key, best first: fewest steps to the fixed target (precision targets), else best metric by hint."""
    if target_kind(workload) == "precision":
        return (first_hit(record, workload, workload.target), _signed(best_by(record, workload, hint), workload))
    return (_signed(best_by(record, workload, hint), workload),)


def _signed(v: float, workload: W.Workload) -> float:
    return -v if workload.higher_is_better else v


def calibrate(
    result_store: store.ResultStore,
    suite_version: str,
    workloads: Sequence[W.Workload],
    handles: Sequence[adapters.AlgorithmHandle],
    *,
    trials: int = 6,
    seeds: int = 3,
    budget_factor: float = 1.0,
    hit_fraction: float = 0.9,
    smoke: bool = False,
    threads: int = 2,
    jobs: int = 1,
    progress: bool = True,
    echo=print,
) -> dict[str, dict[str, Any]]:
    """Run the procedure; returns workload id -> proposal (target, step_hint, max_steps, evidence)."""
    run = {"threads": threads, "jobs": jobs, "progress": progress}
    search = tuning.plan_quasirandom(
        suite_version,
        workloads,
        handles,
        trials=trials,
        studies=1,
        smoke=smoke,
        budget_factor=budget_factor,
        ruleset="calibration",
        stop_at_target=False,
        spaces=CALIBRATION_SPACES,
    )
    echo(f"calibration search: {sweep.run_cells(result_store, search, **run).line()}")
    chosen = _choose(_current(result_store, suite_version, workloads), workloads, handles, smoke, budget_factor)
    reruns = _seed_cells(suite_version, chosen, seeds=seeds, smoke=smoke, budget_factor=budget_factor)
    echo(f"calibration seeds: {sweep.run_cells(result_store, reruns, **run).line()}")
    records = _current(result_store, suite_version, workloads)
    proposals: dict[str, dict[str, Any]] = {}
    for w, handle, best, hint in chosen:
        rs = [
            r
            for r in records
            if r["ruleset"] == "calibration-seeds"
            and r["workload"] == w.id
            and r["algorithm"] == handle.id
            and r.get("overrides") == best["overrides"]
        ]
        if rs:
            proposals[w.id] = _proposal(w, handle, best, hint, rs, hit_fraction, smoke, budget_factor)
    return proposals


_Choice = tuple[W.Workload, adapters.AlgorithmHandle, dict[str, Any], int]


def _choose(
    records: list[dict],
    workloads: Sequence[W.Workload],
    handles: Sequence[adapters.AlgorithmHandle],
    smoke: bool,
    budget_factor: float,
) -> list[_Choice]:
    """Step 1's winner per workload: (workload, its optimizer, its search run, the step hint)."""
    handle_ids = {h.id for h in handles}
    chosen = []
    for w in workloads:
        hint = step_hint_for(w, smoke, budget_factor)
        rs = [r for r in records if r["ruleset"] == "calibration" and r["workload"] == w.id]
        rs = [r for r in rs if r["algorithm"] in handle_ids]
        if rs:
            best = min(rs, key=lambda r: _rank_key(r, w, hint))
            chosen.append((w, next(h for h in handles if h.id == best["algorithm"]), best, hint))
    return chosen


def _seed_cells(
    suite_version: str, chosen: list[_Choice], *, seeds: int, smoke: bool, budget_factor: float
) -> list[tuning.Cell]:
    """Step 2's reruns: each winning configuration on ``seeds`` fresh seeds (100, 101, ...), to the full budget."""
    cells = []
    for w, handle, best, _ in chosen:
        cells += tuning.plan_defaults(
            suite_version,
            [w],
            [handle],
            seeds=seeds,
            smoke=smoke,
            hparams=best["overrides"],
            budget_factor=budget_factor,
            ruleset="calibration-seeds",
            seed_list=range(100, 100 + seeds),
            stop_at_target=False,
        )
    return cells


def _proposal(
    w: W.Workload,
    handle: adapters.AlgorithmHandle,
    best: dict[str, Any],
    hint: int,
    rs: list[dict],
    hit_fraction: float,
    smoke: bool,
    budget_factor: float,
) -> dict[str, Any]:
    """Steps 2–3 for one workload from the seed reruns ``rs``: the target and its evidence."""
    by_hint = np.array([best_by(r, w, hint) for r in rs], dtype=float)
    if target_kind(w) == "precision":
        target = w.target
    else:
        # the value at least ``hit_fraction`` of the seeds reach by the hint (an order statistic)
        if w.higher_is_better:
            relaxed = float(np.quantile(by_hint, 1 - hit_fraction, method="lower"))
        else:
            relaxed = float(np.quantile(by_hint, hit_fraction, method="higher"))
        target = _round_sig(relaxed, 3, up=not w.higher_is_better) if math.isfinite(relaxed) else w.target
    reach = [first_hit(r, w, target) for r in rs]
    median_reach = float(np.median(reach))
    return {
        "kind": target_kind(w),
        "target": target,
        "current_target": w.target,
        "median_by_hint": float(np.median(by_hint)),
        "per_seed_by_hint": by_hint.tolist(),
        "hit_fraction_by_hint": float(np.mean([s <= hint for s in reach])),
        "median_steps_to_target": median_reach if math.isfinite(median_reach) else None,
        "step_hint": hint,
        "max_steps": w.budget_for(smoke).scaled(budget_factor).max_steps,
        "eval_every": w.budget_for(smoke).eval_every,
        "optimizer": handle.id,
        "hparams": best["overrides"],
    }


def _current(result_store: store.ResultStore, suite_version: str, workloads: Sequence[W.Workload]) -> list[dict]:
    """The stored calibration runs of this suite made with the current workload code."""
    hashes = {w.id: w.code_hash() for w in workloads}
    return [
        r
        for r in result_store.records()
        if r.get("suite") == suite_version and r.get("workload_hash") == hashes.get(r.get("workload"))
    ]


def _round_sig(x: float, digits: int, up: bool) -> float:
    """Round to ``digits`` significant digits, towards the easy side (up for a ≤ target, down for ≥)."""
    if x == 0 or not math.isfinite(x):
        return x
    scale = 10 ** (math.floor(math.log10(abs(x))) - digits + 1)
    value = (math.ceil(x / scale - 1e-9) if up else math.floor(x / scale + 1e-9)) * scale
    return float(f"{value:.{digits}g}")


def format_proposals(proposals: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"{'workload':18} {'kind':9} {'target':>9} {'(now)':>8} {'by hint':>9} {'hit':>5} {'S med':>6} "
        f"{'hint':>6} {'max':>6}  config"
    ]
    for wid, p in proposals.items():
        hp = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in p["hparams"].items())
        s_med = f"{p['median_steps_to_target']:.0f}" if p["median_steps_to_target"] else "-"
        lines.append(
            f"{wid:18} {p['kind']:9} {p['target']:>9.4g} {p['current_target']:>8.3g} {p['median_by_hint']:>9.4g} "
            f"{p['hit_fraction_by_hint']:>5.0%} {s_med:>6} {p['step_hint']:>6} {p['max_steps']:>6}  "
            f"{p['optimizer']}: {hp}"
        )
    return "\n".join(lines)
