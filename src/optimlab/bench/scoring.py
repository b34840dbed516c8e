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

INF = math.inf
CLOCKS = ("T", "S", "G")
HVP_COST = 2.0
R_MAX = 4.0
FAILED = ("diverged", "error")


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
    times: Mapping[str, Mapping[str, float]], baseline: str, caps: Mapping[str, Mapping[str, float]]
) -> dict[str, float]:
    """Geometric mean over workloads of t_baseline / t_s, where a miss counts as its cap (``max_steps + 1``
    steps on that clock, from ``caps[algorithm][workload]``)."""
    out = {}
    base = times.get(baseline)
    if base is None:
        return out
    workloads = sorted(base)
    for a in times:
        logs = []
        for w in workloads:
            tb = base.get(w, INF)
            ta = times[a].get(w, INF)
            tb = caps.get(baseline, {}).get(w, INF) if math.isinf(tb) else tb
            ta = caps.get(a, {}).get(w, INF) if math.isinf(ta) else ta
            if math.isfinite(ta) and math.isfinite(tb) and ta > 0 and tb > 0:
                logs.append(math.log(tb / ta))
        out[a] = math.exp(sum(logs) / len(logs)) if logs else float("nan")
    return out


def bootstrap_scores(
    runs: Mapping[str, Mapping[str, Sequence[Sequence[float]]]],
    *,
    n_boot: int = 1000,
    r_max: float = R_MAX,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, tuple[float, float]]:
    """Percentile CIs of the profile scores, resampling workloads (the same draw for every optimizer) and,
    within every cell, the groups (seeds or studies) with replacement."""
    algorithms = list(runs)
    workloads = sorted({w for a in algorithms for w in runs[a]})
    if not algorithms or not workloads:
        return {}
    rng = np.random.default_rng(seed)
    samples: dict[str, list[float]] = {a: [] for a in algorithms}
    for _ in range(n_boot):
        picks = rng.integers(0, len(workloads), len(workloads))
        times: dict[str, dict[str, float]] = {a: {} for a in algorithms}
        for j, wi in enumerate(picks):
            w = workloads[wi]
            for a in algorithms:
                groups = runs[a].get(w, [])
                if groups:
                    chosen = [groups[i] for i in rng.integers(0, len(groups), len(groups))]
                    times[a][f"{j}:{w}"] = workload_time(chosen)
                else:
                    times[a][f"{j}:{w}"] = INF
        for a, s in profile_scores(times, r_max).items():
            samples[a].append(s)
    lo, hi = (1 - level) / 2 * 100, (1 + level) / 2 * 100
    return {a: (float(np.percentile(v, lo)), float(np.percentile(v, hi))) for a, v in samples.items()}


def hit_probability_after(k: int, n: int, n_hits: int) -> float:
    """P(at least one of k trials drawn without replacement from n, of which n_hits hit, hits)."""
    if k <= 0 or n <= 0:
        return 0.0
    k = min(k, n)
    misses = n - n_hits
    if misses < k:
        return 1.0
    return 1.0 - math.comb(misses, k) / math.comb(n, k)


def tuning_budget_curve(hits_per_workload: Mapping[str, tuple[int, int]], k_max: int) -> list[float]:
    """Mean over workloads of P(solved after k random trials), k = 1..k_max; ``hits_per_workload[w] = (n, hits)``
    (Sivaprasad et al. 2020's expected-best-after-k idea, on the hit/miss outcome)."""
    if not hits_per_workload:
        return []
    return [
        sum(hit_probability_after(k, n, h) for n, h in hits_per_workload.values()) / len(hits_per_workload)
        for k in range(1, k_max + 1)
    ]


def mann_whitney_less(x: Sequence[float], y: Sequence[float]) -> float:
    """One-sided p-value of H1: x tends to be smaller than y (normal approximation with tie and continuity
    corrections; ∞ ranks above every number). NaN when a sample is empty or all values tie."""
    x, y = list(x), list(y)
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        return float("nan")
    pooled = sorted(x + y)
    ranks: dict[float, float] = {}
    i = 0
    tie_term = 0.0
    while i < len(pooled):
        j = i
        while j + 1 < len(pooled) and pooled[j + 1] == pooled[i]:
            j += 1
        ranks[pooled[i]] = (i + j) / 2 + 1
        t = j - i + 1
        tie_term += t**3 - t
        i = j + 1
    r1 = sum(ranks[v] for v in x)
    u1 = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    var = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))) if n > 1 else 0.0
    if var <= 0:
        return float("nan")
    z = (u1 - n1 * n2 / 2 + 0.5) / math.sqrt(var)  # small U supports "x smaller"
    return 0.5 * math.erfc(-z / math.sqrt(2))


