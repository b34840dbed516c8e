"""The results store: Optuna's RDB storage (SQLite file by default; any SQLAlchemy URL, e.g. PostgreSQL, for a
store shared by many workers and machines).

Layout. One Optuna study per (suite version, ruleset, workload, optimizer[, tuning study]) named
``bench/<suite>/<ruleset>/<workload>/<optimizer>[/study<k>]``; one Optuna trial per run. A finished trial carries
the run's cache key, its metadata, its full result (status, steps/gradients/HVPs/time to target, the metric curve,
memory) and its provenance as user attributes, and the tuning objective as its value. Step-cost measurements live
in studies named ``stepcost/<suite>/<machine>``. Sweeps use the same trials as their work queue
(:mod:`optimlab.bench.workqueue`).

Concurrency. Opening a store creates Optuna's tables under a store-wide lock (a PostgreSQL advisory lock, a MySQL
named lock, a file lock beside a SQLite file), so that many workers starting at once on a fresh database do not
race to create them; the same lock serializes enqueueing. :attr:`ResultStore.display_url` is the URL with its
password masked; it is what the CLI and the report print.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import warnings
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

DEFAULT_RESULTS_DIR = "runs"
DB_FILE = "optimlab-bench.sqlite3"
PREFIX = "bench/"
STEPCOST_PREFIX = "stepcost/"
#: seconds between a running trial's heartbeats; a RUNNING trial silent for GRACE_FACTOR × this is stale
HEARTBEAT_S = 20
GRACE_FACTOR = 4


def default_storage_url(results_dir: str | os.PathLike = DEFAULT_RESULTS_DIR, create: bool = True) -> str:
    path = Path(results_dir).resolve()
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path / DB_FILE}"


def study_name(suite: str, ruleset: str, workload: str, algorithm: str, study: int | None = None) -> str:
    name = f"{PREFIX}{suite}/{ruleset}/{workload}/{algorithm}"
    return name if study is None else f"{name}/study{study}"


def stepcost_study_name(suite: str, machine: str) -> str:
    return f"{STEPCOST_PREFIX}{suite}/{machine}"


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (SQLAlchemy's own rendering where it parses)."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        if "@" in url and "://" in url:
            scheme, rest = url.split("://", 1)
            creds, host = rest.rsplit("@", 1)
            return f"{scheme}://{creds.split(':', 1)[0]}:***@{host}"
        return url


def _optuna():
    import optuna

    optuna.logging.set_verbosity(logging.WARNING)
    return optuna


@contextlib.contextmanager
def store_lock(url: str, name: str = "optimlab-bench") -> Iterator[None]:
    """A lock held across processes and machines sharing the store ``url`` (see the module docstring)."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1] if ":///" in url else ""
        if not path or path.startswith(":memory:"):
            yield
            return
        import fcntl

        with open(path + ".lock", "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)
        return
    import sqlalchemy as sa

    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    key = zlib.crc32(name.encode())
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                unlock = sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key}
            elif engine.dialect.name in ("mysql", "mariadb"):
                conn.execute(sa.text("SELECT GET_LOCK(:n, 600)"), {"n": name})
                unlock = sa.text("SELECT RELEASE_LOCK(:n)"), {"n": name}
            else:
                unlock = None
            conn.commit()
            try:
                yield
            finally:
                if unlock is not None:
                    conn.execute(*unlock)
                    conn.commit()
    finally:
        engine.dispose()


def _open_storage(url: str, heartbeat: int, create: bool = True) -> Any:
    """Optuna's RDBStorage with heartbeats, its tables created under :func:`store_lock` (retried: a server that
    is still starting, or a writer holding SQLite's lock, is not a failure)."""
    optuna = _optuna()
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 120}}
    else:
        engine_kwargs = {"pool_pre_ping": True}
    for attempt in range(5):
        try:
            with store_lock(url) if create else contextlib.nullcontext(), warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat,
                    grace_period=GRACE_FACTOR * heartbeat,
                    skip_table_creation=not create,
                )
        except ImportError as exc:
            raise RuntimeError(
                f"no database driver for {mask_url(url)} ({exc.__cause__ or exc}); PostgreSQL needs psycopg 3: "
                "pip install 'optimlab[bench]'"
            ) from None
        except Exception as exc:  # a race the lock cannot cover (e.g. another client's DDL): retry
            if isinstance(exc, ModuleNotFoundError) or attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


