"""The scorer on hand-made tables: ∞ handling, ties, the r_max cut-off, medians of study minima, bootstrap,
win rates, speedups and the Mann–Whitney test."""

from __future__ import annotations

import math

import pytest

from optimlab.bench import report, stats
from optimlab.bench import scoring as S

INF = math.inf


def test_median_with_infinity():
    assert S.median([1.0, 2.0, INF]) == 2.0
    assert S.median([1.0, INF]) == INF  # even length: the mean of the middle two, ∞ if one is ∞
    assert S.median([1.0, 3.0]) == 2.0
    assert S.median([INF, INF, 5.0]) == INF
    assert S.median([]) == INF


def test_workload_time_is_median_over_groups_of_group_minimum():
    assert S.workload_time([[5.0, INF], [3.0, 4.0], [INF, INF]]) == 5.0
    assert S.workload_time([[7.0], [INF], [9.0]]) == 9.0  # defaults: one value per seed
    assert S.workload_time([[INF], [INF], [9.0]]) == INF  # solved by a minority of seeds: not solved
    assert S.workload_time([]) == INF


def test_profile_ratios_ties_and_unsolved_workloads():
    times = {"a": {"w1": 10.0, "w2": INF, "w3": INF}, "b": {"w1": 20.0, "w2": 5.0, "w3": INF}, "c": {"w1": 10.0}}
    r = S.profile_ratios(times)
    assert r["a"] == {"w1": 1.0, "w2": INF, "w3": INF}
    assert r["b"] == {"w1": 2.0, "w2": 1.0, "w3": INF}
    assert r["c"] == {"w1": 1.0, "w2": INF, "w3": INF}  # tie with a: both ratio 1; a missing cell is ∞


def test_profile_score_integral_and_cutoff():
    # contributions (r_max − r)/(r_max − 1): 1 → 1, 2.5 → 0.5, 4 → 0, 5 → 0 (cut off), ∞ → 0
    assert S.profile_score({"w1": 1.0, "w2": 2.5, "w3": 4.0, "w4": INF}) == pytest.approx(1.5 / 4)
    assert S.profile_score({"w1": 5.0}) == 0.0
    assert S.profile_score({"w1": 3.999}) == pytest.approx(0.001 / 3)
    assert S.profile_score({"w1": 1.0}, r_max=2.0) == 1.0
    assert S.profile_score({}) == 0.0
    # numerical check of the closed form against a fine Riemann sum of ρ(τ)
    ratios = {"a": 1.0, "b": 1.7, "c": 3.2, "d": INF}
    taus = [1 + 3 * (i + 0.5) / 30000 for i in range(30000)]
    riemann = sum(sum(r <= t for r in ratios.values()) / 4 for t in taus) / 30000
    assert S.profile_score(ratios) == pytest.approx(riemann, abs=1e-4)


def test_profile_scores_all_tied_and_all_missed():
    assert S.profile_scores({"a": {"w": 3.0}, "b": {"w": 3.0}}) == {"a": 1.0, "b": 1.0}
    assert S.profile_scores({"a": {"w": INF}, "b": {"w": INF}}) == {"a": 0.0, "b": 0.0}


def test_profile_curve_is_a_step_function():
    pts = S.profile_curve({"w1": 1.0, "w2": 2.0, "w3": INF, "w4": 9.0})
    assert pts[0] == (1.0, 0.25) and (2.0, 0.5) in pts and pts[-1] == (4.0, 0.5)


