"""The store's trials as the sweep's work queue: enqueue once, claim atomically, heartbeat, finish in one transaction.

Every planned run becomes one Optuna trial in state WAITING, carrying the run's cache key, metadata and job (the
trial spec, or for adaptive tuning the TPE slot) as user attributes — created in one transaction by Optuna's own
``add_trial``. :func:`enqueue` runs under the store-wide lock (:func:`optimlab.bench.store.store_lock`) and adds
only the keys that have no WAITING, RUNNING or COMPLETE trial yet, so any number of ``bench run`` processes
enqueue each planned run once. A TPE study is enqueued as ``trials`` empty slots: that is its global trial
budget, whatever the number of workers; the sampler proposes a slot's hyperparameters when a worker claims it.

A worker claims a WAITING trial with a conditional update (``state = RUNNING where state = WAITING``; exactly one
claimant sees one row changed, on every database) that also writes the trial's first heartbeat and the worker's
host and pid (user attribute ``worker``), in one transaction; it then records Optuna's heartbeat every
``heartbeat`` seconds. :func:`finish` writes the result, provenance, parameters, objective value and the COMPLETE
state in one transaction, and only while the trial is still RUNNING. :func:`reap_stale` turns a RUNNING trial
whose heartbeat is older than the grace period (its worker was killed, or its machine lost) into FAIL and
enqueues a WAITING copy of it, again in one transaction, up to ``MAX_ATTEMPTS`` attempts (Optuna's
``RetryFailedTrialCallback`` does the same in two steps). Nothing is lost: a kill at any point leaves the run
WAITING, RUNNING (then stale, then retried) or COMPLETE; nothing is duplicated: a late ``finish`` of a trial that
was reaped is refused, and its copy is the one that counts. Every state check is itself the conditional update
(:func:`_move`), never a read followed by a write: SQLite's Python driver opens the transaction at the first write,
so two workers reaping one stale run at once both read RUNNING and requeued it twice (seen in the kill test).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import store

#: attempts of one run before it stays FAIL (a run that kills its worker every time, e.g. out of memory)
MAX_ATTEMPTS = 3


class Lost(RuntimeError):
    """The claimed trial is no longer RUNNING (it was reaped as stale): its result is not recorded."""


def _rdb():
    from optuna.storages._rdb import models
    from optuna.storages._rdb.storage import _create_scoped_session

    return models, _create_scoped_session


def _state():
    from optuna.trial import TrialState

    return TrialState


def _retrying(fn, *args, tries: int = 8):
    """Run a store operation, retrying on transient database errors (SQLite's lock, a serialization failure)."""
    import optuna
    import sqlalchemy.exc

    for attempt in range(tries):
        try:
            return fn(*args)
        except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.OperationalError):
            if attempt == tries - 1:
                raise
            time.sleep(0.05 * (attempt + 1) * (1 + (hash((time.time(), attempt)) % 7) / 7))


# ---------------------------------------------------------------------------------------------- enqueue
def enqueue(result_store: store.ResultStore, jobs: Sequence[Mapping[str, Any]], rerun: Iterable[str] = ()) -> int:
    """Add a WAITING trial for every job (``{"study": name, "key": key, "meta": {...}, "job": {...}}``) whose key
    has no WAITING, RUNNING or COMPLETE trial in its study (keys in ``rerun``: no WAITING or RUNNING one);
    returns how many were added."""
    rerun = set(rerun)
    optuna = store._optuna()
    TS = _state()
    live = (TS.WAITING, TS.RUNNING, TS.COMPLETE)
    added = 0
    with store.store_lock(result_store.url):
        by_study: dict[str, list[Mapping[str, Any]]] = {}
        for job in jobs:
            by_study.setdefault(job["study"], []).append(job)
        for name, items in by_study.items():
            study = result_store.study(name)
            present = {
                t.user_attrs.get("key")
                for t in result_store.trials(name, live)
                if not (t.state == TS.COMPLETE and t.user_attrs.get("key") in rerun)
            }
            new = [
                optuna.trial.create_trial(
                    state=TS.WAITING,
                    user_attrs={"key": j["key"], "meta": store.jsonable(j["meta"]), "job": store.jsonable(j["job"])},
                )
                for j in items
                if j["key"] not in present
            ]
            for t in new:
                _retrying(study.add_trial, t)
            added += len(new)
    return added


