"""The statistical rules that turn per-replicate measurements into a verdict.

A *check* hands a rule one number per replicate (a seed, or a (seed, setting) pair), already signed so that a
larger value supports the claim: a paired difference "A − B" over seeds, a log-ratio log(steps_B / steps_A), a
slack "tolerance − error", ... The rule returns an :class:`Evaluation`: the estimate, its confidence interval
and one of three verdicts.

Two rules cover every check in this package:

* :class:`MeanAbove` — the claim is "the mean effect exceeds ``margin``". A two-sided ``level`` confidence
  interval [lo, hi] for the mean is computed over the replicates (Student-t interval by default — honest for the
  3–5 seeds these experiments use —, or a percentile bootstrap with a fixed resampling seed, for larger, skewed
  samples). Verdict: **confirmed** if lo > margin (the whole interval supports the claim), **not confirmed** if
  hi ≤ margin (the whole interval contradicts it: the effect is at most the margin), **inconclusive** otherwise,
  or when there are fewer than ``min_n`` replicates. Equivalently: a one-sided test at level (1 − level)/2 in
  each direction.
* :class:`AllPass` — the claim is a property that should hold in every replicate ("the iterate stays in the box",
  "clipped runs never diverge"): each replicate passes when its value is on the right side of ``threshold``. A
  single failing replicate is a counterexample: **not confirmed**. All passing with at least ``min_n``
  replicates: **confirmed**; fewer: **inconclusive**. The estimate is the fraction passing, with its exact
  (Clopper–Pearson) interval for the record.

A claim with several checks is confirmed only if every check is (and not confirmed as soon as one is not): an
intersection–union test, which keeps the stated level without a multiplicity correction.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

CONFIRMED = "confirmed"
NOT_CONFIRMED = "not confirmed"
INCONCLUSIVE = "inconclusive"
VERDICTS = (CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE)

#: resamples and seed of the percentile bootstrap (fixed: the same data always give the same interval)
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Evaluation:
    """What a rule concluded from one check's replicate values."""

    verdict: str
    estimate: float  # the mean effect (MeanAbove) or the fraction of replicates passing (AllPass)
    lo: float  # confidence interval of the estimate (nan when it cannot be computed)
    hi: float
    n: int
    detail: str  # one line for humans: the numbers behind the verdict

    def to_dict(self) -> dict:
        return {
            "verdict": self.verdict,
            "estimate": _finite_or_none(self.estimate),
            "lo": _finite_or_none(self.lo),
            "hi": _finite_or_none(self.hi),
            "n": self.n,
            "detail": self.detail,
        }


def _finite_or_none(x: float) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _as_array(values: Sequence[float]) -> np.ndarray:
    return np.asarray([float(v) for v in values], dtype=np.float64)


def t_quantile(p: float, df: int) -> float:
    """Quantile of Student's t distribution (scipy)."""
    from scipy import stats

    return float(stats.t.ppf(p, df))


def mean_ci_t(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, lo, hi): the Student-t confidence interval of the mean (nan bounds for fewer than 2 values)."""
    x = _as_array(values)
    n = x.size
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan
    half = t_quantile(0.5 + level / 2, n - 1) * float(x.std(ddof=1)) / math.sqrt(n)
    return mean, mean - half, mean + half


def mean_ci_bootstrap(
    values: Sequence[float], level: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> tuple[float, float, float]:
    """(mean, lo, hi): the percentile-bootstrap interval of the mean, resampling the replicates with a fixed seed
    (deterministic). Nan bounds for fewer than 2 values."""
    x = _as_array(values)
    n = x.size
    if n == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if n < 2:
        return mean, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, size=(int(resamples), n))].mean(axis=1)
    lo, hi = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
    return mean, float(lo), float(hi)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval for a proportion k/n."""
    from scipy import stats

    if n == 0:
        return math.nan, math.nan
    a = 1 - level
    lo = 0.0 if k == 0 else float(stats.beta.ppf(a / 2, k, n - k + 1))
    hi = 1.0 if k == n else float(stats.beta.ppf(1 - a / 2, k + 1, n - k))
    return lo, hi


def _fmt(x: float) -> str:
    if x is None or not math.isfinite(x):
        return "nan"
    return f"{x:.3g}"


