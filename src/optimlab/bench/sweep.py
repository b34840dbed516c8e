"""Execute a sweep: enqueue its runs in the store (once), work through them with local workers, report.

A sweep is a plan of cells (:mod:`optimlab.bench.tuning`). :func:`run_cells` enqueues the cells that have no
finished run (:mod:`optimlab.bench.workqueue`: each planned run is one WAITING trial, whoever enqueues it and how
often), then runs ``jobs`` local workers (:mod:`optimlab.bench.worker`; ``threads // jobs`` torch threads each) on
this sweep's studies until none of its runs is WAITING or RUNNING. Workers on other machines started with
``optimlab bench worker --storage URL`` share the same queue. Killing a sweep at any moment and rerunning it (or
just starting another worker) loses no run and duplicates none.
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from . import store, tuning, worker, workqueue


@dataclass
class SweepSummary:
    planned: int = 0
    skipped: int = 0
    ran: int = 0
    #: runs that stayed FAIL after every attempt (their worker died each time: crash, out of memory)
    failed: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    wall_time: float = 0.0

    def line(self) -> str:
        st = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())) or "none"
        failed = f", {self.failed} failed after {workqueue.MAX_ATTEMPTS} attempts" if self.failed else ""
        return (
            f"{self.planned} runs planned, {self.skipped} already in the store, {self.ran} ran ({st}){failed} "
            f"in {self.wall_time:.0f} s"
        )


def _progress_bar(total: int, enabled: bool, desc: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is in the bench extra; run without bars when it is missing
        return None
    # smoothing=0: the ETA uses the average rate since the start, not the last run's (runs differ 10×)
    return tqdm(
        total=total, desc=desc, unit="run", disable=not enabled, file=sys.stderr, dynamic_ncols=True, smoothing=0
    )


def job_of(cell: tuning.Cell) -> dict[str, Any]:
    """The queue entry of a planned cell."""
    from optuna.distributions import distribution_to_json

    return {
        "study": cell.study_name,
        "key": cell.key,
        "meta": cell.meta,
        "job": {
            "spec": asdict(cell.spec),
            "params": dict(cell.params),
            "distributions": {k: distribution_to_json(d) for k, d in cell.distributions.items()},
        },
    }


def pending_cells(result_store: store.ResultStore, cells: Sequence[tuning.Cell], retry_errors: bool = False):
    """The cells without a finished run in the store (runs with status ``error`` too when ``retry_errors``)."""
    done: dict[str, dict[str, Any]] = {}
    pending = []
    for cell in cells:
        if cell.study_name not in done:
            done[cell.study_name] = result_store.completed(cell.study_name)
        trial = done[cell.study_name].get(cell.key)
        if trial is None:
            pending.append(cell)
        elif retry_errors and trial.user_attrs.get("result", {}).get("status") == "error":
            pending.append(cell)
    return pending


def _label(meta: Mapping[str, Any]) -> str:
    what = f"{meta.get('workload')} · {meta.get('algorithm')}"
    if meta.get("study") is not None:
        return f"{what} · study {meta['study']} · trial {meta.get('trial')}"
    return f"{what} · seed {meta.get('seed')}"


def execute(
    result_store: store.ResultStore,
    names: Sequence[str],
    todo: int,
    *,
    threads: int,
    jobs: int,
    progress: bool,
    desc: str = "bench run",
    on_result: Callable[[Mapping[str, Any], Mapping[str, Any]], None] | None = None,
) -> None:
    """Work through the queued runs of studies ``names`` with ``jobs`` local workers (in this process if 1)."""
    names = sorted(set(names))
    bar = _progress_bar(todo, progress, desc)
    try:
        if jobs <= 1:
            runner_threads = max(1, threads)

            def started(meta: Mapping[str, Any]) -> None:
                if bar is not None:
                    bar.set_description_str(_label(meta))

            def finished(meta: Mapping[str, Any], result: Mapping[str, Any]) -> None:
                if bar is not None:
                    bar.update(1)
                if on_result is not None:
                    on_result(meta, result)

            worker.work(result_store, names=names, threads=runner_threads, on_start=started, on_result=finished)
        else:
            _execute_pool(result_store, names, threads, jobs, bar)
    finally:
        if bar is not None:
            bar.close()


def _execute_pool(result_store: store.ResultStore, names: Sequence[str], threads: int, jobs: int, bar) -> None:
    """``jobs`` worker processes; one that dies (a segfault, the OOM killer) is replaced while runs remain — its run
    goes stale and is retried (up to ``workqueue.MAX_ATTEMPTS``), so one crashing optimizer cannot stop a sweep."""
    ctx = multiprocessing.get_context("spawn")
    per_job = max(1, threads // jobs)
    args = (result_store.url, result_store.heartbeat, list(names), per_job, os.getpid())

    def spawn():
        p = ctx.Process(target=worker.local_worker, args=args, daemon=False)
        p.start()
        return p

    procs = [spawn() for _ in range(jobs)]
    ids = [i for n, i in result_store.study_ids().items() if n in set(names)]
    respawns = 4 * jobs * workqueue.MAX_ATTEMPTS
    start = bar.n if bar is not None else 0
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            left = workqueue.count(result_store, ids, "WAITING") + workqueue.count(result_store, ids, "RUNNING")
            for i, p in enumerate(procs):
                if not p.is_alive() and p.exitcode not in (0, None) and left and respawns > 0:
                    respawns -= 1
                    procs[i] = spawn()
            if bar is not None:
                bar.update(max(0, start + bar.total - left - bar.n))
                running = workqueue.running_meta(result_store, ids)
                bar.set_description_str(" | ".join(_label(m) for m in running[:jobs]) or "waiting")
    finally:
        for p in procs:
            p.join(timeout=None if not any(p.is_alive() for p in procs) else 0.1)


def _summarize(result_store: store.ResultStore, cells: Sequence[tuning.Cell], before: set[str], summary) -> None:
    after: dict[str, Any] = {}
    for name in {c.study_name for c in cells}:
        after.update(result_store.completed(name))
    for c in cells:
        t = after.get(c.key)
        if t is None:
            summary.failed += 1
        elif c.key not in before:
            summary.ran += 1
            summary.statuses[t.user_attrs["result"]["status"]] += 1


def run_cells(
    result_store: store.ResultStore,
    cells: Sequence[tuning.Cell],
    *,
    threads: int = 2,
    jobs: int = 1,
    progress: bool = True,
    retry_errors: bool = False,
    on_result: Callable[[Mapping[str, Any], Mapping[str, Any]], None] | None = None,
) -> SweepSummary:
    """Enqueue every cell not yet in the store and run them (see the module docstring); returns counts."""
    t0 = time.perf_counter()
    summary = SweepSummary(planned=len(cells))
    todo = pending_cells(result_store, cells, retry_errors)
    summary.skipped = len(cells) - len(todo)
    before = {c.key for c in cells} - {c.key for c in todo}
    rerun = {c.key for c in todo} if retry_errors else set()
    workqueue.enqueue(result_store, [job_of(c) for c in todo], rerun=rerun)
    names = sorted({c.study_name for c in cells})
    execute(result_store, names, len(todo), threads=threads, jobs=jobs, progress=progress, on_result=on_result)
    _summarize(result_store, cells, before, summary)
    summary.wall_time = time.perf_counter() - t0
    return summary


def tpe_slots(
    suite_version: str,
    workloads: Sequence[Any],
    handles: Sequence[Any],
    *,
    trials: int,
    studies: int,
    smoke: bool = False,
    fixed: Mapping[str, Any] | None = None,
    tune_schedule: bool = False,
    budget_factor: float = 1.0,
    budget_unit: str = "grads",
) -> list[dict[str, Any]]:
    """The queue entries of a TPE sweep: ``trials`` slots per (optimizer, workload, study), the study's global
    trial budget; the sampler proposes each slot's point when a worker claims it."""
    from . import runner

    jobs = []
    for h in handles:
        for w in workloads:
            if runner.not_applicable(h, w):
                continue  # left out, as in every plan (tuning.left_out)
            for k in range(studies):
                name = store.study_name(suite_version, "tuned-tpe", w.id, h.id, k)
                meta = {**tuning._base_meta(suite_version, "tuned-tpe", w, h, smoke), "study": k, "sampler": "tpe"}
                meta.update(budget_factor=budget_factor, budget_unit=budget_unit, fixed=dict(fixed or {}))
                meta["tuned_extra"] = sorted(tuning.SCHEDULE_SPACE) if tune_schedule else []
                slot = {"suite": suite_version, "workload": w.id, "algorithm": h.id, "study": k, "trials": trials}
                slot.update(smoke=smoke, fixed=dict(fixed or {}), tune_schedule=tune_schedule, study_name=name)
                slot.update(budget_factor=budget_factor, budget_unit=budget_unit)
                for i in range(trials):
                    key = tuning.cell_key(slot=name, index=i, **{k2: meta[k2] for k2 in ("algorithm_hash", "harness")})
                    jobs.append({"study": name, "key": key, "meta": {**meta, "trial": i}, "job": {"tpe": slot}})
    return jobs