# ---------------------------------------------------------------------------------------------- from records
def cell_identity(record: Mapping[str, Any]) -> str:
    """What a run measures, ignoring code versions: a rerun after an optimizer or workload edit replaces it."""
    parts = [record.get(k) for k in ("suite", "ruleset", "workload", "algorithm", "seed", "study", "trial")]
    parts += [record.get("budget_factor"), record.get("sampler")]
    parts.append(sorted((record.get("overrides") or {}).items()) if record.get("trial") is None else None)
    return repr(parts)


def latest_per_key(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One record per run identity (:func:`cell_identity`): the most recently written one."""
    best: dict[str, dict[str, Any]] = {}
    for r in records:
        k = cell_identity(r) if "workload" in r else (r.get("key") or str(r.get("trial_id")))
        if k not in best or (r.get("trial_id") or 0) > (best[k].get("trial_id") or 0):
            best[k] = dict(r)
    return list(best.values())


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


def run_seconds_per_step(record: Mapping[str, Any]) -> float | None:
    steps = record.get("steps") or 0
    return record["train_time"] / steps if steps and record.get("train_time") else None


def score(
    records: Iterable[Mapping[str, Any]],
    *,
    ruleset: str,
    suite: str | None = None,
    costs: Mapping[tuple[str, str], float] | None = None,
    baseline: str = "adamw",
    baseline_times: Mapping[str, Mapping[str, float]] | None = None,
    r_max: float = R_MAX,
    n_boot: int = 1000,
    max_steps: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """Everything the report shows for one ruleset, as plain JSON-able data."""
    recs = [
        r for r in latest_per_key(records) if r.get("ruleset") == ruleset and (suite is None or r["suite"] == suite)
    ]
    algorithms = sorted({r["algorithm"] for r in recs})
    workloads = sorted({r["workload"] for r in recs})
    costs = dict(costs or {})
    # cost per (algorithm, workload): the step-cost table, else the runs' own median seconds per step
    cost_source: dict[str, dict[str, str]] = defaultdict(dict)
    unit_cost: dict[tuple[str, str], float | None] = {}
    by_cell: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        by_cell[(r["algorithm"], r["workload"])].append(r)
    for (a, w), rs in by_cell.items():
        if (a, w) in costs:
            unit_cost[(a, w)] = costs[(a, w)]
            cost_source[a][w] = "step-cost table"
        else:
            measured = [c for c in (run_seconds_per_step(r) for r in rs) if c]
            unit_cost[(a, w)] = statistics.median(measured) if measured else None
            cost_source[a][w] = "measured in runs (unmodelled)"

    def groups_of(rs: list[dict[str, Any]], clock: str) -> list[list[float]]:
        cost = unit_cost[(rs[0]["algorithm"], rs[0]["workload"])]
        if ruleset == "defaults":
            return [[run_value(r, clock, cost)] for r in sorted(rs, key=lambda r: r.get("seed", 0))]
        studies: dict[Any, list[float]] = defaultdict(list)
        for r in rs:
            studies[r.get("study")].append(run_value(r, clock, cost))
        return [studies[k] for k in sorted(studies, key=lambda k: (k is None, k))]

    out: dict[str, Any] = {
        "ruleset": ruleset,
        "suite": suite,
        "algorithms": algorithms,
        "workloads": workloads,
        "r_max": r_max,
        "libraries": {a: next(r["library"] for r in recs if r["algorithm"] == a) for a in algorithms},
        "cost_source": {a: dict(v) for a, v in cost_source.items()},
        "clocks": {},
    }
    max_steps = dict(max_steps or {})
    for r in recs:
        max_steps.setdefault(r["workload"], r.get("max_steps") or 0)
    for clock in CLOCKS:
        runs = {a: {w: groups_of(by_cell[(a, w)], clock) for w in workloads if (a, w) in by_cell} for a in algorithms}
        times = {a: {w: workload_time(g) for w, g in runs[a].items()} for a in algorithms}
        ratios = profile_ratios(times)
        caps: dict[str, dict[str, float]] = defaultdict(dict)
        for (a, w), rs in by_cell.items():
            per_step = 1.0
            if clock == "G":
                ge = [(r.get("grad_evals") or 0) + HVP_COST * (r.get("hvp_evals") or 0) for r in rs]
                st = [r.get("steps") or 0 for r in rs]
                per_step = sum(ge) / sum(st) if sum(st) else 1.0
            elif clock == "T":
                per_step = unit_cost[(a, w)] or INF
            caps[a][w] = (max_steps.get(w, 0) + 1) * per_step
        base = times
        base_name = baseline
        if baseline_times is not None and clock in baseline_times:
            base = {**times, f"{baseline} (ref)": baseline_times[clock]}
            base_name = f"{baseline} (ref)"
        speed = geomean_speedup(base, base_name, caps) if base_name in base else {}
        out["clocks"][clock] = {
            "times": _finite(times),
            "ratios": _finite(ratios),
            "scores": profile_scores(times, r_max),
            "ci": bootstrap_scores(runs, n_boot=n_boot, r_max=r_max) if n_boot else {},
            "curves": {a: profile_curve(ratios[a], r_max) for a in algorithms},
            "winrate": win_rates(times),
            "speedup": {a: v for a, v in speed.items() if a in times},
            "speedup_baseline": base_name if speed else None,
        }
    # per-run statistics
    stats: dict[str, dict[str, Any]] = {}
    for a in algorithms:
        rs = [r for r in recs if r["algorithm"] == a]
        n = len(rs)
        stats[a] = {
            "runs": n,
            "hit_rate": sum(r["status"] == "hit" for r in rs) / n if n else 0.0,
            "failure_rate": sum(r["status"] in FAILED for r in rs) / n if n else 0.0,
            "diverged": sum(r["status"] == "diverged" for r in rs),
            "errors": sum(r["status"] == "error" for r in rs),
        }
    out["stats"] = stats
    out["memory"] = {
        a: {
            w: {
                "state_bytes": int(statistics.median([r.get("state_bytes") or 0 for r in rs])),
                "param_bytes": int(statistics.median([r.get("param_bytes") or 0 for r in rs])),
                "peak_rss_bytes": int(max(r.get("peak_rss_bytes") or 0 for r in rs)),
                "rss_increase_bytes": int(
                    statistics.median(
                        [max(0, (r.get("peak_rss_bytes") or 0) - (r.get("start_rss_bytes") or 0)) for r in rs]
                    )
                ),
            }
            for (aa, w), rs in by_cell.items()
            if aa == a
        }
        for a in algorithms
    }
    # one-sided Mann–Whitney on per-seed S against the baseline, per workload
    tests: dict[str, dict[str, float]] = {}
    if baseline in algorithms:
        for a in algorithms:
            if a == baseline:
                continue
            tests[a] = {}
            for w in workloads:
                x = [run_value(r, "S", None) for r in by_cell.get((a, w), [])]
                y = [run_value(r, "S", None) for r in by_cell.get((baseline, w), [])]
                p = mann_whitney_less(x, y)
                if not math.isnan(p):
                    tests[a][w] = p
    out["tests_vs_baseline"] = tests
    if ruleset != "defaults":
        # tuning-budget curves and learning-rate sensitivity from the same trial pool
        budget_curves = {}
        sensitivity: dict[str, dict[str, list]] = defaultdict(dict)
        for a in algorithms:
            per_w = {}
            for w in workloads:
                rs = by_cell.get((a, w), [])
                if rs:
                    per_w[w] = (len(rs), sum(r["status"] == "hit" for r in rs))
                    pts = [
                        (r["hparams"]["lr"], r.get("value"))
                        for r in rs
                        if isinstance((r.get("hparams") or {}).get("lr"), (int, float)) and r.get("value") is not None
                    ]
                    sensitivity[a][w] = sorted(pts)
            k_max = max((n for n, _ in per_w.values()), default=0)
            budget_curves[a] = tuning_budget_curve(per_w, k_max)
        out["tuning_budget"] = budget_curves
        out["lr_sensitivity"] = dict(sensitivity)
    out["errors"] = [
        {"algorithm": r["algorithm"], "workload": r["workload"], "seed": r.get("seed"), "error": r.get("error")}
        for r in recs
        if r["status"] == "error"
    ][:50]
    return out


def _finite(table: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, float | None]]:
    """∞ → None for JSON."""
    return {a: {w: (None if math.isinf(v) else v) for w, v in row.items()} for a, row in table.items()}
