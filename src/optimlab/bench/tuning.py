"""Rulesets and hyperparameter search: which runs a sweep consists of.

Rulesets (benchmark.md §6.3):

* ``defaults`` — the registry record's paper defaults (any ``--hparams`` overrides applied to every workload),
  N seeds per workload; the per-workload time is the median over seeds.
* ``tuned`` — the registry record's ``search_space`` (``LogUniform``, ``Uniform``, ``OneMinusLogUniform``,
  ``Choice``; ``beta1``/``beta2`` fold into ``betas``), under a fixed trial budget per (optimizer, workload):
  ``studies`` independent studies × ``trials`` trials. Sampler ``qmc``: a scrambled Halton sequence (the same
  points for every workload of an optimizer; study k gets points k·trials … (k+1)·trials − 1, run seed k), so
  every trial is a deterministic cell. Sampler ``tpe``: Optuna's TPE inside each study (adaptive; trial i of a
  study is asked after trials < i are told). The per-workload time is the median over studies of the best
  trial of each study (AlgoPerf's external-tuning rule).

Schedule rule: every run gets the harness's LR schedule (``sched_*`` keys, default warm-up + cosine) except the
records flagged schedule-free (registry ``tuning_free="schedule"``: sf_sgd, sf_adamw, schedule_free), which run
with a constant schedule after the warm-up (:func:`with_schedule_rule`): a decay on top of a schedule-free method is
not the method. A ``sched_kind`` given explicitly (``--schedule``, ``--hparams``) wins.

A run is a :class:`Cell`: its cache key hashes everything that determines the result (suite version, workload
code and data hashes, optimizer id and source hash, hyperparameters, seed, budget, harness version), so editing
an optimizer or a workload reruns exactly the affected cells.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .. import registry as R
from . import adapters, datacache, runner
from . import workloads as W

RULESETS = ("defaults", "tuned")
#: the defaults ruleset runs max_steps × 1.5 (benchmark.md §6.3); runs at another factor are a named variant
DEFAULTS_BUDGET = 1.5
SAMPLERS = ("qmc", "tpe")


@dataclass(frozen=True)
class Cell:
    """One planned run: the trial spec, where it is stored, and what identifies it."""

    key: str
    study_name: str
    spec: runner.TrialSpec
    meta: Mapping[str, Any]
    params: Mapping[str, Any] = field(default_factory=dict)
    distributions: Mapping[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------- search spaces
_PRIMES = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97)


def halton(n: int, dim: int, seed: int, start: int = 0) -> list[list[float]]:
    """Points ``start … start+n−1`` of a ``dim``-dimensional Halton sequence with a random (Cranley–Patterson)
    shift drawn from ``seed``; values in [0, 1)."""
    import numpy as np

    if dim > len(_PRIMES):
        raise ValueError(f"at most {len(_PRIMES)} tuning dimensions")
    shift = np.random.default_rng(seed).uniform(size=dim)
    out = []
    for i in range(start + 1, start + n + 1):
        row = []
        for j in range(dim):
            base, f, r, k = _PRIMES[j], 1.0, 0.0, i
            while k > 0:
                f /= base
                r += f * (k % base)
                k //= base
            row.append(float((r + shift[j]) % 1.0))
        out.append(row)
    return out


def _param_name(key: str, dim: R.SearchDim) -> str:
    return f"one_minus_{key}" if isinstance(dim, R.OneMinusLogUniform) else key


def distributions(space: Mapping[str, R.SearchDim]) -> dict[str, Any]:
    """Optuna distributions of a search space (``OneMinusLogUniform`` is sampled as ``one_minus_<key>``)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    out: dict[str, Any] = {}
    for key, dim in space.items():
        name = _param_name(key, dim)
        if isinstance(dim, R.LogUniform):
            out[name] = FloatDistribution(dim.low, dim.high, log=True)
        elif isinstance(dim, R.Uniform):
            out[name] = FloatDistribution(dim.low, dim.high)
        elif isinstance(dim, R.OneMinusLogUniform):
            out[name] = FloatDistribution(1.0 - dim.high, 1.0 - dim.low, log=True)
        elif isinstance(dim, R.Choice):
            out[name] = CategoricalDistribution([_choice_label(v) for v in dim.values])
        else:
            raise TypeError(f"unknown search dimension {dim!r} for {key!r}")
    return out