# ---------------------------------------------------------------------------------------------- claim / finish
def claim(result_store: store.ResultStore, study_ids: Iterable[int]) -> int | None:
    """Atomically take one WAITING trial of these studies (oldest first): RUNNING, with its first heartbeat."""
    ids = list(study_ids)
    if not ids:
        return None
    return _retrying(_claim_once, result_store, ids)


def _claim_once(result_store: store.ResultStore, ids: list[int]) -> int | None:
    import sqlalchemy as sa

    models, scoped = _rdb()
    TS = _state()
    T = models.TrialModel
    with scoped(result_store.storage.scoped_session) as session:
        candidates = session.execute(
            sa.select(T.trial_id).where(T.study_id.in_(ids), T.state == TS.WAITING).order_by(T.trial_id).limit(16)
        ).scalars()
        for tid in list(candidates):
            if _move(session, tid, TS.WAITING, TS.RUNNING):
                session.add(models.TrialHeartbeatModel(trial_id=tid))
                owner = json.dumps({"host": socket.gethostname(), "pid": os.getpid()})
                session.add(models.TrialUserAttributeModel(trial_id=tid, key="worker", value_json=owner))
                return int(tid)
    return None


def finish(
    result_store: store.ResultStore,
    trial_id: int,
    *,
    value: float,
    attrs: Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
    distributions: Mapping[str, Any] | None = None,
) -> None:
    """Write the run's attributes, parameters and value and mark it COMPLETE, in one transaction; :class:`Lost`
    if the trial is no longer RUNNING."""
    _retrying(_finish_once, result_store, trial_id, value, dict(attrs), dict(params or {}), dict(distributions or {}))


def _finish_once(result_store, trial_id, value, attrs, params, distributions) -> None:
    models, scoped = _rdb()
    TS = _state()
    storage = result_store.storage
    with scoped(storage.scoped_session) as session:
        # RUNNING → RUNNING: takes the row (and SQLite's write lock) for this transaction while it is still RUNNING,
        # so that no reaper can fail it between this check and the COMPLETE below
        if not _move(session, trial_id, TS.RUNNING, TS.RUNNING):
            state = models.TrialModel.find_or_raise_by_id(trial_id, session).state
            raise Lost(f"trial {trial_id} is {state.name}, not RUNNING (reaped as stale)")
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        for k, v in attrs.items():
            storage._set_trial_attr_without_commit(session, models.TrialUserAttributeModel, trial_id, k, v)
        existing = {p.param_name for p in trial.params}
        for k, v in params.items():
            if k in distributions and k not in existing:
                dist = distributions[k]
                storage._set_trial_param_without_commit(session, trial_id, k, dist.to_internal_repr(v), dist)
        storage._set_trial_value_without_commit(session, trial, 0, float(value))
        trial.state = TS.COMPLETE
        trial.datetime_complete = _dt.datetime.now()


def _move(session, trial_id: int, src, dst) -> bool:
    """Change a trial's state from ``src`` to ``dst`` with one conditional update, stamping its start (WAITING →
    RUNNING) or completion time: True for exactly one of any number of concurrent callers. (A read-then-write is
    not enough: SQLite's Python driver starts the transaction at the first write, so two workers could both read
    RUNNING and both act on it.)"""
    import sqlalchemy as sa

    models, _ = _rdb()
    T = models.TrialModel
    now = _dt.datetime.now(_dt.timezone.utc).replace(tzinfo=None)
    values = {T.state: dst}
    if dst.is_finished():
        values[T._datetime_complete_utc] = now
    elif src == _state().WAITING:
        values[T._datetime_start_utc] = now
    changed = session.execute(
        sa.update(T)
        .where(T.trial_id == trial_id, T.state == src)
        .values(values)
        .execution_options(synchronize_session=False)
    ).rowcount
    return changed == 1


