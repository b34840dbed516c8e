"""A benchmark worker: claim a queued run from the store, run it with heartbeats, record it; until the queue is empty.

Any number of workers on any number of machines share one store (``optimlab bench worker --storage URL``); the
queue semantics (each run claimed once, stale runs retried, results written in one transaction) are those of
:mod:`optimlab.bench.workqueue`. A worker leaves when no run is WAITING and none is RUNNING elsewhere (a RUNNING
run may still go stale and come back), or after ``max_runs``.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import store, workqueue


@dataclass
class WorkerSummary:
    ran: int = 0
    lost: int = 0
    reaped: int = 0


def _hparams(d: Mapping[str, Any]) -> dict[str, Any]:
    """JSON turned tuples (betas) into lists; optimizers expect tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}


def _cell_of(result_store: store.ResultStore, trial: Any) -> tuple[Any, dict[str, Any], dict[str, Any], dict]:
    """(trial spec, meta, params, distributions) of a claimed trial; a TPE slot asks its study's sampler now."""
    from optuna.distributions import json_to_distribution

    from . import runner

    job = trial.user_attrs["job"]
    if "tpe" in job:
        return _tpe_cell(result_store, trial, job["tpe"])
    spec_d = dict(job["spec"])
    spec_d["hparams"] = _hparams(spec_d.get("hparams") or {})
    dists = {k: json_to_distribution(v) for k, v in (job.get("distributions") or {}).items()}
    return runner.TrialSpec(**spec_d), dict(trial.user_attrs["meta"]), dict(job.get("params") or {}), dists


def _tpe_cell(result_store: store.ResultStore, trial: Any, slot: Mapping[str, Any]):
    import hashlib

    import optuna
    from optuna.samplers import TPESampler

    from . import adapters, tuning
    from . import workloads as W

    handle = adapters.resolve(slot["algorithm"])
    workload = W.get(slot["workload"])
    extra = tuning.SCHEDULE_SPACE if slot.get("tune_schedule") else None
    space = tuning.tuning_space(handle, extra)
    dists = tuning.distributions(space)
    seed = int(hashlib.sha256(f"{handle.id}/{workload.id}/{slot['study']}/{trial.number}".encode()).hexdigest()[:8], 16)
    sampler = TPESampler(seed=seed, n_startup_trials=max(1, min(10, int(slot["trials"]) // 2)))
    study = optuna.load_study(study_name=slot["study_name"], storage=result_store.storage, sampler=sampler)
    live = optuna.trial.Trial(study, trial._trial_id)
    params = {name: _suggest(live, name, dist) for name, dist in dists.items()}
    cell = tuning.tpe_cell(
        slot["suite"],
        workload,
        handle,
        study=slot["study"],
        trial=trial.number,
        params=params,
        smoke=slot["smoke"],
        fixed=slot.get("fixed") or {},
        extra_space=extra,
        budget_factor=slot["budget_factor"],
        budget_unit=slot["budget_unit"],
    )
    meta = {**cell.meta, "sampler": "tpe", "cell_key": cell.key}
    return cell.spec, meta, {}, {}  # the suggested params are already on the trial


def _suggest(trial: Any, name: str, dist: Any) -> Any:
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        return trial.suggest_categorical(name, dist.choices)
    return trial.suggest_float(name, dist.low, dist.high, log=dist.log)


def run_claimed(result_store: store.ResultStore, trial_id: int, env: Mapping[str, Any]) -> dict[str, Any]:
    """Run one claimed trial (heartbeats while it computes) and record it; returns the result dict."""
    from . import runner
    from . import workloads as W

    trial = result_store.storage.get_trial(trial_id)
    with workqueue.Heartbeat(result_store, trial_id):
        spec, meta, params, dists = _cell_of(result_store, trial)
        result = runner.run_trial(spec).to_dict()
    value = runner.objective_value(result, W.get(spec.workload))
    attrs = {"result": store.jsonable(result), "env": dict(env), "meta": store.jsonable(meta)}
    workqueue.finish(result_store, trial_id, value=value, attrs=attrs, params=params, distributions=dists)
    return result


def work(
    result_store: store.ResultStore,
    *,
    prefix: str = store.PREFIX,
    names: Sequence[str] | None = None,
    threads: int = 1,
    poll: float = 2.0,
    max_runs: int | None = None,
    on_start: Callable[[Mapping[str, Any]], None] | None = None,
    on_result: Callable[[Mapping[str, Any], Mapping[str, Any]], None] | None = None,
) -> WorkerSummary:
    """Work through the queue of the studies under ``prefix`` (only those named ``names``, if given)."""
    import torch

    from . import provenance, runner

    runner.set_threads(threads)
    env = provenance.environment(torch.get_num_threads())
    summary = WorkerSummary()
    while max_runs is None or summary.ran < max_runs:
        wanted = set(names) if names is not None else None
        ids = [i for n, i in result_store.study_ids(prefix).items() if wanted is None or n in wanted]
        summary.reaped += workqueue.reap_stale(result_store, ids)
        tid = workqueue.claim(result_store, ids)
        if tid is None:
            if workqueue.count(result_store, ids, "RUNNING") == 0:
                break
            time.sleep(poll)
            continue
        if on_start is not None:
            on_start(result_store.storage.get_trial(tid).user_attrs.get("meta", {}))
        try:
            result = run_claimed(result_store, tid, env)
        except workqueue.Lost:
            summary.lost += 1
            continue
        summary.ran += 1
        if on_result is not None:
            on_result(result_store.storage.get_trial(tid).user_attrs.get("meta", {}), result)
    return summary


def watch_parent(parent: int) -> None:
    """Exit when process ``parent`` is gone (a local worker of a killed ``bench run``; its run goes stale and is
    retried by the next worker)."""

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def local_worker(url: str, heartbeat: int, names: Sequence[str], threads: int, parent: int) -> None:
    """Entry point of a worker process started by ``bench run --jobs N``."""
    watch_parent(parent)
    work(store.ResultStore(url, heartbeat=heartbeat), names=names, threads=threads)