def _choice_label(value: Any) -> Any:
    return value if value is None or isinstance(value, (bool, int, float, str)) else json.dumps(value)


def from_unit(space: Mapping[str, R.SearchDim], u: Sequence[float]) -> dict[str, Any]:
    """Optuna params (in the sampled space) of a unit-cube point."""
    params: dict[str, Any] = {}
    for (key, dim), x in zip(space.items(), u):
        name = _param_name(key, dim)
        if isinstance(dim, R.LogUniform):
            params[name] = math.exp(math.log(dim.low) + x * (math.log(dim.high) - math.log(dim.low)))
        elif isinstance(dim, R.Uniform):
            params[name] = dim.low + x * (dim.high - dim.low)
        elif isinstance(dim, R.OneMinusLogUniform):
            lo, hi = 1.0 - dim.high, 1.0 - dim.low
            params[name] = math.exp(math.log(lo) + x * (math.log(hi) - math.log(lo)))
        elif isinstance(dim, R.Choice):
            params[name] = _choice_label(dim.values[min(int(x * len(dim.values)), len(dim.values) - 1)])
    return params


def to_hparams(space: Mapping[str, R.SearchDim], params: Mapping[str, Any]) -> dict[str, Any]:
    """Optimizer hyperparameters from Optuna params (undo the ``one_minus_`` and Choice label mappings)."""
    out: dict[str, Any] = {}
    for key, dim in space.items():
        name = _param_name(key, dim)
        if name not in params:
            continue
        value = params[name]
        if isinstance(dim, R.OneMinusLogUniform):
            value = 1.0 - value
        elif isinstance(dim, R.Choice):
            value = next(v for v in dim.values if _choice_label(v) == value)
        out[key] = value
    return out


# ---------------------------------------------------------------------------------------------- keys
def cell_key(**parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=repr).encode()).hexdigest()[:24]


def _base_meta(
    suite_version: str, ruleset: str, workload: W.Workload, handle: adapters.AlgorithmHandle, smoke: bool
) -> dict[str, Any]:
    return {
        "suite": suite_version,
        "ruleset": ruleset,
        "workload": workload.id,
        "workload_hash": workload.code_hash(),
        "data_hash": datacache.data_hash(workload, smoke),
        "algorithm": handle.id,
        "library": handle.library,
        "library_version": handle.library_version,
        "algorithm_hash": handle.source_hash,
        "harness": runner.HARNESS_VERSION,
        "target": workload.target,
        "higher_is_better": workload.higher_is_better,
    }


def with_schedule_rule(handle: adapters.AlgorithmHandle, hparams: Mapping[str, Any]) -> dict[str, Any]:
    """``hparams`` with the benchmark's schedule rule applied (module docstring): ``sched_kind="constant"`` for a
    schedule-free registry record unless ``hparams`` sets ``sched_kind``."""
    out = dict(hparams)
    if handle.library == "optimlab" and "sched_kind" not in out:
        base_id = handle.id.partition("+")[0]  # a multi-task candidate follows its optimizer's rule
        if R.spec(base_id.rpartition(":")[2]).schedule_free:
            out["sched_kind"] = "constant"
    return out