def count(result_store: store.ResultStore, study_ids: Iterable[int], state: str) -> int:
    """How many trials of these studies are in ``state`` (a TrialState name)."""
    import sqlalchemy as sa

    models, scoped = _rdb()
    T = models.TrialModel
    ids = list(study_ids)
    if not ids:
        return 0
    with scoped(result_store.storage.scoped_session, True) as session:
        q = sa.select(sa.func.count()).select_from(T).where(T.study_id.in_(ids), T.state == getattr(_state(), state))
        return int(session.execute(q).scalar() or 0)


def running_meta(result_store: store.ResultStore, study_ids: Iterable[int]) -> list[dict[str, Any]]:
    """The metadata of the RUNNING trials of these studies (what the workers are computing now)."""
    import sqlalchemy as sa

    models, scoped = _rdb()
    T, A = models.TrialModel, models.TrialUserAttributeModel
    ids = list(study_ids)
    if not ids:
        return []
    with scoped(result_store.storage.scoped_session, True) as session:
        q = sa.select(A.value_json).join(T, T.trial_id == A.trial_id)
        q = q.where(T.study_id.in_(ids), T.state == _state().RUNNING, A.key == "meta")
        return [json.loads(v) for v in session.execute(q).scalars()]


# ---------------------------------------------------------------------------------------------- heartbeats
class Heartbeat:
    """Records Optuna's heartbeat of a claimed trial every ``interval`` seconds while the run computes."""

    def __init__(self, result_store: store.ResultStore, trial_id: int) -> None:
        self.store, self.trial_id = result_store, trial_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{trial_id}")

    def _beat(self) -> None:
        while not self._stop.wait(self.store.heartbeat):
            try:
                _retrying(self.store.storage.record_heartbeat, self.trial_id, tries=3)
            except Exception:  # a missed beat is harmless; the grace period is several beats long
                pass

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def reap_stale(result_store: store.ResultStore, study_ids: Iterable[int]) -> int:
    """FAIL every stale RUNNING trial of these studies and enqueue its retry (one transaction each); returns how
    many were reaped."""
    import sqlalchemy as sa

    models, scoped = _rdb()
    TS = _state()
    T, H = models.TrialModel, models.TrialHeartbeatModel
    ids = list(study_ids)
    if not ids:
        return 0
    grace = _dt.timedelta(seconds=store.GRACE_FACTOR * result_store.heartbeat)
    with scoped(result_store.storage.scoped_session, True) as session:
        now = session.execute(sa.select(sa.func.now())).scalar()
        now = now.replace(tzinfo=None) if isinstance(now, _dt.datetime) else _dt.datetime.fromisoformat(str(now))
        rows = session.execute(
            sa.select(T.trial_id, H.heartbeat)
            .join(H, H.trial_id == T.trial_id)
            .where(T.study_id.in_(ids), T.state == TS.RUNNING)
        ).all()
    stale = [tid for tid, beat in rows if beat is not None and now - beat.replace(tzinfo=None) > grace]
    return sum(bool(_retrying(_reap_one, result_store, tid)) for tid in stale)


def _reap_one(result_store: store.ResultStore, trial_id: int) -> bool:
    import optuna

    models, scoped = _rdb()
    TS = _state()
    storage = result_store.storage
    with scoped(storage.scoped_session) as session:
        if not _move(session, trial_id, TS.RUNNING, TS.FAIL):
            return False  # finished, or reaped by another worker
        trial = models.TrialModel.find_or_raise_by_id(trial_id, session)
        attrs = {a.key: json.loads(a.value_json) for a in trial.user_attributes}
        attempt = int(attrs.get("attempt", 1))
        if attempt >= MAX_ATTEMPTS or "job" not in attrs:
            return True
        models.StudyModel.find_or_raise_by_id(trial.study_id, session, for_update=True)
        keep = {k: attrs[k] for k in ("key", "meta", "job") if k in attrs}
        template = optuna.trial.create_trial(
            state=TS.WAITING, user_attrs={**keep, "attempt": attempt + 1, "retry_of": trial_id}
        )
        storage._get_prepared_new_trial(trial.study_id, template, session)
    return True
