"""The results store: resuming by key, TPE budgets (the kill tests are in test_scaleout.py)."""

from __future__ import annotations

from optimlab.bench import adapters, store, sweep, tuning, worker
from optimlab.bench import workloads as W


def test_tpe_studies_have_one_global_trial_budget(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'tpe.sqlite3'}"
    rs = store.ResultStore(url)
    version, _, _ = W.suite("smoke")
    handle = adapters.resolve("adamw")
    wl = W.get("quad_noisy")
    summary = sweep.run_tpe(rs, version, [wl], [handle], trials=3, studies=2, smoke=True, progress=False)
    assert (summary.planned, summary.ran, summary.failed) == (6, 6, 0)
    # a second sweep (or any other worker) finds the budget spent: nothing more is enqueued or run
    again = sweep.run_tpe(rs, version, [wl], [handle], trials=3, studies=2, smoke=True, progress=False)
    assert again.ran == 0 and worker.work(rs).ran == 0
    for k in range(2):
        trials = rs.study(store.study_name(version, "tuned-tpe", wl.id, handle.id, k)).get_trials(deepcopy=False)
        assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
        assert all(set(t.params) == set(tuning.distributions(handle.search_space)) for t in trials)
        assert all(t.user_attrs["meta"]["ruleset"] == "tuned-tpe" for t in trials)


def test_quasirandom_cells_resume_by_key(tmp_path):
    rs = store.ResultStore(f"sqlite:///{tmp_path / 'q.sqlite3'}")
    version, _, _ = W.suite("smoke")
    cells = tuning.plan_quasirandom(
        version, [W.get("quad_noisy")], [adapters.resolve("sgd")], trials=2, studies=2, smoke=True
    )
    assert len(cells) == 4
    first = sweep.run_cells(rs, cells[:3], threads=1, progress=False)
    assert first.ran == 3
    second = sweep.run_cells(rs, cells, threads=1, progress=False)
    assert (second.skipped, second.ran) == (3, 1)
    recs = list(rs.records())
    assert len(recs) == 4 and {r["study"] for r in recs} == {0, 1}
    assert all(r["ruleset"] == "tuned" and "lr" in r["overrides"] for r in recs)
