"""Scoring (benchmark.md §6): per-workload times on three clocks, AlgoPerf performance profiles with bootstrap
confidence intervals, the pairwise win-rate matrix, speedup over a baseline, failure rates, memory, and one-sided
Mann–Whitney tests. The pure functions take plain tables and are unit-tested on hand-made ones.

Clocks, per run: ``S`` = steps to the target (first evaluation step meeting it), ``G`` = gradient-equivalent
evaluations to the target (gradients + ``HVP_COST`` × Hessian-vector products), ``T`` = modelled time S × c_{s,w}
with c from the step-cost table (falling back to the run's own measured seconds per step when the table lacks the
pair, flagged in the output). A run that misses, diverges or errors has time ∞.

Per-workload aggregation: ``defaults`` — the median over seeds; ``tuned`` — the median over studies of the minimum
over the trials of each study. Medians of lists containing ∞ follow the usual order (∞ is larger than every
number), so a workload counts as solved when more than half of the seeds are.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from .stats import holm, mann_whitney_less, smallest_p, tuning_budget_curve

INF = math.inf
CLOCKS = ("T", "S", "G")
#: the clock of the per-workload winners: gradient-equivalent evaluations (hardware-free, equal compute)
RANK_CLOCK = "G"
HVP_COST = 2.0
R_MAX = 4.0
FAILED = ("diverged", "error")
#: miss distances (decades from the target) are capped here when averaged: a diverged run counts as this far
DISTANCE_CAP = 10.0
#: significance level of the per-workload tie test (Holm-corrected)
ALPHA = 0.05
#: what the leaderboard's tuning-free column (:func:`tuning_free`) means
TUNING_FREE_NOTE = (
    "Tuning-free: lr = no learning rate to tune (the step size is estimated during the run); schedule = "
    "schedule-free, run with a constant learning rate after the warm-up (the benchmark puts no decay on top)."
)


# ---------------------------------------------------------------------------------------------- small pieces
def median(values: Sequence[float]) -> float:
    """Median with ∞ allowed (the mean of the two middle values for even length; ∞ if either is ∞)."""
    if not values:
        return INF
    v = sorted(values)
    n = len(v)
    if n % 2:
        return float(v[n // 2])
    a, b = v[n // 2 - 1], v[n // 2]
    return INF if math.isinf(a) or math.isinf(b) else 0.5 * (a + b)


def workload_time(runs: Sequence[Sequence[float]]) -> float:
    """Aggregate one (optimizer, workload) cell: ``runs`` is a list of groups (one group per seed for the
    ``defaults`` ruleset, with one value; one group per study for ``tuned``, one value per trial). The time is
    the median over groups of the minimum within each group."""
    return median([min(g) if len(g) else INF for g in runs])


def profile_ratios(times: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """r_{s,w} = t_{s,w} / min_s t_{s,w}; ∞ when s missed or when nobody solved w."""
    algorithms = list(times)
    workloads = sorted({w for a in algorithms for w in times[a]})
    ratios: dict[str, dict[str, float]] = {a: {} for a in algorithms}
    for w in workloads:
        best = min(times[a].get(w, INF) for a in algorithms)
        for a in algorithms:
            t = times[a].get(w, INF)
            if math.isinf(best) or math.isinf(t):
                ratios[a][w] = INF
            elif best <= 0:
                ratios[a][w] = 1.0 if t <= 0 else INF
            else:
                ratios[a][w] = t / best
    return ratios


def profile_score(ratios: Mapping[str, float], r_max: float = R_MAX, n_workloads: int | None = None) -> float:
    """AlgoPerf score: (1 / (r_max − 1)) ∫₁^{r_max} ρ(τ) dτ with ρ(τ) = fraction of workloads with r ≤ τ.

    A workload with ratio r ∈ [1, r_max] contributes (r_max − r)/(r_max − 1); a ratio ≥ r_max or ∞ contributes 0.
    """
    n = n_workloads if n_workloads is not None else len(ratios)
    if n == 0:
        return 0.0
    total = sum(max(0.0, r_max - max(1.0, r)) for r in ratios.values() if not math.isinf(r))
    return total / ((r_max - 1.0) * n)


def profile_curve(ratios: Mapping[str, float], r_max: float = R_MAX) -> list[tuple[float, float]]:
    """The step function ρ(τ) on [1, r_max] as (τ, ρ) breakpoints (ρ right-continuous)."""
    n = len(ratios)
    if n == 0:
        return [(1.0, 0.0), (r_max, 0.0)]
    finite = sorted(r for r in ratios.values() if r <= r_max)
    points = [(1.0, sum(1 for r in finite if r <= 1.0) / n)]
    for r in finite:
        if r > 1.0:
            points.append((r, sum(1 for q in finite if q <= r) / n))
    points.append((r_max, len(finite) / n))
    return points


def profile_scores(times: Mapping[str, Mapping[str, float]], r_max: float = R_MAX) -> dict[str, float]:
    ratios = profile_ratios(times)
    n = len({w for a in times for w in times[a]})
    return {a: profile_score(ratios[a], r_max, n) for a in times}


def win_rates(times: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """W[a][b] = fraction of workloads where a is faster than b (ties, including both ∞, count ½)."""
    algorithms = list(times)
    workloads = sorted({w for a in algorithms for w in times[a]})
    out: dict[str, dict[str, float]] = {a: {} for a in algorithms}
    for a in algorithms:
        for b in algorithms:
            if a == b or not workloads:
                continue
            score = 0.0
            for w in workloads:
                ta, tb = times[a].get(w, INF), times[b].get(w, INF)
                score += 1.0 if ta < tb else 0.5 if ta == tb else 0.0
            out[a][b] = score / len(workloads)
    return out


def geomean_speedup(
    times: Mapping[str, Mapping[str, float]], baseline: str, caps: Mapping[str, Mapping[str, float]] | None = None
) -> dict[str, dict[str, Any]]:
    """Speedup over ``baseline``: the geometric mean of t_baseline / t_s over the workloads that **both** reach
    (a miss never earns speedup), with ``both`` (how many such workloads), ``misses`` (workloads the baseline
    reaches and s misses) and ``only`` (workloads s reaches and the baseline misses) beside it; the speedup is None
    when no workload is reached by both. (``caps`` is accepted for compatibility and ignored: charging a miss as
    ``max_steps + 1`` gave an optimizer that never reaches the target a speedup above 1.)"""
    out: dict[str, dict[str, Any]] = {}
    base = times.get(baseline)
    if base is None:
        return out
    workloads = sorted({w for a in times for w in times[a]} | set(base))
    for a in times:
        logs, misses, only = [], 0, 0
        for w in workloads:
            tb, ta = base.get(w, INF), times[a].get(w, INF)
            if math.isfinite(ta) and math.isfinite(tb) and ta > 0 and tb > 0:
                logs.append(math.log(tb / ta))
            elif math.isfinite(tb) and not math.isfinite(ta):
                misses += 1
            elif math.isfinite(ta) and not math.isfinite(tb):
                only += 1
        speed = math.exp(sum(logs) / len(logs)) if logs else None
        out[a] = {"speedup": speed, "both": len(logs), "misses": misses, "only": only}
    return out


def miss_distance(best: float | None, target: float, higher_is_better: bool, scale: str = "log") -> float:
    """How far a run's best metric stayed from the target, in decades (0 on reaching it; ∞ with no finite
    metric): log10(best / target) for error-like metrics (``scale="log"``, or any positive metric to minimize),
    log10((1 − best) / (1 − target)) for accuracies (to maximize, ceiling 1). The secondary score that separates
    runs that all miss (time ∞)."""
    if best is None or not math.isfinite(best):
        return INF
    if higher_is_better:
        if best >= target:
            return 0.0
        return math.log10(max(1.0 - best, 1e-12) / max(1.0 - target, 1e-12))
    if best <= target:
        return 0.0
    if best > 0 and target > 0:
        return math.log10(best / target)
    return best - target


def bootstrap_scores(
    runs: Mapping[str, Mapping[str, Sequence[Sequence[float]]]],
    *,
    n_boot: int = 1000,
    r_max: float = R_MAX,
    seed: int = 0,
    level: float = 0.95,
    distances: Mapping[str, Mapping[str, float]] | None = None,
    with_ranks: bool = False,
) -> dict[str, Any]:
    """Percentile CIs of the profile scores, resampling workloads (the same draw for every optimizer) and,
    within every cell, the groups (seeds or studies) with replacement. With ``with_ranks``: ``{"ci": …,
    "rank_ci": …}``, the rank interval of each optimizer (rank 1 = best; ranked by score, then by the mean miss
    distance over the drawn workloads, ``distances[a][w]``; equal keys share the better rank)."""
    algorithms = list(runs)
    workloads = sorted({w for a in algorithms for w in runs[a]})
    if not algorithms or not workloads:
        return {"ci": {}, "rank_ci": {}} if with_ranks else {}
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {a: [] for a in algorithms}
    ranks: dict[str, list[int]] = {a: [] for a in algorithms}
    for _ in range(n_boot):
        picks = rng.integers(0, len(workloads), len(workloads))
        times: dict[str, dict[str, float]] = {a: {} for a in algorithms}
        for j, wi in enumerate(picks):
            w = workloads[wi]
            for a in algorithms:
                groups = runs[a].get(w, [])
                chosen = [groups[i] for i in rng.integers(0, len(groups), len(groups))] if groups else []
                times[a][f"{j}:{w}"] = workload_time(chosen) if chosen else INF
        scores = profile_scores(times, r_max)
        keys = {}
        for a, sc in scores.items():
            samples[a].append(sc)
            d = [(distances or {}).get(a, {}).get(workloads[wi], INF) for wi in picks]
            keys[a] = (-round(sc, 12), round(_mean_capped(d), 9))
        for a in algorithms:
            ranks[a].append(1 + sum(keys[b] < keys[a] for b in algorithms))
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    ci = {a: (float(np.percentile(v, lo)), float(np.percentile(v, hi))) for a, v in samples.items()}
    if not with_ranks:
        return ci
    rank_ci = {a: (int(np.floor(np.percentile(v, lo))), int(np.ceil(np.percentile(v, hi)))) for a, v in ranks.items()}
    return {"ci": ci, "rank_ci": rank_ci}


def _mean_capped(values: Sequence[float], cap: float = DISTANCE_CAP) -> float:
    """Mean of miss distances, each capped at ``cap`` decades (a diverged run is as far as it gets)."""
    return sum(min(v, cap) for v in values) / len(values) if values else cap


# ---------------------------------------------------------------------------------------------- from records
from .variants import hparams_key, latest_per_key, variant  # noqa: E402  (re-exported)


def run_value(record: Mapping[str, Any], clock: str, cost: float | None) -> float:
    """The run's time on ``clock`` (∞ unless it hit the target)."""
    if record.get("status") != "hit" or record.get("steps_to_target") is None:
        return INF
    s = float(record["steps_to_target"])
    if clock == "S":
        return s
    if clock == "G":
        return float(record.get("grad_evals_to_target") or 0) + HVP_COST * float(record.get("hvp_evals_to_target") or 0)
    if clock == "T":
        return s * cost if cost is not None else INF
    raise ValueError(f"unknown clock {clock!r}")