class ResultStore:
    """Thin wrapper around an Optuna RDB storage holding benchmark runs, the work queue and step costs."""

    def __init__(self, url: str, *, heartbeat: int = HEARTBEAT_S, create: bool = True) -> None:
        """``create=False``: an existing store, read without creating tables or lock files (dry runs)."""
        self.url = url
        self.heartbeat = int(heartbeat)
        self.storage = _open_storage(url, self.heartbeat, create)
        self._studies: dict[str, Any] = {}

    @property
    def display_url(self) -> str:
        """The URL with the password masked."""
        return mask_url(self.url)

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

    def study_ids(self, prefix: str = PREFIX) -> dict[str, int]:
        return {s.study_name: s._study_id for s in self.storage.get_all_studies() if s.study_name.startswith(prefix)}

    def study_names(self, prefix: str = PREFIX) -> list[str]:
        return sorted(self.study_ids(prefix))

    # ------------------------------------------------------------------ runs
    def trials(self, name: str, states: tuple | None = None) -> list[Any]:
        try:
            study_id = self.storage.get_study_id_from_name(name)
        except KeyError:
            return []
        return self.storage.get_all_trials(study_id, deepcopy=False, states=states)

    def completed(self, name: str) -> dict[str, Any]:
        """key -> FrozenTrial for the finished runs of a study (COMPLETE with a result; the first one per key)."""
        optuna = _optuna()
        out: dict[str, Any] = {}
        for t in self.trials(name, (optuna.trial.TrialState.COMPLETE,)):
            key = t.user_attrs.get("key")
            if key is not None and key not in out and "result" in t.user_attrs:
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
        """Write one finished run atomically (one transaction): step costs and calibration runs."""
        optuna = _optuna()
        trial = optuna.trial.create_trial(
            value=float(value),
            params=dict(params or {}),
            distributions=dict(distributions or {}),
            user_attrs={"key": key, "meta": jsonable(meta), "result": jsonable(result), "env": dict(provenance)},
        )
        self.study(name).add_trial(trial)

    def records(self, prefix: str = PREFIX) -> Iterator[dict[str, Any]]:
        """Every finished run under ``prefix`` as a flat dict: meta + result + env + key + value + trial id."""
        optuna = _optuna()
        for summary in self.storage.get_all_studies():
            if not summary.study_name.startswith(prefix):
                continue
            for t in self.storage.get_all_trials(
                summary._study_id, deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)
            ):
                attrs = t.user_attrs
                if "meta" not in attrs or "result" not in attrs:
                    continue
                yield {
                    **attrs["meta"],
                    **attrs["result"],
                    "env": attrs.get("env", {}),
                    "key": attrs.get("key"),
                    "value": t.value,
                    "trial_id": t._trial_id,
                    "study_name": summary.study_name,
                    "datetime": t.datetime_complete.isoformat() if t.datetime_complete else None,
                }

    def queue_counts(self, prefix: str = PREFIX) -> dict[str, int]:
        """Trials per state under ``prefix``, and ``UNFINISHED``: planned runs (keys) without a finished trial —
        WAITING, RUNNING, or FAIL after every retry. Any of those means the sweep is incomplete."""
        counts: dict[str, int] = {}
        keys: dict[str, bool] = {}
        for sid in self.study_ids(prefix).values():
            for t in self.storage.get_all_trials(sid, deepcopy=False):
                counts[t.state.name] = counts.get(t.state.name, 0) + 1
                key = t.user_attrs.get("key")
                if key is not None:
                    done = t.state.name == "COMPLETE" and "result" in t.user_attrs
                    keys[key] = keys.get(key, False) or done
        counts["UNFINISHED"] = sum(not v for v in keys.values())
        return counts

    # ------------------------------------------------------------------ step costs
    def step_costs(self, suite: str) -> dict[str, dict[tuple[str, str, str], dict[str, Any]]]:
        """machine -> {(algorithm, workload, hparams key): cost record} for the step-cost tables of ``suite``."""
        out: dict[str, dict[tuple[str, str, str], dict[str, Any]]] = {}
        for rec in self.records(prefix=f"{STEPCOST_PREFIX}{suite}/"):
            table = out.setdefault(rec["machine"], {})
            k = (rec["algorithm"], rec["workload"], rec.get("hparams_key", ""))
            if k not in table or (rec.get("datetime") or "") > (table[k].get("datetime") or ""):
                table[k] = rec
        return out


def jsonable(obj: Any) -> Any:
    """A JSON-safe copy: non-finite floats become None, tuples become lists, unknown objects their repr."""
    return json.loads(json.dumps(obj, default=repr, allow_nan=True), parse_constant=lambda c: None)


_jsonable = jsonable
