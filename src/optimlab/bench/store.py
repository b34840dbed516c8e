"""The results store: Optuna's RDB storage (SQLite file by default; any SQLAlchemy URL for a shared server).

Layout. One Optuna study per (suite version, ruleset, workload, optimizer[, tuning study]) named
``bench/<suite>/<ruleset>/<workload>/<optimizer>[/study<k>]``; one Optuna trial per run. A trial carries the run's
cache key, its metadata, its full result (status, steps/gradients/HVPs/time to target, the metric curve, memory)
and its provenance as user attributes, and the tuning objective as its value. Step-cost measurements live in
studies named ``stepcost/<suite>/<machine>``.

Kill safety. A finished run is written with ``Study.add_trial`` — one database transaction that inserts the
trial with its state, value, parameters and attributes — so a killed sweep leaves either the whole trial or
nothing. A rerun skips every cell whose key already has a COMPLETE trial, so nothing finished is lost or
duplicated. Adaptive (TPE) tuning must ask the study for its next point, which creates a RUNNING trial first;
a kill then leaves an orphan, which :meth:`ResultStore.fail_orphans` marks FAIL on the next run (same host, dead
process) so that it is neither counted nor duplicated.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

DEFAULT_RESULTS_DIR = "runs"
DB_FILE = "optimlab-bench.sqlite3"
PREFIX = "bench/"
STEPCOST_PREFIX = "stepcost/"


def default_storage_url(results_dir: str | os.PathLike = DEFAULT_RESULTS_DIR) -> str:
    path = Path(results_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path / DB_FILE}"


def study_name(suite: str, ruleset: str, workload: str, algorithm: str, study: int | None = None) -> str:
    name = f"{PREFIX}{suite}/{ruleset}/{workload}/{algorithm}"
    return name if study is None else f"{name}/study{study}"


def _optuna():
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    return optuna


class ResultStore:
    """Thin wrapper around an Optuna RDB storage holding benchmark runs and step costs."""

    def __init__(self, url: str) -> None:
        optuna = _optuna()
        self.url = url
        engine_kwargs: dict[str, Any] = {}
        if url.startswith("sqlite"):
            engine_kwargs = {"connect_args": {"timeout": 120}}
        self.storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs)
        self._studies: dict[str, Any] = {}

    # ------------------------------------------------------------------ studies
    def study(self, name: str, sampler: Any = None) -> Any:
        """The study of this name (created if missing); ``sampler`` for adaptive tuning."""
        optuna = _optuna()
        if sampler is not None or name not in self._studies:
            study = optuna.create_study(
                storage=self.storage, study_name=name, direction="minimize", load_if_exists=True, sampler=sampler
            )
            if sampler is not None:
                return study
            self._studies[name] = study
        return self._studies[name]

    def study_names(self, prefix: str = PREFIX) -> list[str]:
        return sorted(s.study_name for s in self.storage.get_all_studies() if s.study_name.startswith(prefix))

    # ------------------------------------------------------------------ runs
    def completed(self, name: str) -> dict[str, Any]:
        """key -> FrozenTrial for the COMPLETE trials of a study (the first one per key)."""
        optuna = _optuna()
        out: dict[str, Any] = {}
        try:
            study_id = self.storage.get_study_id_from_name(name)
        except KeyError:
            return out
        for t in self.storage.get_all_trials(study_id, deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            key = t.user_attrs.get("key")
            if key is not None and key not in out:
                out[key] = t
        return out

    def add_run(
        self,
        name: str,
        *,
        key: str,
        value: float,
        meta: Mapping[str, Any],
        result: Mapping[str, Any],
        provenance: Mapping[str, Any],
        params: Mapping[str, Any] | None = None,
        distributions: Mapping[str, Any] | None = None,
    ) -> None:
        """Write one finished run atomically (one transaction)."""
        optuna = _optuna()
        trial = optuna.trial.create_trial(
            value=float(value),
            params=dict(params or {}),
            distributions=dict(distributions or {}),
            user_attrs={"key": key, "meta": _jsonable(meta), "result": _jsonable(result), "env": dict(provenance)},
        )
        self.study(name).add_trial(trial)

    def finish_asked(self, study: Any, trial: Any, *, key: str, value: float, meta, result, provenance) -> None:
        """Complete a trial created by ``study.ask()`` (adaptive tuning)."""
        trial.set_user_attr("meta", _jsonable(meta))
        trial.set_user_attr("result", _jsonable(result))
        trial.set_user_attr("env", dict(provenance))
        trial.set_user_attr("key", key)
        study.tell(trial, float(value))

    def mark_owner(self, trial: Any) -> None:
        trial.set_user_attr("owner", {"host": socket.gethostname(), "pid": os.getpid()})

    def fail_orphans(self, name: str) -> int:
        """Mark FAIL the RUNNING trials of a study that this host started from a process that is gone."""
        optuna = _optuna()
        try:
            study_id = self.storage.get_study_id_from_name(name)
        except KeyError:
            return 0
        n = 0
        host = socket.gethostname()
        for t in self.storage.get_all_trials(study_id, deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            owner = t.user_attrs.get("owner") or {}
            if owner.get("host") == host and not _pid_alive(int(owner.get("pid", -1))):
                self.storage.set_trial_state_values(t._trial_id, optuna.trial.TrialState.FAIL)
                n += 1
        return n

    def records(self, prefix: str = PREFIX) -> Iterator[dict[str, Any]]:
        """Every COMPLETE run under ``prefix`` as a flat dict: meta + result + env + key + value + trial id."""
        optuna = _optuna()
        for summary in self.storage.get_all_studies():
            if not summary.study_name.startswith(prefix):
                continue
            for t in self.storage.get_all_trials(
                summary._study_id, deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
            ):
                attrs = t.user_attrs
                if "meta" not in attrs:
                    continue
                yield {
                    **attrs["meta"],
                    **attrs.get("result", {}),
                    "env": attrs.get("env", {}),
                    "key": attrs.get("key"),
                    "value": t.value,
                    "trial_id": t._trial_id,
                    "study_name": summary.study_name,
                    "datetime": t.datetime_complete.isoformat() if t.datetime_complete else None,
                }

    # ------------------------------------------------------------------ step costs
    def step_costs(self, suite: str) -> dict[str, dict[tuple[str, str], dict[str, Any]]]:
        """machine -> {(algorithm, workload): cost record} for the step-cost tables of ``suite``."""
        out: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        for rec in self.records(prefix=f"{STEPCOST_PREFIX}{suite}/"):
            table = out.setdefault(rec["machine"], {})
            k = (rec["algorithm"], rec["workload"])
            if k not in table or (rec.get("datetime") or "") > (table[k].get("datetime") or ""):
                table[k] = rec
        return out


def stepcost_study_name(suite: str, machine: str) -> str:
    return f"{STEPCOST_PREFIX}{suite}/{machine}"


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie (killed child not yet reaped) is not alive
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


def _jsonable(obj: Any) -> Any:
    """A JSON-safe copy: non-finite floats become None, tuples become lists, unknown objects their repr."""
    return json.loads(json.dumps(obj, default=repr, allow_nan=True), parse_constant=lambda c: None)
