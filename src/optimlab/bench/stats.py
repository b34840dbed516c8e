"""The small statistics the scorer uses (benchmark.md §6): the one-sided Mann–Whitney rank test with the smallest
p-value it can give at given sample sizes, Holm's correction over a family of tests, and the probability that k
random tuning trials hit the target. Pure functions on plain numbers, unit-tested in ``tests/bench/test_scoring.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any


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


def smallest_p(n1: int, n2: int) -> float:
    """The smallest p-value :func:`mann_whitney_less` can give for samples of these sizes (complete separation)."""
    return mann_whitney_less(range(n1), range(n1, n1 + n2))


def holm(pvalues: Mapping[Any, float]) -> dict[Any, float]:
    """Holm–Bonferroni adjusted p-values (family-wise error control over all the tests given)."""
    items = sorted(pvalues.items(), key=lambda kv: kv[1])
    m = len(items)
    out: dict[Any, float] = {}
    running = 0.0
    for i, (k, p) in enumerate(items):
        running = max(running, min(1.0, (m - i) * p))
        out[k] = running
    return out


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