def run_tpe(
    result_store: store.ResultStore,
    suite_version: str,
    workloads: Sequence[Any],
    handles: Sequence[Any],
    *,
    trials: int,
    studies: int,
    threads: int = 2,
    jobs: int = 1,
    progress: bool = True,
    **slot_options: Any,
) -> SweepSummary:
    """The ``tuned`` ruleset with Optuna's TPE: ``studies`` studies of ``trials`` trials per pair, one global
    trial budget per study shared by every worker."""
    t0 = time.perf_counter()
    entries = tpe_slots(suite_version, workloads, handles, trials=trials, studies=studies, **slot_options)
    names = sorted({e["study"] for e in entries})
    done_before = sum(len(result_store.completed(n)) for n in names)
    added = workqueue.enqueue(result_store, entries)
    execute(result_store, names, added, threads=threads, jobs=jobs, progress=progress, desc="bench tune (tpe)")
    summary = SweepSummary(planned=len(entries), skipped=min(done_before, len(entries)))
    for n in names:
        for t in result_store.completed(n).values():
            if t.user_attrs.get("key") in {e["key"] for e in entries if e["study"] == n}:
                summary.statuses[t.user_attrs["result"]["status"]] += 1
    summary.ran = sum(summary.statuses.values()) - summary.skipped
    summary.failed = len(entries) - sum(summary.statuses.values())
    summary.wall_time = time.perf_counter() - t0
    return summary