def amortized(step_times: Sequence[float]) -> float:
    """The amortized cost of a step: the mean over a whole number of periods (refresh steps included), which the
    median of single steps would leave out."""
    return sum(step_times) / len(step_times)


def run_seconds_per_step(record: Mapping[str, Any]) -> float | None:
    """The run's own amortized step cost: train time over all its steps (every refresh step included)."""
    steps = record.get("steps") or 0
    return record["train_time"] / steps if steps and record.get("train_time") else None


def run_distance(record: Mapping[str, Any]) -> float:
    """:func:`miss_distance` of a run (0 on a hit)."""
    if record.get("status") == "hit":
        return 0.0
    if record.get("status") in FAILED:
        return INF
    return miss_distance(
        record.get("best_metric"),
        float(record.get("target", 0.0)),
        bool(record.get("higher_is_better")),
    )


# ---------------------------------------------------------------------------------------------- score stages
Cells = dict  # (variant, workload) -> list of records


def _select(records: Iterable[Mapping[str, Any]], ruleset: str, suite: str | None) -> list[dict[str, Any]]:
    """The ruleset's latest runs, each named by its variant."""
    recs = []
    for r in latest_per_key(records):
        if r.get("ruleset") == ruleset and (suite is None or r["suite"] == suite):
            recs.append({**r, "variant": variant(r)})
    return recs


