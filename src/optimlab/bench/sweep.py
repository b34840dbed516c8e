"""Execute a sweep against the results store: skip finished cells, run the rest, write each run atomically.

Killing a sweep at any moment and rerunning the same command loses no finished run and duplicates none (see
:mod:`optimlab.bench.store`). ``jobs > 1`` runs trials in worker processes (spawned, ``threads // jobs`` torch
threads each); the parent alone writes to the store.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import hashlib
import multiprocessing
import os
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import adapters, provenance, runner, store, tuning
from . import workloads as W


@dataclass
class SweepSummary:
    planned: int = 0
    skipped: int = 0
    ran: int = 0
    statuses: collections.Counter = field(default_factory=collections.Counter)
    wall_time: float = 0.0

    def line(self) -> str:
        st = ", ".join(f"{k} {v}" for k, v in sorted(self.statuses.items())) or "none"
        return (
            f"{self.planned} runs planned, {self.skipped} already in the store, {self.ran} ran ({st}) "
            f"in {self.wall_time:.0f} s"
        )


def _progress_bar(total: int, enabled: bool, desc: str):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # tqdm is in the bench extra; run without bars when it is missing
        return None
    return tqdm(total=total, desc=desc, unit="run", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def _worker_init(threads: int, parent: int) -> None:
    runner.set_threads(threads)
    # a worker whose parent (``parent``: the sweep's pid) was killed exits instead of finishing trials nobody
    # will record

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _run_spec(spec: runner.TrialSpec) -> dict[str, Any]:
    return runner.run_trial(spec).to_dict()


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


def run_cells(
    result_store: store.ResultStore,
    cells: Sequence[tuning.Cell],
    *,
    threads: int = 2,
    jobs: int = 1,
    progress: bool = True,
    retry_errors: bool = False,
    on_result: Callable[[tuning.Cell, Mapping[str, Any]], None] | None = None,
) -> SweepSummary:
    """Run every cell not yet in the store; returns counts."""
    t0 = time.perf_counter()
    summary = SweepSummary(planned=len(cells))
    todo = pending_cells(result_store, cells, retry_errors)
    summary.skipped = len(cells) - len(todo)
    env = provenance.environment(threads)
    bar = _progress_bar(len(todo), progress, "bench run")

    def finish(cell: tuning.Cell, result: Mapping[str, Any]) -> None:
        workload = W.get(cell.meta["workload"])
        value = runner.objective_value(result, workload)
        result_store.add_run(
            cell.study_name,
            key=cell.key,
            value=value,
            meta=cell.meta,
            result=result,
            provenance=env,
            params=cell.params,
            distributions=cell.distributions,
        )
        summary.ran += 1
        summary.statuses[result["status"]] += 1
        if on_result is not None:
            on_result(cell, result)
        if bar is not None:
            bar.update(1)
            bar.set_postfix_str(_postfix(summary))

    try:
        if jobs <= 1 or len(todo) <= 1:
            runner.set_threads(threads)
            for cell in todo:
                if bar is not None:
                    what = f"{cell.meta['workload']} · {cell.meta['algorithm']} · seed {cell.spec.seed}"
                    bar.set_description_str(what)
                finish(cell, runner.run_trial(cell.spec).to_dict())
        else:
            _run_pool(todo, threads, jobs, finish)
    finally:
        if bar is not None:
            bar.close()
    summary.wall_time = time.perf_counter() - t0
    return summary


def _run_pool(todo: Sequence[tuning.Cell], threads: int, jobs: int, finish, fn=None) -> None:
    """Run cells in ``jobs`` spawned workers (``fn(spec) -> result dict``, default :func:`_run_spec`), at most
    ``jobs`` in flight. A worker that dies (a segfault, the OOM killer) breaks the pool: the pool is rebuilt, and
    the cells that were in flight are rerun one at a time in a single worker, so that a crash is attributed to its
    cell, which is then recorded as ``error`` — one crashing optimizer cannot stop a sweep."""
    fn = fn or _run_spec
    ctx = multiprocessing.get_context("spawn")
    per_job = max(1, threads // jobs)
    queue = collections.deque(todo)
    suspects: collections.deque = collections.deque()
    while queue or suspects:
        isolate = bool(suspects)
        source = suspects if isolate else queue
        width = 1 if isolate else jobs
        inflight: dict[cf.Future, tuning.Cell] = {}
        try:
            with cf.ProcessPoolExecutor(
                width, mp_context=ctx, initializer=_worker_init, initargs=(per_job, os.getpid())
            ) as pool:
                while source or inflight:
                    while source and len(inflight) < width:
                        cell = source.popleft()
                        inflight[pool.submit(fn, cell.spec)] = cell
                    done, _ = cf.wait(inflight, return_when=cf.FIRST_COMPLETED)
                    for fut in done:
                        result = fut.result()  # raises BrokenProcessPool while the cell is still in flight
                        finish(inflight.pop(fut), result)
                    if isolate and not source and not inflight:
                        break
        except cf.process.BrokenProcessPool:
            for cell in inflight.values():
                if isolate:
                    finish(cell, _crash_result(cell))
                else:
                    suspects.append(cell)


def _crash_result(cell: tuning.Cell) -> dict[str, Any]:
    workload = W.get(cell.spec.workload)
    budget = workload.budget_for(cell.spec.smoke).scaled(cell.spec.budget_factor)
    result = runner.TrialResult(status="error", max_steps=budget.max_steps)
    result.error = "the worker process running this trial died (crash or out of memory)"
    return result.to_dict()


def _postfix(summary: SweepSummary) -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(summary.statuses.items()))


def run_tpe(
    result_store: store.ResultStore,
    suite_version: str,
    workloads: Sequence[W.Workload],
    handles: Sequence[adapters.AlgorithmHandle],
    *,
    trials: int,
    studies: int,
    smoke: bool = False,
    fixed: Mapping[str, Any] | None = None,
    extra_space: Mapping[str, Any] | None = None,
    budget_factor: float = 1.0,
    threads: int = 2,
    progress: bool = True,
) -> SweepSummary:
    """The ``tuned`` ruleset with Optuna's TPE: ``studies`` studies of ``trials`` trials per pair, round-robin
    over studies so that an interrupted sweep has made equal progress everywhere."""
    from optuna.samplers import TPESampler

    t0 = time.perf_counter()
    runner.set_threads(threads)
    env = provenance.environment(threads)
    summary = SweepSummary()
    slots = []
    for h in handles:
        space = tuning.tuning_space(h, extra_space)
        dists = tuning.distributions(space)
        for w in workloads:
            if runner.not_applicable(h, w):
                continue  # left out, as in every plan (tuning.left_out)
            summary.planned += studies * trials
            for k in range(studies):
                name = store.study_name(suite_version, "tuned-tpe", w.id, h.id, k)
                result_store.fail_orphans(name)
                done = len(result_store.completed(name))
                seed = int(hashlib.sha256(f"{h.id}/{w.id}/{k}".encode()).hexdigest()[:8], 16)
                n_startup = max(1, min(10, trials // 2))
                study = result_store.study(name, sampler=TPESampler(seed=seed, n_startup_trials=n_startup))
                slots.append({"h": h, "w": w, "k": k, "study": study, "done": done, "dists": dists})
                summary.skipped += min(done, trials)
    remaining = sum(max(0, trials - s["done"]) for s in slots)
    bar = _progress_bar(remaining, progress, "bench tune (tpe)")
    try:
        for i in range(trials):
            for s in slots:
                if s["done"] > i:
                    continue
                trial = s["study"].ask(s["dists"])
                result_store.mark_owner(trial)
                cell = tuning.tpe_cell(
                    suite_version,
                    s["w"],
                    s["h"],
                    study=s["k"],
                    trial=s["done"],
                    params=trial.params,
                    smoke=smoke,
                    fixed=fixed,
                    extra_space=extra_space,
                    budget_factor=budget_factor,
                )
                meta = {**cell.meta, "ruleset": "tuned-tpe", "sampler": "tpe"}
                if bar is not None:
                    bar.set_description_str(f"{s['w'].id} · {s['h'].id} · study {s['k']} · trial {s['done']}")
                result = runner.run_trial(cell.spec).to_dict()
                value = runner.objective_value(result, s["w"])
                result_store.finish_asked(
                    s["study"], trial, key=cell.key, value=value, meta=meta, result=result, provenance=env
                )
                s["done"] += 1
                summary.ran += 1
                summary.statuses[result["status"]] += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix_str(_postfix(summary))
    finally:
        if bar is not None:
            bar.close()
    summary.wall_time = time.perf_counter() - t0
    return summary
