"""The benchmark's treatment of tuning-free optimizers: schedule-free records run with a constant schedule (the
rule in :mod:`optimlab.bench.tuning`), and the leaderboard marks tuning-free optimizers."""

from __future__ import annotations

import pytest

from optimlab.bench import adapters, report, scoring, store, sweep, tuning
from optimlab.bench import workloads as W


@pytest.fixture(scope="module")
def smoke():
    version, is_smoke, _ = W.suite("smoke")
    return version, is_smoke, [W.get("quad_noisy")]


def test_schedule_free_records_run_constant_unless_told_otherwise(smoke):
    version, is_smoke, wls = smoke
    handles = adapters.resolve_many("sf_adamw,optimlab:sf_sgd,schedule_free,adamw,dog")
    cells = tuning.plan_defaults(version, wls, handles, seeds=1, smoke=is_smoke)
    kinds = {c.spec.algorithm: c.spec.hparams.get("sched_kind") for c in cells}
    assert kinds == {"sf_adamw": "constant", "optimlab:sf_sgd": "constant", "schedule_free": "constant",
                     "adamw": None, "dog": None}  # fmt: skip
    # the rule is the standard, not an override: the variant keeps the plain id
    assert all(c.meta["overrides"] == {} for c in cells)
    cosine = {"sched_kind": "cosine"}
    explicit = tuning.plan_defaults(version, wls, handles[:1], seeds=1, smoke=is_smoke, hparams=cosine)
    assert explicit[0].spec.hparams == {"sched_kind": "cosine"}
    tuned = tuning.plan_quasirandom(version, wls, handles[:1], trials=2, studies=1, smoke=is_smoke)
    assert all(c.spec.hparams["sched_kind"] == "constant" and "lr" in c.spec.hparams for c in tuned)


def test_tuning_free_marks_come_from_the_registry():
    recs = [
        {"variant": "dog", "algorithm": "dog", "library": "optimlab"},
        {"variant": "sf_sgd[lr=0.1]", "algorithm": "optimlab:sf_sgd", "library": "optimlab"},
        {"variant": "adamw", "algorithm": "adamw", "library": "optimlab"},
        {"variant": "torch:SGD", "algorithm": "torch:SGD", "library": "torch"},
        {"variant": "gone", "algorithm": "gone", "library": "optimlab"},
    ]
    assert scoring.tuning_free(recs) == {"dog": "lr", "sf_sgd[lr=0.1]": "schedule"}


def test_leaderboard_shows_the_marker_and_the_run_used_a_constant_schedule(smoke, tmp_path):
    version, is_smoke, wls = smoke
    rs = store.ResultStore(f"sqlite:///{tmp_path / 'bench.sqlite3'}")
    cells = tuning.plan_defaults(version, wls, adapters.resolve_many("adamw,dog,sf_sgd"), seeds=1, smoke=is_smoke)
    sweep.run_cells(rs, cells, threads=1, progress=False)
    runs = {r["algorithm"]: r for r in rs.records()}
    assert runs["sf_sgd"]["hparams"]["sched_kind"] == "constant" and runs["adamw"]["hparams"]["sched_kind"] == "cosine"
    summary = report.build(rs, suite=version, n_boot=20)
    md = report.render_markdown(summary)
    assert "| dog | optimlab | lr |" in md and "| sf_sgd | optimlab | schedule |" in md
    assert "| adamw | optimlab |  |" in md and scoring.TUNING_FREE_NOTE in md
    html = report.render_html(summary)
    assert '<th class="l">tuning-free</th>' in html and '<td class="l">schedule</td>' in html