def _cell(
    suite_version: str,
    ruleset: str,
    workload: W.Workload,
    handle: adapters.AlgorithmHandle,
    *,
    smoke: bool,
    seed: int,
    hparams: Mapping[str, Any],
    budget_factor: float,
    device: str,
    study: int | None,
    trial: int | None,
    params: Mapping[str, Any] | None = None,
    dists: Mapping[str, Any] | None = None,
    stop_at_target: bool = True,
    budget_unit: str = runner.DEFAULT_BUDGET_UNIT,
    fixed: Mapping[str, Any] | None = None,
    tuned_extra: Sequence[str] = (),
) -> Cell:
    from . import store

    meta = _base_meta(suite_version, ruleset, workload, handle, smoke)
    meta.update(seed=seed, study=study, trial=trial, budget_factor=budget_factor, overrides=dict(hparams))
    meta.update(budget_unit=budget_unit, fixed=dict(fixed if fixed is not None else hparams))
    meta["tuned_extra"] = sorted(tuned_extra)
    # the schedule rule is the ruleset's standard, not an override: the variant name (from meta) stays the id
    run_hparams = with_schedule_rule(handle, hparams)
    if not stop_at_target:
        meta["stop_at_target"] = False
    key = cell_key(
        **{k: meta[k] for k in ("suite", "ruleset", "workload", "workload_hash", "data_hash", "algorithm")},
        algorithm_hash=handle.source_hash,
        harness=runner.HARNESS_VERSION,
        hparams=run_hparams,
        seed=seed,
        budget=budget_factor,
        study=study,
        trial=trial,
        device=device,
        budget_unit=budget_unit,
        **({} if stop_at_target else {"stop_at_target": False}),
    )
    spec = runner.TrialSpec(
        handle.id, workload.id, seed, run_hparams, smoke, budget_factor, device, stop_at_target, budget_unit
    )
    name = store.study_name(suite_version, ruleset, workload.id, handle.id, study)
    return Cell(key, name, spec, meta, dict(params or {}), dict(dists or {}))


# ---------------------------------------------------------------------------------------------- plans
def left_out(workloads: Sequence[W.Workload], handles: Sequence[adapters.AlgorithmHandle]) -> dict[str, list[str]]:
    """Optimizer id -> the workloads it is not applicable to (:func:`runner.not_applicable`); the plans leave
    those pairs out."""
    out: dict[str, list[str]] = {}
    for h in handles:
        ws = [w.id for w in workloads if runner.not_applicable(h, w)]
        if ws:
            out[h.id] = ws
    return out


def left_out_lines(workloads: Sequence[W.Workload], handles: Sequence[adapters.AlgorithmHandle]) -> list[str]:
    """One line per optimizer saying which pairs the plans leave out and why (the CLI prints them)."""
    by_id = {w.id: w for w in workloads}
    lines = []
    for h in handles:
        ws = left_out(workloads, [h]).get(h.id)
        if ws:
            reason = runner.not_applicable(h, by_id[ws[0]])
            lines.append(f"not applicable, left out: {h.id} on {', '.join(ws)} ({reason})")
    return lines


def plan_defaults(
    suite_version: str,
    workloads: Sequence[W.Workload],
    handles: Sequence[adapters.AlgorithmHandle],
    *,
    seeds: int,
    smoke: bool = False,
    hparams: Mapping[str, Any] | None = None,
    budget_factor: float = DEFAULTS_BUDGET,
    device: str = "cpu",
    ruleset: str = "defaults",
    seed_list: Sequence[int] | None = None,
    stop_at_target: bool = True,
    budget_unit: str = runner.DEFAULT_BUDGET_UNIT,
) -> list[Cell]:
    """Cells of the ``defaults`` ruleset, ordered seed-major so that a partial sweep covers every pair (pairs in
    :func:`left_out` excluded, as in every plan)."""
    hparams = dict(hparams or {})
    return [
        _cell(
            suite_version,
            ruleset,
            w,
            h,
            smoke=smoke,
            seed=seed,
            hparams=hparams,
            budget_factor=budget_factor,
            device=device,
            study=None,
            trial=None,
            stop_at_target=stop_at_target,
            budget_unit=budget_unit,
        )
        for seed in (seed_list if seed_list is not None else range(seeds))
        for w in workloads
        for h in handles
        if not runner.not_applicable(h, w)
    ]