def _run_costs(cells: Cells, costs: Mapping[tuple, float]) -> tuple[dict[int, float | None], dict]:
    """Seconds per step of every run (by ``id``): the step-cost table at the run's own hyperparameters, else the
    run's own amortized cost; and per cell where the costs came from."""
    table = {(k[0], k[1], k[2] if len(k) > 2 else ""): v for k, v in costs.items()}
    per_run: dict[int, float | None] = {}
    source: dict[str, dict[str, str]] = defaultdict(dict)
    for (a, w), rs in cells.items():
        kinds = set()
        for r in rs:
            c = table.get((r["algorithm"], w, hparams_key(r.get("overrides"))))
            kinds.add("step-cost table" if c is not None else "measured in runs (amortized)")
            per_run[id(r)] = c if c is not None else run_seconds_per_step(r)
        source[a][w] = kinds.pop() if len(kinds) == 1 else "mixed: table and runs"
    return per_run, {a: dict(v) for a, v in source.items()}


def _groups(rs: Sequence[Mapping[str, Any]], ruleset: str, value) -> list[list[float]]:
    """One group per seed (defaults: one value each) or per study (tuned: one value per trial)."""
    if ruleset == "defaults":
        return [[value(r)] for r in sorted(rs, key=lambda r: r.get("seed", 0))]
    studies: dict[Any, list[float]] = defaultdict(list)
    for r in rs:
        studies[r.get("study")].append(value(r))
    return [studies[k] for k in sorted(studies, key=lambda k: (k is None, k))]