def test_win_rates_with_ties():
    times = {"a": {"w1": 1.0, "w2": INF, "w3": 2.0}, "b": {"w1": 2.0, "w2": INF, "w3": 2.0}}
    w = S.win_rates(times)
    assert w["a"]["b"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert w["b"]["a"] == pytest.approx((0 + 0.5 + 0.5) / 3)
    assert w["a"]["b"] + w["b"]["a"] == pytest.approx(1.0)


def test_geomean_speedup_is_over_workloads_both_reach_with_the_miss_count_beside():
    times = {"adamw": {"w1": 100.0, "w2": 400.0}, "x": {"w1": 50.0, "w2": INF}, "never": {"w1": INF, "w2": INF}}
    sp = S.geomean_speedup(times, "adamw")
    assert sp["adamw"]["speedup"] == pytest.approx(1.0)
    assert sp["x"] == {"speedup": pytest.approx(2.0), "both": 1, "misses": 1, "only": 0}
    # an optimizer that never reaches the target earns no speedup (the old rule charged its misses as
    # (max_steps + 1) × its own step cost and could print 1.63× at a 0% hit rate)
    assert sp["never"] == {"speedup": None, "both": 0, "misses": 2, "only": 0}
    assert S.geomean_speedup(times, "missing") == {}


def test_bootstrap_is_deterministic_and_brackets_clear_cases():
    runs = {
        "fast": {"w1": [[1.0], [1.0], [1.0]], "w2": [[2.0], [2.0], [2.0]]},
        "slow": {"w1": [[10.0], [10.0], [10.0]], "w2": [[INF], [INF], [INF]]},
    }
    ci1 = S.bootstrap_scores(runs, n_boot=200, seed=1)
    ci2 = S.bootstrap_scores(runs, n_boot=200, seed=1)
    assert ci1 == ci2
    assert ci1["fast"] == (1.0, 1.0) and ci1["slow"] == (0.0, 0.0)
    noisy = {
        "a": {"w1": [[1.0], [3.0], [1.0]], "w2": [[1.0], [1.0], [1.0]]},
        "b": {"w1": [[2.0]] * 3, "w2": [[2.0]] * 3},
    }
    lo, hi = S.bootstrap_scores(noisy, n_boot=300)["a"]
    point = S.profile_scores({"a": {"w1": 1.0, "w2": 1.0}, "b": {"w1": 2.0, "w2": 2.0}})["a"]
    assert lo <= point <= hi and lo < hi


def test_mann_whitney_one_sided():
    assert stats.mann_whitney_less([1, 2, 3, 4], [10, 11, 12, 13]) < 0.05
    assert stats.mann_whitney_less([10, 11, 12, 13], [1, 2, 3, 4]) > 0.95
    assert stats.mann_whitney_less([1, 2, 3, 4], [1, 2, 3, 4]) == pytest.approx(0.5, abs=0.2)
    assert stats.mann_whitney_less([1.0, 2.0, 3.0], [INF, INF, INF]) < 0.1  # ∞ ranks last
    assert math.isnan(stats.mann_whitney_less([INF, INF], [INF, INF]))
    assert math.isnan(stats.mann_whitney_less([], [1.0]))


def _rec(alg, wl, seed, status, s=None, grads=None, hvps=0, steps=100, train_time=1.0, ruleset="defaults", **kw):
    return {
        "suite": "t",
        "budget_unit": "grads",
        "ruleset": ruleset,
        "workload": wl,
        "algorithm": alg,
        "library": "optimlab",
        "seed": seed,
        "study": kw.get("study"),
        "trial": kw.get("trial"),
        "status": status,
        "steps_to_target": s,
        "grad_evals_to_target": grads if grads is not None else s,
        "hvp_evals_to_target": hvps if s is not None else None,
        "steps": steps if s is None else s,
        "grad_evals": (grads or steps) if s is None else (grads or s),
        "hvp_evals": hvps,
        "train_time": train_time,
        "max_steps": 100,
        "state_bytes": 8,
        "param_bytes": 4,
        "peak_rss_bytes": 10,
        "key": f"{alg}{wl}{seed}{kw.get('study')}{kw.get('trial')}",
        "trial_id": kw.get("trial_id", 0),
    }


def test_score_end_to_end_on_a_hand_made_table():
    recs = [
        _rec("adamw", "w1", 0, "hit", 40),
        _rec("adamw", "w1", 1, "hit", 60),
        _rec("adamw", "w1", 2, "miss"),
        _rec("adamw", "w2", 0, "hit", 10),
        _rec("adamw", "w2", 1, "hit", 10),
        _rec("adamw", "w2", 2, "hit", 30),
        _rec("sam", "w1", 0, "hit", 20, grads=40),
        _rec("sam", "w1", 1, "hit", 20, grads=40),
        _rec("sam", "w1", 2, "diverged"),
        _rec("sam", "w2", 0, "error"),
        _rec("sam", "w2", 1, "miss"),
        _rec("sam", "w2", 2, "miss"),
        # an older run of the same cell is replaced by the newer one
        {**_rec("sam", "w2", 2, "hit", 1), "trial_id": -1},
    ]
    costs = {("adamw", "w1"): 0.01, ("adamw", "w2"): 0.01, ("sam", "w1"): 0.02}
    out = S.score(recs, ruleset="defaults", costs=costs, n_boot=50)
    t = out["clocks"]
    assert t["S"]["times"]["adamw"] == {"w1": 60.0, "w2": 10.0}
    assert t["S"]["times"]["sam"] == {"w1": 20.0, "w2": None}  # None = ∞ in JSON
    assert t["G"]["times"]["sam"]["w1"] == 40.0  # two gradients per step
    assert t["T"]["times"]["sam"]["w1"] == pytest.approx(0.4)  # 20 steps × 0.02 s
    assert t["T"]["times"]["adamw"]["w1"] == pytest.approx(0.6)
    assert out["cost_source"]["sam"]["w2"].startswith("measured")  # not in the cost table: the runs' own timing
    # S: sam wins w1 (ratio 1), adamw r = 3 there and wins w2
    assert t["S"]["scores"]["sam"] == pytest.approx(0.5)
    assert t["S"]["scores"]["adamw"] == pytest.approx((1 + (4 - 3) / 3) / 2)
    # G: a tie on w1 (40 vs 60 → sam ratio 1, adamw 1.5)
    assert t["G"]["ratios"]["adamw"]["w1"] == pytest.approx(1.5)
    assert out["stats"]["sam"]["failure_rate"] == pytest.approx(2 / 6)
    assert out["stats"]["adamw"]["hit_rate"] == pytest.approx(5 / 6)
    assert out["memory"]["adamw"]["w1"]["state_bytes"] == 8
    assert t["S"]["winrate"]["sam"]["adamw"] == pytest.approx(0.5)
    assert t["S"]["speedup"]["adamw"] == pytest.approx(1.0)
    assert "w1" in out["tests_vs_baseline"]["sam"]
    assert len(out["errors"]) == 1


def test_score_tuned_uses_median_of_study_minima():
    recs = []
    # 3 studies × 2 trials; study minima 30, 50, ∞ → median 50
    for study, values in enumerate([(30, None), (None, 50), (None, None)]):
        for trial, v in enumerate(values):
            recs.append(_rec("x", "w", study, "hit" if v else "miss", v, ruleset="tuned", study=study, trial=trial))
    out = S.score(recs, ruleset="tuned", n_boot=0)
    assert out["clocks"]["S"]["times"]["x"]["w"] == 50.0


def test_tuning_budget_curve():
    assert stats.hit_probability_after(1, 4, 1) == pytest.approx(0.25)
    assert stats.hit_probability_after(2, 4, 1) == pytest.approx(0.5)
    assert stats.hit_probability_after(4, 4, 1) == 1.0
    assert stats.hit_probability_after(3, 4, 0) == 0.0
    assert stats.hit_probability_after(2, 3, 2) == 1.0  # only one miss: two draws always include a hit
    curve = stats.tuning_budget_curve({"w1": (4, 1), "w2": (4, 4)}, 4)
    assert curve == pytest.approx([0.625, 0.75, 0.875, 1.0])
    assert stats.tuning_budget_curve({}, 3) == []


def test_calibration_helpers():
    from optimlab.bench import calibration as C
    from optimlab.bench import workloads as W

    assert C._round_sig(0.8567, 2, up=False) == 0.85 and C._round_sig(2.0931, 2, up=True) == 2.1
    assert C._round_sig(3.1e-7, 2, up=True) == 3.1e-7
    w = W.get("mlp_mnist1d")
    rec = {"curve": {"step": [0, 100, 200, 300], "metric": [0.1, 0.5, 0.8, 0.9]}}
    assert C.best_by(rec, w, 200) == 0.8 and C.first_hit(rec, w, 0.75) == 200 and C.first_hit(rec, w, 0.95) == INF
    assert C.step_hint_for(w) == w.budget.max_steps * 2 // 3 // w.budget.eval_every * w.budget.eval_every
    assert C.target_kind(W.get("rosenbrock50")) == "precision" and C.target_kind(w) == "calibrated"


# ---------------------------------------------------------------------------------------------- honest scores
def _hit_or_miss(alg, wl, seed, steps=None, best=None, **kw):
    r = _rec(alg, wl, seed, "hit" if steps else "miss", steps, **kw)
    r.update(target=1e-3, higher_is_better=False, best_metric=best if best is not None else (1e-3 if steps else 1.0))
    return r


def test_score_speedup_of_an_optimizer_that_never_hits_is_none():
    recs = [_hit_or_miss("adamw", w, s, 100) for w in ("w1", "w2") for s in range(3)]
    recs += [_hit_or_miss("lion", w, s) for w in ("w1", "w2") for s in range(3)]
    out = S.score(recs, ruleset="defaults", n_boot=0)
    for clock in S.CLOCKS:
        assert out["clocks"][clock]["speedup"]["lion"] is None
        assert out["clocks"][clock]["speedup_detail"]["lion"]["misses"] == 2


def test_runs_with_overrides_are_named_variants_not_pooled_with_the_defaults():
    recs = [_hit_or_miss("adamw", "w1", s, 100) for s in range(3)]
    recs += [{**_hit_or_miss("adamw", "w1", s, 10), "overrides": {"lr": 0.003}, "trial_id": 10 + s} for s in range(3)]
    recs += [{**_hit_or_miss("adamw", "w1", s, 20), "budget_factor": 3.0, "trial_id": 20 + s} for s in range(3)]
    recs += [{**_hit_or_miss("adamw", "w1", s, 30), "budget_unit": "steps", "trial_id": 30 + s} for s in range(3)]
    out = S.score(recs, ruleset="defaults", n_boot=0)
    assert out["algorithms"] == ["adamw", "adamw[budget×3]", "adamw[lr=0.003]", "adamw[steps budget]"]
    assert out["clocks"]["S"]["times"]["adamw"]["w1"] == 100.0
    assert out["clocks"]["S"]["times"]["adamw[lr=0.003]"]["w1"] == 10.0


def test_a_later_tuned_sweep_does_not_replace_an_earlier_one_of_another_configuration():
    base = dict(ruleset="tuned", study=0, trial=0)
    first = {**_hit_or_miss("adamw", "w1", 0, 50, **base), "overrides": {"lr": 1e-3}, "fixed": {}}
    second = {**_hit_or_miss("adamw", "w1", 0, 70, **base), "overrides": {"lr": 2e-3, "weight_decay": 0.0}}
    second.update(fixed={"weight_decay": 0.0}, trial_id=5)
    out = S.score([first, second], ruleset="tuned", n_boot=0)
    assert out["algorithms"] == ["adamw", "adamw[weight_decay=0]"]


def test_step_cost_is_the_table_at_the_runs_hyperparameters_else_the_runs_amortized_cost():
    # a method with a costly refresh every 10th step: 9 steps of 1 ms and one of 10 ms; the amortized cost is
    # 1.9 ms/step, the median of single steps 1 ms
    times = [0.001] * 9 + [0.010]
    assert S.amortized(times) == pytest.approx(0.0019)
    r0 = {**_hit_or_miss("sophia_h", "w1", 0, 100), "train_time": 100 * 0.0019, "steps": 100}
    r1 = {**_hit_or_miss("sophia_h", "w1", 1, 100), "overrides": {"lr": 0.1}, "train_time": 0.5, "steps": 100}
    r1["trial_id"] = 1
    costs = {("sophia_h", "w1"): 0.001, ("sophia_h", "w1", S.hparams_key({"lr": 0.1})): 0.004}
    out = S.score([r0], ruleset="defaults", costs=costs, n_boot=0)
    assert out["clocks"]["T"]["times"]["sophia_h"]["w1"] == pytest.approx(0.1)  # the table, default hparams
    out = S.score([r1], ruleset="defaults", costs=costs, n_boot=0)
    assert out["clocks"]["T"]["times"]["sophia_h[lr=0.1]"]["w1"] == pytest.approx(0.4)  # the table at lr=0.1
    out = S.score([r1], ruleset="defaults", costs={("sophia_h", "w1"): 0.001}, n_boot=0)
    assert out["clocks"]["T"]["times"]["sophia_h[lr=0.1]"]["w1"] == pytest.approx(0.5)  # its own amortized cost
    assert out["cost_source"]["sophia_h[lr=0.1]"]["w1"].startswith("measured in runs")


def test_miss_distance_separates_ties_at_infinity_and_ranks_have_intervals():
    assert S.miss_distance(1e-2, 1e-3, False) == pytest.approx(1.0)
    assert S.miss_distance(0.72, 0.82, True) == pytest.approx(math.log10(0.28 / 0.18))
    assert S.miss_distance(0.9, 0.82, True) == 0.0
    recs = [_hit_or_miss("near", w, s, best=2e-3) for w in ("w1", "w2") for s in range(3)]
    recs += [_hit_or_miss("far", w, s, best=1.0) for w in ("w1", "w2") for s in range(3)]
    out = S.score(recs, ruleset="defaults", n_boot=200)
    assert out["clocks"]["G"]["scores"] == {"far": 0.0, "near": 0.0}  # every cell is ∞: the profile ties
    assert out["distances"]["near"]["w1"] == pytest.approx(math.log10(2)) and out["distances"]["far"]["w1"] == 3.0
    assert out["clocks"]["G"]["rank_ci"] == {"near": (1, 1), "far": (2, 2)}  # separated by the miss distance
    near = out["distances"]["near"]["w1"]
    assert out["winners"]["w1"] == {
        "winner": "near",
        "reached": False,
        "ties": [],
        "separable": True,  # one comparison, 3 vs 3: p can reach 0.04
        "time": None,
        "distance": near,
    }


def test_winners_show_statistical_ties():
    recs = [_hit_or_miss("a", "w1", s, st) for s, st in enumerate((10, 11, 12))]
    recs += [_hit_or_miss("b", "w1", s, st) for s, st in enumerate((11, 12, 13))]  # not shown slower with 3 seeds
    recs += [_hit_or_miss("c", "w1", s) for s in range(3)]
    w = S.score(recs, ruleset="defaults", n_boot=0)["winners"]["w1"]
    assert w["winner"] == "a" and w["ties"] == ["b"] and w["reached"]
    # 2 comparisons of 3 vs 3: Holm's smallest adjusted p is 2 × 0.040 ≥ α, so "tied" here can mean nothing more
    # than "reached the target", and the report says so
    assert stats.smallest_p(3, 3) == pytest.approx(0.0404, abs=1e-4) and not w["separable"]
    assert report.ties_text(w) == "b (too few runs to separate any: everyone who reached it)"


def test_winners_separate_with_enough_seeds():
    recs = [_hit_or_miss("a", "w1", s, 10 + s) for s in range(8)]
    recs += [_hit_or_miss("b", "w1", s, 30 + s) for s in range(8)]  # slower in every seed: shown slower
    recs += [_hit_or_miss("c", "w1", s, 12 + s) for s in range(8)]  # overlapping: tied
    recs += [_hit_or_miss("d", "w1", s) for s in range(8)]
    w = S.score(recs, ruleset="defaults", n_boot=0)["winners"]["w1"]
    assert w["separable"] and w["winner"] == "a" and w["ties"] == ["c"]
    assert report.ties_text(w) == "c"


def test_tuned_comparisons_use_one_value_per_study_with_holm_correction():
    recs = []
    for alg, base in (("adamw", 100), ("x", 10)):
        for study in range(3):
            for trial in range(5):
                recs.append(_hit_or_miss(alg, "w1", study, base + trial, ruleset="tuned", study=study, trial=trial))
    out = S.score(recs, ruleset="tuned", n_boot=0)
    t = out["tests_vs_baseline"]["x"]["w1"]
    # 3 study minima against 3: the smallest one-sided p a rank test can give with 3 vs 3 (pooled trials,
    # 15 vs 15, would claim far more certainty)
    assert t["p"] == pytest.approx(stats.mann_whitney_less([10.0] * 3, [100.0] * 3)) and t["p"] > 0.01
    assert t["p_holm"] >= t["p"]
    assert stats.holm({"a": 0.01, "b": 0.04, "c": 0.03}) == pytest.approx({"a": 0.03, "b": 0.06, "c": 0.06})
