"""The results store survives SIGKILL: rerunning the same sweep loses no finished run and duplicates none."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from optimlab.bench import adapters, store, sweep, tuning
from optimlab.bench import workloads as W

SRC = str(Path(__file__).resolve().parents[2] / "src")
WORKLOADS = "quad_noisy,rosenbrock50,heavytail_linreg,deep_matfac"
OPTIMIZERS = "adamw,sgd,adam"
SEEDS = 2
PLANNED = 4 * 3 * SEEDS
BUDGET = 25.0  # smoke runs of 100 steps: long enough for the kill to land mid-sweep


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")
    return env


def _sweep_cmd(url: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "optimlab.bench.cli",
        "run",
        "--suite",
        "smoke",
        "--ruleset",
        "defaults",
        "--optimizers",
        OPTIMIZERS,
        "--workloads",
        WORKLOADS,
        "--seeds",
        str(SEEDS),
        "--budget",
        str(BUDGET),
        "--threads",
        "2",
        "--jobs",
        "2",  # the default: trials in worker processes, the parent writes; killing the parent kills the workers
        "--storage",
        url,
        "--no-progress",
    ]


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def _complete(db: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _snapshot(url: str) -> dict[int, tuple]:
    return {r["trial_id"]: (r["key"], r["value"], r["status"], r["steps"]) for r in store.ResultStore(url).records()}


def test_sigkill_mid_sweep_then_rerun_loses_and_duplicates_nothing(tmp_path):
    db = tmp_path / "bench.sqlite3"
    url = f"sqlite:///{db}"
    proc = subprocess.Popen(_sweep_cmd(url), env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    try:
        while _complete(db) < 3:
            if proc.poll() is not None:
                pytest.fail(f"the sweep ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            if time.time() > deadline:
                pytest.fail("the sweep wrote no run within 120 s")
            time.sleep(0.05)
        workers = _children(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    # the worker processes notice and exit (they would otherwise keep computing runs nobody records)
    deadline = time.time() + 15
    while any(store._pid_alive(p) for p in workers) and time.time() < deadline:
        time.sleep(0.2)
    assert not any(store._pid_alive(p) for p in workers)
    before = _snapshot(url)
    assert 3 <= len(before) < PLANNED, "the kill should land mid-sweep"

    rerun = subprocess.run(_sweep_cmd(url), env=_env(), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"{PLANNED} runs planned, {len(before)} already in the store" in rerun.stdout
    after = _snapshot(url)
    keys = [v[0] for v in after.values()]
    assert len(after) == PLANNED and len(set(keys)) == PLANNED  # nothing lost, nothing duplicated
    for trial_id, row in before.items():
        assert after[trial_id] == row  # finished runs untouched

    # a third invocation would find nothing to do (checked in-process: same plan, same keys)
    version, smoke, _ = W.suite("smoke")
    cells = tuning.plan_defaults(
        version,
        [W.get(w) for w in WORKLOADS.split(",")],
        adapters.resolve_many(OPTIMIZERS),
        seeds=SEEDS,
        smoke=smoke,
        budget_factor=BUDGET,
    )
    assert len(cells) == PLANNED and sweep.pending_cells(store.ResultStore(url), cells) == []


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_tpe_orphans_of_a_dead_process_are_failed_and_not_counted(tmp_path):
    import optuna

    url = f"sqlite:///{tmp_path / 'tpe.sqlite3'}"
    rs = store.ResultStore(url)
    version, _, _ = W.suite("smoke")
    handle = adapters.resolve("adamw")
    wl = W.get("quad_noisy")
    name = store.study_name(version, "tuned-tpe", wl.id, handle.id, 0)
    # a trial asked by a process that was then killed
    orphan = rs.study(name).ask(tuning.distributions(handle.search_space))
    orphan.set_user_attr("owner", {"host": __import__("socket").gethostname(), "pid": _dead_pid()})
    summary = sweep.run_tpe(rs, version, [wl], [handle], trials=2, studies=1, smoke=True, progress=False)
    assert summary.ran == 2
    trials = rs.study(name).get_trials(deepcopy=False)
    states = sorted(t.state.name for t in trials)
    assert states == ["COMPLETE", "COMPLETE", "FAIL"]
    done = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted(t.user_attrs["meta"]["trial"] for t in done) == [0, 1]
    # rerunning does nothing more
    assert sweep.run_tpe(rs, version, [wl], [handle], trials=2, studies=1, smoke=True, progress=False).ran == 0


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


def test_a_crashing_worker_is_recorded_as_error_and_the_sweep_goes_on():
    from ._toys import crash_on_seed_1

    version, smoke, _ = W.suite("smoke")
    cells = tuning.plan_defaults(version, [W.get("quad_noisy")], [adapters.resolve("sgd")], seeds=4, smoke=smoke)
    got: dict[int, str] = {}
    sweep._run_pool(cells, 2, 2, lambda cell, result: got.__setitem__(cell.spec.seed, result), fn=crash_on_seed_1)
    assert sorted(got) == [0, 1, 2, 3]
    assert got[1]["status"] == "error" and "died" in got[1]["error"]
    assert all(got[s]["status"] == "miss" for s in (0, 2, 3))