def _clock(cells: Cells, algorithms, workloads, ruleset, clock, cost, baseline, distances, r_max, n_boot):
    """Times, ratios, profile scores with CIs and rank intervals, win rates and speedups on one clock."""

    def value(r: Mapping[str, Any]) -> float:
        return run_value(r, clock, cost.get(id(r)))

    runs = {a: {w: _groups(cells.get((a, w), []), ruleset, value) for w in workloads} for a in algorithms}
    runs = {a: {w: g for w, g in per.items() if (a, w) in cells} for a, per in runs.items()}
    times = {a: {w: workload_time(g) for w, g in runs[a].items()} for a in algorithms}
    ratios = profile_ratios(times)
    boot = bootstrap_scores(runs, n_boot=n_boot, r_max=r_max, distances=distances, with_ranks=True) if n_boot else {}
    speed = geomean_speedup(times, baseline) if baseline in times else {}
    return {
        "times": _finite(times),
        "ratios": _finite(ratios),
        "scores": profile_scores(times, r_max),
        "ci": (boot or {}).get("ci", {}),
        "rank_ci": (boot or {}).get("rank_ci", {}),
        "curves": {a: profile_curve(ratios[a], r_max) for a in algorithms},
        "winrate": win_rates(times),
        "speedup": {a: v["speedup"] for a, v in speed.items()},
        "speedup_detail": speed,
        "speedup_baseline": baseline if speed else None,
        "_runs": runs,
    }


def _run_stats(recs: Sequence[Mapping[str, Any]], algorithms: Sequence[str]) -> dict[str, dict[str, Any]]:
    stats = {}
    for a in algorithms:
        rs = [r for r in recs if r["variant"] == a]
        n = len(rs)
        stats[a] = {
            "runs": n,
            "hit_rate": sum(r["status"] == "hit" for r in rs) / n if n else 0.0,
            "failure_rate": sum(r["status"] in FAILED for r in rs) / n if n else 0.0,
            "diverged": sum(r["status"] == "diverged" for r in rs),
            "errors": sum(r["status"] == "error" for r in rs),
        }
    return stats


