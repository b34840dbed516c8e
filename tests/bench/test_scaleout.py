"""Scale-out on one store: several `bench run` workers on one sweep, one SIGKILLed mid-run and restarted; every
planned run is stored exactly once (none lost, none duplicated), and the report reads the store. PostgreSQL (3
workers; a throw-away server, skipped saying why when it cannot start) and SQLite (2 workers)."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optimlab.bench import adapters, report, store, tuning, workqueue
from optimlab.bench import workloads as W

from . import _postgres

SRC = str(Path(__file__).resolve().parents[2] / "src")
WORKLOADS = "quad_noisy,rosenbrock50,heavytail_linreg"
OPTIMIZERS = "adamw,sgd"
SEEDS = 3
PLANNED = 3 * 2 * SEEDS
BUDGET = 40.0  # smoke runs of 160 steps: long enough for the kill to land mid-run
HEARTBEAT = 1  # stale after 4 s without a heartbeat


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    return env


def _cmd(url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "optimlab.bench.cli",
        "run",
        "--suite",
        "smoke",
        "--optimizers",
        OPTIMIZERS,
        "--workloads",
        WORKLOADS,
        "--seeds",
        str(SEEDS),
        "--budget",
        str(BUDGET),
        "--threads",
        "1",
        "--jobs",
        "1",
        "--heartbeat",
        str(HEARTBEAT),
        "--storage",
        url,
        "--no-progress",
    ]


def _planned_keys() -> set[str]:
    version, smoke, _ = W.suite("smoke")
    cells = tuning.plan_defaults(
        version,
        [W.get(w) for w in WORKLOADS.split(",")],
        adapters.resolve_many(OPTIMIZERS),
        seeds=SEEDS,
        smoke=smoke,
        budget_factor=BUDGET,
    )
    assert len(cells) == PLANNED
    return {c.key for c in cells}


def _states(rs: store.ResultStore) -> collections.Counter:
    return collections.Counter(rs.queue_counts())


def _running(rs: store.ResultStore) -> list:
    import optuna

    return [t for n in rs.study_names() for t in rs.trials(n, (optuna.trial.TrialState.RUNNING,))]


def _attrs(rs: store.ResultStore) -> list[dict]:
    return [t.user_attrs for n in rs.study_names() for t in rs.trials(n)]


def _scale_out(url: str, workers: int) -> None:
    procs = [subprocess.Popen(_cmd(url), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)]
    procs += [
        subprocess.Popen(_cmd(url), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(workers - 1)
    ]
    victim = procs[0]
    rs = None
    deadline = time.time() + 240
    try:
        # kill the first worker while it is running a trial (frozen first, so that the trial cannot finish
        # between the look and the kill), after some runs are stored
        held = None
        while held is None:
            assert time.time() < deadline, "no run was stored in time"
            if victim.poll() is not None:
                pytest.fail(f"worker ended before the kill: {victim.stderr.read()[-2000:]}")
            time.sleep(0.1)
            try:
                rs = rs or store.ResultStore(url, heartbeat=HEARTBEAT)
                if workqueue.count(rs, rs.study_ids().values(), "COMPLETE") < 2:
                    continue
            except Exception:  # the tables may not exist yet
                continue
            victim.send_signal(signal.SIGSTOP)
            mine = [t for t in _running(rs) if t.user_attrs.get("worker", {}).get("pid") == victim.pid]
            if mine:
                held = mine[0]._trial_id
            else:
                victim.send_signal(signal.SIGCONT)
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
        restarted = subprocess.Popen(_cmd(url), env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        outs = [p.communicate(timeout=300) for p in [*procs[1:], restarted]]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (out, err) in zip([*procs[1:], restarted], outs):
        assert p.returncode == 0, err[-3000:]
        assert "s3cret" not in out + err  # the password is masked everywhere
    rs = store.ResultStore(url, heartbeat=HEARTBEAT)
    complete = collections.Counter(r["key"] for r in rs.records())
    assert set(complete) == _planned_keys()  # none lost
    assert max(complete.values()) == 1  # none duplicated
    states = _states(rs)
    assert (
        states["COMPLETE"] == PLANNED
        and states["WAITING"] == 0
        and states["RUNNING"] == 0
        and states["UNFINISHED"] == 0
    )
    assert rs.storage.get_trial(held).state.name == "FAIL"  # the killed worker's run, reaped and retried
    assert any(r.get("retry_of") == held for r in _attrs(rs))
    summary = report.build(rs, suite=W.SUITES["smoke"][0], n_boot=20)
    assert summary["n_runs"] == PLANNED and summary["queue"].get("FAIL", 0) == states["FAIL"]
    assert not summary["incomplete"]


def test_postgresql_three_workers_one_killed_store_every_run_once():
    try:
        url, stop = _postgres.start()
    except _postgres.Unavailable as exc:
        pytest.skip(str(exc))
    try:
        _scale_out(url, 3)
    finally:
        stop()


def test_sqlite_two_workers_one_killed_store_every_run_once(tmp_path):
    _scale_out(f"sqlite:///{tmp_path / 'bench.sqlite3'}", 2)


def _age_heartbeats(db: Path) -> None:
    """Make every heartbeat an hour old (as if the workers had died an hour ago)."""
    import sqlite3

    con = sqlite3.connect(db)
    con.execute("UPDATE trial_heartbeats SET heartbeat = datetime(heartbeat, '-1 hour')")
    con.commit()
    con.close()


def test_enqueue_is_idempotent_and_claims_are_exclusive(tmp_path):
    db = tmp_path / "q.sqlite3"
    rs = store.ResultStore(f"sqlite:///{db}", heartbeat=1)
    version, smoke, _ = W.suite("smoke")
    cells = tuning.plan_defaults(version, [W.get("quad_noisy")], adapters.resolve_many("sgd"), seeds=3, smoke=smoke)
    from optimlab.bench import sweep

    jobs = [sweep.job_of(c) for c in cells]
    assert workqueue.enqueue(rs, jobs) == 3 and workqueue.enqueue(rs, jobs) == 0
    ids = list(rs.study_ids().values())
    claimed = [workqueue.claim(rs, ids) for _ in range(4)]
    assert claimed[3] is None and len(set(claimed[:3])) == 3
    # a claimed run whose heartbeat stops is reaped (FAIL) and requeued once, in one transaction
    assert workqueue.reap_stale(rs, ids) == 0  # fresh heartbeats
    _age_heartbeats(db)
    assert workqueue.reap_stale(rs, ids) == 3
    assert workqueue.count(rs, ids, "FAIL") == 3 and workqueue.count(rs, ids, "WAITING") == 3
    assert workqueue.enqueue(rs, jobs) == 0  # the retries are the queued runs
    # a late result of a reaped trial is refused
    with pytest.raises(workqueue.Lost):
        workqueue.finish(rs, claimed[0], value=1.0, attrs={"result": {}})
    retry = workqueue.claim(rs, ids)
    attrs = rs.storage.get_trial(retry).user_attrs
    assert attrs["attempt"] == 2 and attrs["retry_of"] in claimed and attrs["key"] in {c.key for c in cells}


def test_a_run_that_kills_its_worker_every_time_gives_up_after_max_attempts(tmp_path):
    db = tmp_path / "g.sqlite3"
    rs = store.ResultStore(f"sqlite:///{db}", heartbeat=1)
    version, smoke, _ = W.suite("smoke")
    from optimlab.bench import sweep

    cell = tuning.plan_defaults(version, [W.get("quad_noisy")], adapters.resolve_many("sgd"), seeds=1, smoke=smoke)[0]
    workqueue.enqueue(rs, [sweep.job_of(cell)])
    ids = list(rs.study_ids().values())
    for attempt in range(1, workqueue.MAX_ATTEMPTS + 1):
        tid = workqueue.claim(rs, ids)
        assert tid is not None and rs.storage.get_trial(tid).user_attrs.get("attempt", 1) == attempt
        _age_heartbeats(db)  # its worker died
        assert workqueue.reap_stale(rs, ids) == 1
    assert workqueue.claim(rs, ids) is None
    assert workqueue.count(rs, ids, "FAIL") == workqueue.MAX_ATTEMPTS
    assert rs.queue_counts()["UNFINISHED"] == 1  # the report's banner counts it


def test_password_is_masked():
    assert store.mask_url("postgresql://bench:hunter2@db:5432/x") == "postgresql://bench:***@db:5432/x"
    assert store.mask_url("sqlite:////tmp/a.sqlite3") == "sqlite:////tmp/a.sqlite3"


def test_racing_reapers_and_a_late_finish_never_duplicate_a_run(tmp_path):
    """Two workers that find the same stale run at once requeue it once; a result written while a reaper fails the
    run is either the one that counts (no retry) or refused (the retry counts). On SQLite the driver starts its
    transaction at the first write, so a check-then-write here must be one conditional update."""
    import threading

    from optimlab.bench import sweep

    db = tmp_path / "race.sqlite3"
    url = f"sqlite:///{db}"
    version, smoke, _ = W.suite("smoke")
    cells = tuning.plan_defaults(version, [W.get("quad_noisy")], adapters.resolve_many("sgd"), seeds=3, smoke=smoke)
    rs = store.ResultStore(url, heartbeat=1)
    workqueue.enqueue(rs, [sweep.job_of(c) for c in cells])
    ids = list(rs.study_ids().values())
    stores = [store.ResultStore(url, heartbeat=1) for _ in range(4)]

    def race(*actions):
        barrier = threading.Barrier(len(actions))
        outcome = [None] * len(actions)

        def go(i, act):
            barrier.wait()
            try:
                outcome[i] = act()
            except workqueue.Lost:
                outcome[i] = "lost"

        threads = [threading.Thread(target=go, args=(i, a)) for i, a in enumerate(actions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return outcome

    for _ in range(5):  # every round: claim all, let them go stale, reap them from 4 workers at once
        claimed = [workqueue.claim(rs, ids) for _ in range(3)]
        assert None not in claimed
        _age_heartbeats(db)
        reaped = race(*[lambda s=s: workqueue.reap_stale(s, ids) for s in stores])
        assert sum(reaped) == 3, reaped
        assert workqueue.count(rs, ids, "WAITING") == 3  # one retry each, not one per reaper
        for tid in claimed:  # a late result of a reaped run is refused
            with pytest.raises(workqueue.Lost):
                workqueue.finish(rs, tid, value=1.0, attrs={"result": {}})
        if workqueue.count(rs, ids, "FAIL") >= 3 * (workqueue.MAX_ATTEMPTS - 1):
            break
    fresh = tuning.plan_defaults(version, [W.get("rosenbrock50")], adapters.resolve_many("sgd"), seeds=6, smoke=smoke)
    workqueue.enqueue(rs, [sweep.job_of(c) for c in fresh])
    ids = [i for name, i in rs.study_ids().items() if "rosenbrock50" in name]
    wins = collections.Counter()
    for _ in range(6):  # a result racing a reaper: exactly one of them wins
        tid = workqueue.claim(rs, ids)
        assert tid is not None
        _age_heartbeats(db)
        waiting = workqueue.count(rs, ids, "WAITING")
        fin, reaped = race(
            lambda tid=tid: workqueue.finish(stores[0], tid, value=1.0, attrs={"result": {}}),
            lambda: workqueue.reap_stale(stores[1], ids),
        )
        state = rs.storage.get_trial(tid).state.name
        retries = workqueue.count(rs, ids, "WAITING") - waiting
        if fin == "lost":
            assert state == "FAIL" and reaped == 1 and retries == 1
        else:
            assert state == "COMPLETE" and reaped == 0 and retries == 0
        wins[state] += 1
    assert sum(wins.values()) == 6, wins
