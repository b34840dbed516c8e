"""The step-cost microbenchmark: c_{s,w}, the amortized time of one training step of optimizer s on workload w.

The official clock of the benchmark is the modelled time T = S × c_{s,w} (benchmark.md §6.2): the number of steps
to the target times a per-step cost measured separately, on a quiet machine, with threads pinned, after warm-up
(20 warm-up + 200 timed steps by default), repeated 3 times (fresh model each time), taking the median of the
per-repeat **means**: the mean over 200 steps covers whole periods of periodic work (Sophia-H's Hessian refresh
every 10 steps, Shampoo's preconditioner), which the median of single steps would never charge. Raw wall clocks
of the sweep itself are kept only for diagnostics: on a shared machine they vary 2–10× with the load. A step here
is exactly the runner's training step (batch, forward, backward, closure or HVPs if the optimizer needs them,
optimizer step) at the hyperparameters given (``--hparams``; the paper defaults otherwise); the table is keyed by
them (:func:`optimlab.bench.scoring.hparams_key`) and the scorer uses an entry only for runs made at the same
hyperparameters.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch

from ..training import create_graph_warning_silenced
from . import adapters, provenance, runner, scoring, store, tuning
from . import workloads as W


def measure(
    handle: adapters.AlgorithmHandle,
    workload: W.Workload,
    *,
    warmup: int = 20,
    steps: int = 200,
    repeats: int = 3,
    smoke: bool = False,
    hparams: Mapping[str, Any] | None = None,
    device: str = "cpu",
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, Any]:
    """Amortized seconds per training step (median over repeats of the mean step time), with the per-repeat means.

    ``clock``: wall time by default; ``time.process_time`` measures this process's CPU seconds, which a loaded
    machine inflates far less (what the shipped estimate table uses, :mod:`~optimlab.bench.estimate`)."""
    _, opt_hparams = runner.split_hparams(hparams or {})
    medians = []
    for r in range(repeats):
        task = workload.build(seed=r, smoke=smoke, device=device)
        task.model.train()
        optimizer = adapters.build_optimizer(handle, runner.make_param_groups(task, handle), opt_hparams)
        if runner.has_train_eval_modes(optimizer):
            optimizer.train()
        times = []
        cuda = torch.device(device).type == "cuda"
        with runner.step_counter(handle) as counter, create_graph_warning_silenced():
            for i in range(warmup + steps):
                if cuda:
                    torch.cuda.synchronize()
                t0 = clock()
                runner.train_step(task, optimizer, handle, counter, task.next_batch())
                if cuda:
                    torch.cuda.synchronize()
                if i >= warmup:
                    times.append(clock() - t0)
        medians.append(scoring.amortized(times))
    return {"seconds_per_step": statistics.median(medians), "repeat_means": medians}


def run_step_costs(
    result_store: store.ResultStore,
    suite_version: str,
    workloads: Sequence[W.Workload],
    handles: Sequence[adapters.AlgorithmHandle],
    *,
    warmup: int = 20,
    steps: int = 200,
    repeats: int = 3,
    smoke: bool = False,
    threads: int = 2,
    force: bool = False,
    progress: bool = True,
    echo=print,
    hparams: Mapping[str, Any] | None = None,
) -> dict[tuple[str, str], float]:
    """Measure and store c_{s,w} for every pair (skipping pairs already measured on this machine unless
    ``force``, and pairs that are not applicable, :func:`runner.not_applicable`); returns {(algorithm, workload):
    seconds per step}."""
    from .sweep import _progress_bar

    runner.set_threads(threads)
    env = provenance.environment(threads)
    name = store.stepcost_study_name(suite_version, env["machine"])
    settings = {"warmup": warmup, "steps": steps, "repeats": repeats, "hparams": dict(hparams or {})}
    out, todo = _stored_and_todo(result_store.completed(name), suite_version, workloads, handles, env, settings, force)
    bar = _progress_bar(len(todo), progress, "bench step-cost")
    try:
        for w, h, key in todo:
            if bar is not None:
                bar.set_description_str(f"step-cost {w.id} · {h.id}")
            try:
                m = measure(h, w, warmup=warmup, steps=steps, repeats=repeats, smoke=smoke, hparams=hparams)
            except Exception as exc:  # one failing optimizer must not stop the table
                echo(f"step-cost {h.id} on {w.id} failed: {type(exc).__name__}: {exc}")
            else:
                meta = _meta(suite_version, w, h, env, settings)
                result_store.add_run(name, key=key, value=m["seconds_per_step"], meta=meta, result=m, provenance=env)
                out[(h.id, w.id)] = m["seconds_per_step"]
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out


def _stored_and_todo(
    done: Mapping[str, Any],
    suite_version: str,
    workloads: Sequence[W.Workload],
    handles: Sequence[adapters.AlgorithmHandle],
    env: Mapping[str, Any],
    settings: Mapping[str, Any],
    force: bool,
) -> tuple[dict[tuple[str, str], float], list[tuple[W.Workload, adapters.AlgorithmHandle, str]]]:
    """The costs already in the table (``done``: key -> stored run) and the applicable pairs left to measure."""
    out: dict[tuple[str, str], float] = {}
    todo = []
    for w in workloads:
        for h in handles:
            if runner.not_applicable(h, w):
                continue  # left out, as in every plan (tuning.left_out)
            key = tuning.cell_key(
                kind="stepcost",
                suite=suite_version,
                workload=w.id,
                workload_hash=w.code_hash(),
                algorithm=h.id,
                algorithm_hash=h.source_hash,
                machine=env["machine"],
                amortized=True,
                **settings,
            )
            if key in done and not force:
                out[(h.id, w.id)] = done[key].value
            else:
                todo.append((w, h, key))
    return out, todo


def _meta(
    suite_version: str,
    w: W.Workload,
    h: adapters.AlgorithmHandle,
    env: Mapping[str, Any],
    settings: Mapping[str, Any],
) -> dict[str, Any]:
    """The stored description of one measurement."""
    return {
        "kind": "stepcost",
        "suite": suite_version,
        "workload": w.id,
        "algorithm": h.id,
        "library": h.library,
        "machine": env["machine"],
        **settings,
        "hparams_key": scoring.hparams_key(settings["hparams"]),
    }