def _memory(cells: Cells) -> dict[str, dict[str, dict[str, int]]]:
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    for (a, w), rs in cells.items():
        rss = [max(0, (r.get("peak_rss_bytes") or 0) - (r.get("start_rss_bytes") or 0)) for r in rs]
        out[a][w] = {
            "state_bytes": int(statistics.median([r.get("state_bytes") or 0 for r in rs])),
            "param_bytes": int(statistics.median([r.get("param_bytes") or 0 for r in rs])),
            "peak_rss_bytes": int(max(r.get("peak_rss_bytes") or 0 for r in rs)),
            "rss_increase_bytes": int(statistics.median(rss)),
        }
    return dict(out)


def _per_unit(cells: Cells, a: str, w: str, ruleset: str, clock: str, cost) -> list[float]:
    """The independent values a comparison uses: one per seed (defaults), the best trial of each study (tuned)."""
    return [min(g) for g in _groups(cells.get((a, w), []), ruleset, lambda r: run_value(r, clock, cost.get(id(r))))]


def _tests(cells: Cells, algorithms, workloads, baseline: str, ruleset: str, cost) -> dict[str, dict[str, dict]]:
    """One-sided Mann–Whitney of each optimizer against the baseline per workload on S (per seed, or per study's
    best trial in the tuned rulesets — never pooled trials), with Holm's correction over every test."""
    raw: dict[tuple[str, str], float] = {}
    if baseline in algorithms:
        for a in algorithms:
            for w in workloads if a != baseline else ():
                p = mann_whitney_less(
                    _per_unit(cells, a, w, ruleset, "S", cost), _per_unit(cells, baseline, w, ruleset, "S", cost)
                )
                if not math.isnan(p):
                    raw[(a, w)] = p
    adjusted = holm(raw)
    out: dict[str, dict[str, dict]] = defaultdict(dict)
    for (a, w), p in raw.items():
        out[a][w] = {"p": p, "p_holm": adjusted[(a, w)]}
    return dict(out)


def _winners(cells: Cells, algorithms, workloads, ruleset, clock, times, distances, cost) -> dict[str, dict]:
    """Per workload: the fastest variant on ``clock`` (by miss distance when nobody reached the target) and the
    variants statistically tied with it (one-sided Mann–Whitney on per-seed/per-study values, Holm-corrected
    within the workload, p ≥ ALPHA: not shown to be slower); ``separable`` is False when the sample sizes cannot
    give any comparison an adjusted p below ALPHA (then the ties are merely every variant that reached the target)."""
    out = {}
    for w in workloads:
        present = [a for a in algorithms if (a, w) in cells]
        if not present:
            continue
        key = {a: (times[a].get(w, INF), distances[a].get(w, INF), a) for a in present}
        best = min(present, key=lambda a: key[a])
        reached = math.isfinite(key[best][0])
        units = {a: _per_unit(cells, a, w, ruleset, clock, cost) for a in present}
        pv = {a: mann_whitney_less(units[best], units[a]) for a in present if a != best}
        adj = holm({a: p for a, p in pv.items() if not math.isnan(p)})
        ties = [a for a in present if a != best and reached and adj.get(a, 1.0) >= ALPHA and math.isfinite(key[a][0])]
        # Holm's smallest adjusted p is m × the smallest p: with 3 seeds and m ≥ 2 no comparison can reach α
        floor = min((len(adj) * smallest_p(len(units[best]), len(units[a])) for a in adj), default=0.0)
        out[w] = {
            "winner": best,
            "reached": reached,
            "ties": sorted(ties),
            "separable": floor < ALPHA,
            "time": key[best][0] if reached else None,
            "distance": key[best][1],
        }
    return out


def _best_hparams(cells: Cells) -> dict[str, dict[str, dict[str, Any]]]:
    """Per variant and workload: the hyperparameters of its best run (lowest tuning objective) and that value."""
    out: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    for (a, w), rs in cells.items():
        best = min(rs, key=lambda r: (r.get("value") if r.get("value") is not None else INF, r.get("seed") or 0))
        out[a][w] = {"hparams": best.get("hparams") or {}, "objective": best.get("value"), "status": best["status"]}
    return dict(out)


