"""The statistical rules on synthetic inputs: a clear effect is confirmed, no effect is not, the intervals are
the textbook ones, and everything is deterministic."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from optimlab.claims import _stats as S
from optimlab.claims._stats import CONFIRMED, INCONCLUSIVE, NOT_CONFIRMED, AllPass, MeanAbove, combine


def test_t_interval_matches_scipy():
    x = np.array([0.3, 0.1, 0.45, 0.2, 0.33])
    mean, lo, hi = S.mean_ci_t(x, 0.95)
    ref = stats.t.interval(0.95, len(x) - 1, loc=x.mean(), scale=stats.sem(x))
    assert mean == pytest.approx(x.mean())
    assert (lo, hi) == pytest.approx(ref)


def test_bootstrap_interval_is_deterministic_and_close_to_t_for_many_replicates():
    x = np.random.default_rng(1).normal(1.0, 0.5, size=200)
    a = S.mean_ci_bootstrap(x)
    assert a == S.mean_ci_bootstrap(x)  # fixed resampling seed
    _, lo_t, hi_t = S.mean_ci_t(x)
    assert a[1] < x.mean() < a[2]
    assert a[1] == pytest.approx(lo_t, abs=0.03) and a[2] == pytest.approx(hi_t, abs=0.03)


@pytest.mark.parametrize("method", ["t", "bootstrap"])
def test_clear_effect_is_confirmed(method):
    x = np.random.default_rng(0).normal(1.0, 0.2, size=8)
    ev = MeanAbove(0.0, method=method).evaluate(x)
    assert ev.verdict == CONFIRMED and ev.lo > 0 and ev.n == 8


@pytest.mark.parametrize("method", ["t", "bootstrap"])
def test_no_effect_is_not_confirmed(method):
    # symmetric noise around zero: the interval straddles the margin -> inconclusive, never confirmed
    x = [-0.3, 0.25, -0.1, 0.12, 0.02, -0.05]
    ev = MeanAbove(0.0, method=method).evaluate(x)
    assert ev.verdict == INCONCLUSIVE and ev.lo < 0 < ev.hi


def test_effect_on_the_wrong_side_is_not_confirmed():
    x = np.random.default_rng(0).normal(-1.0, 0.2, size=6)
    assert MeanAbove(0.0).evaluate(x).verdict == NOT_CONFIRMED
    # an exact zero effect (identical runs) is not an effect: the interval [0, 0] lies at the margin
    assert MeanAbove(0.0).evaluate([0.0, 0.0, 0.0]).verdict == NOT_CONFIRMED


def test_margin_is_respected():
    x = [0.5, 0.52, 0.49, 0.51]
    assert MeanAbove(0.4).evaluate(x).verdict == CONFIRMED
    assert MeanAbove(0.6).evaluate(x).verdict == NOT_CONFIRMED


def test_too_few_replicates_or_bad_values_are_inconclusive():
    assert MeanAbove(0.0).evaluate([1.0, 1.1]).verdict == INCONCLUSIVE  # min_n = 3
    ev = MeanAbove(0.0).evaluate([1.0])
    assert ev.verdict == INCONCLUSIVE and math.isnan(ev.lo)
    assert MeanAbove(0.0).evaluate([]).verdict == INCONCLUSIVE
    assert MeanAbove(0.0).evaluate([1.0, float("nan"), 2.0]).verdict == INCONCLUSIVE
    assert MeanAbove(0.0, min_n=2).evaluate([1.0, 1.1]).verdict == CONFIRMED


def test_allpass_counterexample_and_minimum_replicates():
    rule = AllPass(1e-2)
    assert rule.evaluate([1e-3, 2e-3, 5e-3]).verdict == CONFIRMED
    ev = rule.evaluate([1e-3, 2e-2, 5e-3])
    assert ev.verdict == NOT_CONFIRMED and ev.estimate == pytest.approx(2 / 3) and "worst 0.02" in ev.detail
    assert rule.evaluate([1e-3, 2e-3]).verdict == INCONCLUSIVE
    assert rule.evaluate([1e-3, float("inf"), 0.0]).verdict == NOT_CONFIRMED  # non-finite fails
    assert AllPass(0.9, below=False).evaluate([0.95, 0.99, 0.91]).verdict == CONFIRMED
    assert AllPass(0.9, below=False).evaluate([0.95, 0.5, 0.91]).verdict == NOT_CONFIRMED


def test_clopper_pearson_known_values():
    lo, hi = S.clopper_pearson(5, 5)
    assert hi == 1.0 and lo == pytest.approx(0.025 ** (1 / 5))  # two-sided 95%: (α/2)^(1/n)
    lo, hi = S.clopper_pearson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 10))


def test_combine_is_intersection_union():
    assert combine([CONFIRMED, CONFIRMED]) == CONFIRMED
    assert combine([CONFIRMED, INCONCLUSIVE]) == INCONCLUSIVE
    assert combine([CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE]) == NOT_CONFIRMED
    assert combine([]) == INCONCLUSIVE


def test_rules_describe_themselves_and_validate():
    assert "95%" in MeanAbove().describe() and "Student-t" in MeanAbove().describe()
    assert "bootstrap" in MeanAbove(method="bootstrap").describe()
    assert "counterexample" in AllPass(1.0).describe()
    with pytest.raises(ValueError):
        MeanAbove(method="z")
    with pytest.raises(ValueError):
        MeanAbove(level=1.5)