class Rule:
    """A statistical rule: replicate values → :class:`Evaluation`."""

    def evaluate(self, values: Sequence[float]) -> Evaluation:  # pragma: no cover - interface
        raise NotImplementedError

    def describe(self) -> str:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class MeanAbove(Rule):
    """Mean effect > ``margin``, judged by a ``level`` confidence interval (see the module docstring)."""

    margin: float = 0.0
    level: float = 0.95
    method: str = "t"  # "t" (Student-t interval) or "bootstrap" (percentile bootstrap of the mean)
    min_n: int = 3

    def __post_init__(self) -> None:
        if self.method not in ("t", "bootstrap"):
            raise ValueError(f"method must be 't' or 'bootstrap', got {self.method!r}")
        if not 0.5 < self.level < 1:
            raise ValueError(f"level must be in (0.5, 1), got {self.level}")

    def describe(self) -> str:
        how = "Student-t" if self.method == "t" else "percentile-bootstrap"
        return (
            f"mean effect > {self.margin:g}: confirmed if the {self.level:.0%} {how} CI lies above {self.margin:g}, "
            f"not confirmed if it lies at or below, inconclusive otherwise (n ≥ {self.min_n})"
        )

    def evaluate(self, values: Sequence[float]) -> Evaluation:
        x = _as_array(values)
        n = int(x.size)
        if n == 0:
            return Evaluation(INCONCLUSIVE, math.nan, math.nan, math.nan, 0, "no measurements")
        if not np.all(np.isfinite(x)):
            bad = int((~np.isfinite(x)).sum())
            return Evaluation(INCONCLUSIVE, math.nan, math.nan, math.nan, n, f"{bad} non-finite measurement(s)")
        ci = mean_ci_t if self.method == "t" else mean_ci_bootstrap
        mean, lo, hi = ci(x, self.level)
        detail = f"mean {_fmt(mean)}, {self.level:.0%} CI [{_fmt(lo)}, {_fmt(hi)}], n={n}, margin {self.margin:g}"
        if n < max(self.min_n, 2):
            return Evaluation(INCONCLUSIVE, mean, lo, hi, n, detail + f" (fewer than {max(self.min_n, 2)} replicates)")
        if lo > self.margin:
            verdict = CONFIRMED
        elif hi <= self.margin:
            verdict = NOT_CONFIRMED
        else:
            verdict = INCONCLUSIVE
        return Evaluation(verdict, mean, lo, hi, n, detail)


@dataclass(frozen=True)
class AllPass(Rule):
    """Every replicate satisfies ``value <= threshold`` (``below=True``) or ``value >= threshold``."""

    threshold: float
    below: bool = True
    min_n: int = 3
    level: float = 0.95

    def describe(self) -> str:
        op = "≤" if self.below else "≥"
        return (
            f"every replicate {op} {self.threshold:g}: one failure is a counterexample (not confirmed); "
            f"all pass with n ≥ {self.min_n}: confirmed; otherwise inconclusive"
        )

    def evaluate(self, values: Sequence[float]) -> Evaluation:
        x = _as_array(values)
        n = int(x.size)
        if n == 0:
            return Evaluation(INCONCLUSIVE, math.nan, math.nan, math.nan, 0, "no measurements")
        finite = np.isfinite(x)
        passed = finite & ((x <= self.threshold) if self.below else (x >= self.threshold))
        k = int(passed.sum())
        lo, hi = clopper_pearson(k, n, self.level)
        worst = float(np.max(np.where(finite, x, np.inf)) if self.below else np.min(np.where(finite, x, -np.inf)))
        op = "≤" if self.below else "≥"
        detail = f"{k}/{n} replicates {op} {self.threshold:g} (worst {_fmt(worst)})"
        if k < n:
            verdict = NOT_CONFIRMED
        elif n < self.min_n:
            verdict = INCONCLUSIVE
            detail += f" (fewer than {self.min_n} replicates)"
        else:
            verdict = CONFIRMED
        return Evaluation(verdict, k / n, lo, hi, n, detail)


def combine(verdicts: Sequence[str]) -> str:
    """Overall verdict of several checks (intersection–union): all confirmed → confirmed; any not confirmed →
    not confirmed; otherwise (or no checks) inconclusive."""
    if not verdicts:
        return INCONCLUSIVE
    if any(v == NOT_CONFIRMED for v in verdicts):
        return NOT_CONFIRMED
    if all(v == CONFIRMED for v in verdicts):
        return CONFIRMED
    return INCONCLUSIVE