def _tuning_extras(cells: Cells, algorithms, workloads) -> dict[str, Any]:
    """Tuning-budget curves and learning-rate sensitivity from the trial pool (tuned rulesets)."""
    budget_curves = {}
    sensitivity: dict[str, dict[str, list]] = defaultdict(dict)
    for a in algorithms:
        per_w = {}
        for w in workloads:
            rs = cells.get((a, w), [])
            if rs:
                per_w[w] = (len(rs), sum(r["status"] == "hit" for r in rs))
                lr = [
                    (r["hparams"]["lr"], r.get("value"))
                    for r in rs
                    if isinstance((r.get("hparams") or {}).get("lr"), (int, float))
                ]
                sensitivity[a][w] = sorted(p for p in lr if p[1] is not None)
        budget_curves[a] = tuning_budget_curve(per_w, max((n for n, _ in per_w.values()), default=0))
    return {"tuning_budget": budget_curves, "lr_sensitivity": dict(sensitivity)}


def score(
    records: Iterable[Mapping[str, Any]],
    *,
    ruleset: str,
    suite: str | None = None,
    costs: Mapping[tuple, float] | None = None,
    baseline: str = "adamw",
    r_max: float = R_MAX,
    n_boot: int = 1000,
    **_ignored: Any,
) -> dict[str, Any]:
    """Everything the report shows for one ruleset, as plain JSON-able data (stages above; optimizers are named by
    :func:`variant`)."""
    recs = _select(records, ruleset, suite)
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        grouped[(r["variant"], r["workload"])].append(r)
    cells: Cells = dict(grouped)
    algorithms = sorted({a for a, _ in cells})
    workloads = sorted({w for _, w in cells})
    cost, cost_source = _run_costs(cells, costs or {})
    distances = {
        a: {w: median([min(g) for g in _groups(rs, ruleset, run_distance)]) for (a2, w), rs in cells.items() if a2 == a}
        for a in algorithms
    }
    out: dict[str, Any] = {
        "ruleset": ruleset,
        "suite": suite,
        "algorithms": algorithms,
        "workloads": workloads,
        "r_max": r_max,
        "libraries": {a: next(r["library"] for r in recs if r["variant"] == a) for a in algorithms},
        "tuning_free": tuning_free(recs),
        "cost_source": cost_source,
        "distances": _finite(distances),
        "clocks": {},
    }
    for clock in CLOCKS:
        out["clocks"][clock] = _clock(
            cells, algorithms, workloads, ruleset, clock, cost, baseline, distances, r_max, n_boot
        )
    times = {
        a: {w: (INF if v is None else v) for w, v in row.items()}
        for a, row in out["clocks"][RANK_CLOCK]["times"].items()
    }
    out["winners"] = _winners(cells, algorithms, workloads, ruleset, RANK_CLOCK, times, distances, cost)
    for clock in CLOCKS:
        out["clocks"][clock].pop("_runs")
    out["stats"] = _run_stats(recs, algorithms)
    out["memory"] = _memory(cells)
    out["tests_vs_baseline"] = _tests(cells, algorithms, workloads, baseline, ruleset, cost)
    out["best_hparams"] = _best_hparams(cells)
    if ruleset != "defaults":
        out.update(_tuning_extras(cells, algorithms, workloads))
    out["errors"] = [
        {"algorithm": r["variant"], "workload": r["workload"], "seed": r.get("seed"), "error": r.get("error")}
        for r in recs
        if r["status"] == "error"
    ][:50]
    return out


def tuning_free(records: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Variant -> what its optimlab algorithm needs no tuning of (the registry's ``tuning_free``: ``"lr"`` or
    ``"schedule"``), the leaderboard's tuning-free marker; variants of other libraries or unflagged ones are absent."""
    from .. import registry as R

    out: dict[str, str] = {}
    for r in records:
        if r.get("library") != "optimlab" or r["variant"] in out:
            continue
        try:
            kind = R.spec(str(r["algorithm"]).rpartition(":")[2]).tuning_free
        except KeyError:  # a record of an algorithm no longer registered
            kind = None
        if kind:
            out[r["variant"]] = kind
    return out


def _finite(table: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float | None]]:
    """∞ → None for JSON."""
    return {a: {w: (None if math.isinf(v) else v) for w, v in row.items()} for a, row in table.items()}
