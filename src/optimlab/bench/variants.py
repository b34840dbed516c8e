"""What a stored run is ranked under, and which runs replace each other.

A run's :func:`variant` is its optimizer id plus whatever makes it differ from its ruleset's standard (overrides,
fixed or extra tuned dimensions, a non-standard budget factor or unit); runs of different variants are never
pooled under one name, and a later sweep replaces a run only when it measures the same thing
(:func:`cell_identity`: same suite, ruleset, workload, seed/study/trial, sampler, variant and tuned point).
Pure functions (no torch, no store): the scorer and the report import them.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

#: the budget factor each ruleset runs at by default (``bench run --budget``); other factors make a variant
RULESET_BUDGET = {"defaults": 1.5, "tuned": 1.0, "tuned-tpe": 1.0}
#: the budget unit runs are ranked in (``bench run --budget-unit``); runs in another unit are a variant
DEFAULT_BUDGET_UNIT = "grads"


def hparams_key(overrides: Mapping[str, Any] | None) -> str:
    """A short stable key of hyperparameter overrides ("" for none: the paper defaults)."""
    if not overrides:
        return ""
    import hashlib
    import json

    return hashlib.sha256(json.dumps(dict(overrides), sort_keys=True, default=repr).encode()).hexdigest()[:12]


def _fmt_override(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v).replace(" ", "")


def variant(record: Mapping[str, Any]) -> str:
    """The name a run is ranked under: the optimizer id, plus in brackets whatever makes the run differ from the
    ruleset's standard — overrides given with ``--hparams``/``--schedule`` (defaults ruleset) or fixed while tuning
    (tuned), tuned schedule dimensions, a non-standard ``--budget`` factor, a step budget instead of the
    equal-compute one. Runs of different variants are never pooled or replaced by one another."""
    ruleset = record.get("ruleset", "defaults")
    fixed = record.get("overrides") if ruleset == "defaults" else record.get("fixed")
    parts = [f"{k}={_fmt_override(v)}" for k, v in sorted((fixed or {}).items())]
    if record.get("tuned_extra"):
        parts.append("tune:" + "+".join(x.replace("sched_", "") for x in record["tuned_extra"]))
    factor = record.get("budget_factor")
    if factor is not None and not math.isclose(float(factor), RULESET_BUDGET.get(ruleset, 1.0)):
        parts.append(f"budget×{float(factor):g}")
    if record.get("budget_unit", "steps") != DEFAULT_BUDGET_UNIT:
        parts.append(f"{record.get('budget_unit', 'steps')} budget")
    return f"{record['algorithm']}[{', '.join(parts)}]" if parts else str(record["algorithm"])


def cell_identity(record: Mapping[str, Any]) -> str:
    """What a run measures, ignoring code versions: a rerun after an optimizer or workload edit replaces it; a run
    of another variant (:func:`variant`) or another sweep configuration does not."""
    parts = [record.get(k) for k in ("suite", "ruleset", "workload", "seed", "study", "trial", "sampler")]
    parts.append(variant(record))
    if record.get("trial") is not None:
        parts.append(sorted((record.get("overrides") or {}).items()))  # the tuned point itself
    return repr(parts)


def latest_per_key(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One record per run identity (:func:`cell_identity`): the most recently written one."""
    best: dict[str, dict[str, Any]] = {}
    for r in records:
        k = cell_identity(r) if "workload" in r else (r.get("key") or str(r.get("trial_id")))
        if k not in best or (r.get("trial_id") or 0) > (best[k].get("trial_id") or 0):
            best[k] = dict(r)
    return list(best.values())