def tuning_space(handle: adapters.AlgorithmHandle, extra: Mapping[str, R.SearchDim] | None = None):
    space = dict(handle.search_space)
    space.update(extra or {})
    if not space:
        raise ValueError(f"{handle.id} has no search space to tune")
    return space


def plan_quasirandom(
    suite_version: str,
    workloads: Sequence[W.Workload],
    handles: Sequence[adapters.AlgorithmHandle],
    *,
    trials: int,
    studies: int,
    smoke: bool = False,
    fixed: Mapping[str, Any] | None = None,
    extra_space: Mapping[str, R.SearchDim] | None = None,
    budget_factor: float = 1.0,
    device: str = "cpu",
    ruleset: str = "tuned",
    stop_at_target: bool = True,
    spaces: Mapping[str, Mapping[str, R.SearchDim]] | None = None,
    budget_unit: str = runner.DEFAULT_BUDGET_UNIT,
) -> list[Cell]:
    """Cells of the ``tuned`` ruleset with the quasi-random (Halton) sampler (``spaces`` replaces the registry
    search space of the optimizers it names)."""
    cells = []
    for h in handles:
        space = dict(spaces[h.id]) if spaces and h.id in spaces else tuning_space(h, extra_space)
        dists = distributions(space)
        seed = int(hashlib.sha256(h.id.encode()).hexdigest()[:8], 16)
        points = halton(trials * studies, len(space), seed)
        for k in range(studies):
            for i in range(trials):
                params = from_unit(space, points[k * trials + i])
                hp = {**(fixed or {}), **to_hparams(space, params)}
                for w in workloads:
                    if runner.not_applicable(h, w):
                        continue
                    cells.append(
                        _cell(
                            suite_version,
                            ruleset,
                            w,
                            h,
                            smoke=smoke,
                            seed=k,
                            hparams=hp,
                            budget_factor=budget_factor,
                            device=device,
                            study=k,
                            trial=i,
                            params=params,
                            dists=dists,
                            stop_at_target=stop_at_target,
                            budget_unit=budget_unit,
                            fixed=fixed or {},
                            tuned_extra=list(extra_space or ()),
                        )
                    )
    # trial-major order: an interrupted sweep has tried the first points everywhere
    cells.sort(key=lambda c: (c.meta["trial"], c.meta["study"]))
    return cells


def tpe_cell(
    suite_version: str,
    workload: W.Workload,
    handle: adapters.AlgorithmHandle,
    *,
    study: int,
    trial: int,
    params: Mapping[str, Any],
    smoke: bool,
    fixed: Mapping[str, Any] | None = None,
    extra_space: Mapping[str, R.SearchDim] | None = None,
    budget_factor: float = 1.0,
    device: str = "cpu",
    budget_unit: str = runner.DEFAULT_BUDGET_UNIT,
) -> Cell:
    """The cell for TPE trial ``trial`` of a study, once Optuna has proposed ``params``."""
    space = tuning_space(handle, extra_space)
    hp = {**(fixed or {}), **to_hparams(space, params)}
    return _cell(
        suite_version,
        "tuned-tpe",
        workload,
        handle,
        smoke=smoke,
        seed=study,
        hparams=hp,
        budget_factor=budget_factor,
        device=device,
        study=study,
        trial=trial,
        params=params,
        dists=distributions(space),
        budget_unit=budget_unit,
        fixed=fixed or {},
        tuned_extra=list(extra_space or ()),
    )


#: optional harness dimensions for the tuned ruleset (``--tune-schedule``): warm-up fraction and decay horizon
SCHEDULE_SPACE: dict[str, R.SearchDim] = {
    "sched_warmup": R.Uniform(0.0, 0.1),
    "sched_horizon": R.Uniform(0.5, 1.0),
}
