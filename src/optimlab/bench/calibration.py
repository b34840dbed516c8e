"""Target and budget calibration (benchmark.md §6.4), run by maintainers when a suite version is frozen.

Procedure, per workload:

1. the target-setting optimizers (default AdamW and SGD-Nesterov; NAdamW and heavy-ball join when registered)
   each run ``trials`` quasi-random configurations from :data:`CALIBRATION_SPACES` (their registry search spaces
   when not listed there) at ``budget`` × max_steps, without stopping at the current target;
2. the configuration with the best validation metric overall is rerun on ``seeds`` fresh seeds;
3. target = the per-seed best metrics' median, relaxed to the value that ``hit_fraction`` (90%) of the seeds
   reach (the δ of §6.4);
4. step_hint = the median over those seeds of the first evaluation step reaching the relaxed target; max_steps =
   1.5 × step_hint (rounded up to the evaluation cadence).

All runs go to the results store (rulesets ``calibration`` and ``calibration-seeds``), so an interrupted
calibration resumes. The proposed targets are printed and returned; freezing a suite version means copying them
into the workload classes and bumping the suite version (see ``workloads.CORE_VERSION``).
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
#: the exact command that produced the frozen targets (kept with the results it explains)
CALIBRATION_COMMAND = (
    "optimlab bench calibrate --suite core --optimizers adamw,sgd_nesterov --trials 6 --seeds 3 --budget 1.0 --jobs 2"
)


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


def _best(record: dict[str, Any], higher: bool) -> float:
    v = record.get("best_metric")
    if v is None or not math.isfinite(v) or record.get("status") in ("diverged", "error"):
        return -math.inf if higher else math.inf
    return v


def calibrate(
    result_store: store.ResultStore,
    suite_version: str,
    workloads: Sequence[W.Workload],
    handles: Sequence[adapters.AlgorithmHandle],
    *,
    trials: int = 8,
    seeds: int = 5,
    budget_factor: float = 1.5,
    hit_fraction: float = 0.9,
    smoke: bool = False,
    threads: int = 2,
    jobs: int = 1,
    progress: bool = True,
    echo=print,
) -> dict[str, dict[str, Any]]:
    """Run the procedure; returns workload id -> proposal (target, step_hint, max_steps, evidence)."""
    cells = tuning.plan_quasirandom(
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
    summary = sweep.run_cells(result_store, cells, threads=threads, jobs=jobs, progress=progress)
    echo(f"calibration search: {summary.line()}")
    records = _current(result_store, suite_version, workloads)
    proposals: dict[str, dict[str, Any]] = {}
    best_cells = []
    for w in workloads:
        rs = [r for r in records if r["ruleset"] == "calibration" and r["workload"] == w.id]
        if not rs:
            continue
        best = (
            max(rs, key=lambda r: _best(r, w.higher_is_better))
            if w.higher_is_better
            else min(rs, key=lambda r: _best(r, w.higher_is_better))
        )
        handle = next(h for h in handles if h.id == best["algorithm"])
        best_cells.append((w, handle, best))
    seed_cells = []
    for w, handle, best in best_cells:
        seed_cells += tuning.plan_defaults(
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
    summary = sweep.run_cells(result_store, seed_cells, threads=threads, jobs=jobs, progress=progress)
    echo(f"calibration seeds: {summary.line()}")
    records = _current(result_store, suite_version, workloads)
    for w, handle, best in best_cells:
        rs = [
            r
            for r in records
            if r["ruleset"] == "calibration-seeds"
            and r["workload"] == w.id
            and r["algorithm"] == handle.id
            and r.get("overrides") == best["overrides"]
        ]
        bests = np.array([_best(r, w.higher_is_better) for r in rs], dtype=float)
        if len(bests) == 0:
            continue
        median = float(np.median(bests))
        # the value at least ``hit_fraction`` of the seeds reach (an order statistic, no interpolation)
        if w.higher_is_better:
            relaxed = float(np.quantile(bests, 1 - hit_fraction, method="lower"))
        else:
            relaxed = float(np.quantile(bests, hit_fraction, method="higher"))
        relaxed = relaxed if math.isfinite(relaxed) else median
        target = _round_sig(relaxed, 2, up=not w.higher_is_better)
        reach = []
        for r in rs:
            c = r["curve"]
            step = next(
                (
                    s
                    for s, m in zip(c["step"], c["metric"])
                    if m is not None and (m >= target if w.higher_is_better else m <= target)
                ),
                None,
            )
            reach.append(step if step is not None else math.inf)
        hint = float(np.median(reach)) if reach else math.inf
        every = w.budget_for(smoke).eval_every
        step_hint = int(math.ceil(hint / every) * every) if math.isfinite(hint) else None
        proposals[w.id] = {
            "target": target,
            "median_best": median,
            "per_seed_best": bests.tolist(),
            "hit_fraction": float(np.mean([math.isfinite(s) for s in reach])),
            "step_hint": step_hint,
            "max_steps": int(math.ceil(1.5 * step_hint / every) * every) if step_hint else None,
            "optimizer": handle.id,
            "hparams": best["overrides"],
            "current_target": w.target,
        }
    return proposals


def _current(result_store: store.ResultStore, suite_version: str, workloads: Sequence[W.Workload]) -> list[dict]:
    """The stored calibration runs of this suite made with the current workload code."""
    hashes = {w.id: w.code_hash() for w in workloads}
    return [
        r
        for r in result_store.records()
        if r.get("suite") == suite_version and r.get("workload_hash") == hashes.get(r.get("workload"))
    ]


def _round_sig(x: float, digits: int, up: bool) -> float:
    """Round to ``digits`` significant digits, away from the achievable side (up for a ≤ target, down for ≥)."""
    if x == 0 or not math.isfinite(x):
        return x
    scale = 10 ** (math.floor(math.log10(abs(x))) - digits + 1)
    return (math.ceil(x / scale) if up else math.floor(x / scale)) * scale


def format_proposals(proposals: dict[str, dict[str, Any]]) -> str:
    lines = [f"{'workload':18} {'target':>10} {'(now)':>8} {'median':>10} {'hit':>5} {'hint':>6} {'max':>6}  config"]
    for wid, p in proposals.items():
        hp = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in p["hparams"].items())
        lines.append(
            f"{wid:18} {p['target']:>10.4g} {p['current_target']:>8.3g} {p['median_best']:>10.4g} "
            f"{p['hit_fraction']:>5.0%} {p['step_hint'] or '-':>6} {p['max_steps'] or '-':>6}  {p['optimizer']}: {hp}"
        )
    return "\n".join(lines)
