"""Claims as data: a paper reference, a statement, an experiment, and checks with stated statistical rules.

* A :class:`Claim` names its paper and statement, holds an ``experiment(ctx) -> Measurements`` and a list of
  :class:`Check` s. The experiment returns raw measurements over replicates (seeds, settings); it never decides.
* A :class:`Check` turns the measurements into one value per replicate (signed so that larger supports the claim)
  and applies a :class:`~optimlab.claims._stats.Rule` to them. Checks with ``role="report"`` are computed and
  shown but do not enter the verdict (conjectures marked [K] in the claims sheet, effect sizes against a paper's
  headline number, ...).
* :func:`run_claim` runs one claim and returns a :class:`ClaimResult`: the verdict (confirmed / not confirmed /
  inconclusive, combined over the verdict checks by :func:`~optimlab.claims._stats.combine`), or the status
  ``pending`` (the algorithm it needs is not in the registry yet, or its experiment is not written) or ``error``
  (the experiment raised; the traceback is kept). A claim that is not confirmed is a valid result.
* Every claim has a quick configuration (``ctx.quick``) that runs in seconds, used by the test suite.
"""

from __future__ import annotations

import dataclasses
import importlib
import math
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ._stats import CONFIRMED, INCONCLUSIVE, NOT_CONFIRMED, Evaluation, Rule, combine

PENDING = "pending"
ERROR = "error"
STATUSES = (CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE, PENDING, ERROR)

#: modules holding claim records (one per family of claims)
FAMILY_MODULES = (
    "shootout",
    "ademamix_forgetting",
    "exadam_speed",
    "adam_sgd_transformer",
    "adahessian_speed",
    "sophia_speed",
    "memory",
    "generalization",
    "clipping",
    "lion_constraint",
    "edge_of_stability",
    "hessian_spectrum",
    "saddles",
    "constrained",
    "bilevel",
    "multitask",
    "schedules",
    "zeroth_order",
)


# ----------------------------------------------------------------------------- plots
@dataclass
class Series:
    """One line of a plot (x and y of equal length); ``band`` optionally gives (lower, upper) y arrays."""

    label: str
    x: list[float]
    y: list[float]
    band: tuple[list[float], list[float]] | None = None

    def to_dict(self) -> dict:
        out = {"label": self.label, "x": _clean(self.x), "y": _clean(self.y)}
        if self.band is not None:
            out["band"] = [_clean(self.band[0]), _clean(self.band[1])]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Series:
        band = d.get("band")
        return cls(
            d["label"], _unclean(d["x"]), _unclean(d["y"]), (None if band is None else tuple(map(_unclean, band)))
        )


@dataclass
class Figure:
    """A small line plot: what the HTML report draws next to a claim."""

    title: str
    series: list[Series]
    xlabel: str = ""
    ylabel: str = ""
    logx: bool = False
    logy: bool = False
    hlines: list[tuple[float, str]] = field(default_factory=list)  # (y, label) reference lines

    def to_dict(self) -> dict:
        return {
            "title": self.title,
            "series": [s.to_dict() for s in self.series],
            "xlabel": self.xlabel,
            "ylabel": self.ylabel,
            "logx": self.logx,
            "logy": self.logy,
            "hlines": [[_clean([y])[0], label] for y, label in self.hlines],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Figure:
        return cls(
            d["title"],
            [Series.from_dict(s) for s in d["series"]],
            d.get("xlabel", ""),
            d.get("ylabel", ""),
            d.get("logx", False),
            d.get("logy", False),
            [(_unclean([y])[0], label) for y, label in d.get("hlines", [])],
        )


def _clean(xs: Iterable[float]) -> list[float | None]:
    """JSON-safe floats (non-finite → None)."""
    out = []
    for v in xs:
        v = float(v)
        out.append(v if math.isfinite(v) else None)
    return out


def _unclean(xs: Iterable[float | None]) -> list[float]:
    return [math.nan if v is None else float(v) for v in xs]


def downsample(x: Sequence[float], y: Sequence[float], max_points: int = 200) -> tuple[list[float], list[float]]:
    """Keep at most ``max_points`` evenly spaced points (always the last one) of a curve."""
    n = len(x)
    if n <= max_points:
        return [float(v) for v in x], [float(v) for v in y]
    idx = sorted({round(i * (n - 1) / (max_points - 1)) for i in range(max_points)})
    return [float(x[i]) for i in idx], [float(y[i]) for i in idx]


# ----------------------------------------------------------------------------- experiment side
@dataclass
class Measurements:
    """What an experiment returns.

    ``values``: named lists of per-replicate numbers (the raw material of the checks; lists under one name are
    aligned with each other when a check pairs them). ``figure``: the plot for the report. ``table``: optional
    rows (dicts of plain values) with per-setting details. ``info``: any other JSON-serializable facts
    (selected learning rates, a reference solution's value, a ranking, ...).
    """

    values: dict[str, list[float]] = field(default_factory=dict)
    figure: Figure | None = None
    table: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, value: float) -> None:
        self.values.setdefault(name, []).append(float(value))

    def __getitem__(self, name: str) -> list[float]:
        return self.values[name]


class Context:
    """What an experiment gets: ``quick`` (seconds-long configuration), ``seeds`` (the replicate seeds), a
    progress hook, and :meth:`pick` to choose between the quick and the full value of a setting."""

    def __init__(self, quick: bool, seeds: Sequence[int], progress: bool = False) -> None:
        self.quick = bool(quick)
        self.seeds = [int(s) for s in seeds]
        self.progress = progress

    def pick(self, quick: Any, full: Any) -> Any:
        return quick if self.quick else full

    def iterate(self, iterable: Iterable[Any], desc: str = "", total: int | None = None) -> Iterable[Any]:
        """``iterable``, with a transient tqdm bar when progress is on (tqdm optional)."""
        if not self.progress:
            return iterable
        try:
            from tqdm.auto import tqdm
        except ImportError:  # pragma: no cover - tqdm is an optional dependency
            return iterable
        return tqdm(iterable, desc=desc, total=total, leave=False, position=1, dynamic_ncols=True)


@dataclass(frozen=True)
class Check:
    """One testable part of a claim.

    ``effect``: the name of a list in ``Measurements.values`` or a function ``Measurements -> values``; one number
    per replicate, signed so that larger supports the claim. ``rule``: how those numbers become a verdict.
    ``role``: ``"verdict"`` (enters the claim's verdict) or ``"report"`` (shown only). ``premise``: for a claim of
    the form "if P then Q", a function ``Measurements -> reason or None``; when it returns a reason (P does not
    hold in this experiment, so Q cannot be tested), the check is inconclusive whatever the values say.
    """

    name: str
    statement: str
    effect: str | Callable[[Measurements], Sequence[float]]
    rule: Rule
    role: str = "verdict"
    units: str = ""
    premise: Callable[[Measurements], str | None] | None = None

    def values(self, m: Measurements) -> list[float]:
        if isinstance(self.effect, str):
            return list(m.values.get(self.effect, []))  # absent (e.g. not run in quick mode): no measurements
        return [float(v) for v in self.effect(m)]


@dataclass(frozen=True)
class Claim:
    """An executable claim of a seed paper (see the module docstring)."""

    id: str  # "C16"
    title: str
    paper: str  # "Chen et al. (2023), Symbolic Discovery of Optimization Algorithms, arXiv:2302.06675 (#26)"
    statement: str
    experiment: Callable[[Context], Measurements] | None
    checks: tuple[Check, ...] = ()
    family: str = ""
    setting: str = ""  # the experiment in one or two sentences (what is run, at what scale)
    seeds: int = 5  # replicates of the full run
    quick_seeds: int = 2
    requires: tuple[str, ...] = ()  # registry names the experiment needs
    weak: bool = False  # the sheet expects the paper's effect size not to reproduce at toy scale
    notes: str = ""
    expected_minutes: float = 1.0  # rough full-run time on 2 cores

    def missing(self) -> list[str]:
        """Required algorithms that the registry does not have."""
        if not self.requires:
            return []
        from .. import registry

        known = set(registry.available())
        return [r for r in self.requires if r not in known]

    def pending_reason(self) -> str | None:
        missing = self.missing()
        if missing:
            return "needs algorithm(s) not in the registry yet: " + ", ".join(missing)
        if self.experiment is None:
            return "experiment not written yet"
        return None

    @property
    def number(self) -> int:
        digits = "".join(ch for ch in self.id if ch.isdigit())
        return int(digits) if digits else 0


# ----------------------------------------------------------------------------- results
@dataclass
class CheckResult:
    name: str
    statement: str
    rule: str
    role: str
    units: str
    values: list[float]
    evaluation: Evaluation

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "statement": self.statement,
            "rule": self.rule,
            "role": self.role,
            "units": self.units,
            "values": _clean(self.values),
            **self.evaluation.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> CheckResult:
        nan = math.nan
        ev = Evaluation(
            d["verdict"],
            nan if d.get("estimate") is None else d["estimate"],
            nan if d.get("lo") is None else d["lo"],
            nan if d.get("hi") is None else d["hi"],
            d.get("n", 0),
            d.get("detail", ""),
        )
        return cls(d["name"], d["statement"], d["rule"], d["role"], d.get("units", ""), _unclean(d["values"]), ev)


@dataclass
class ClaimResult:
    """The outcome of one claim: ``status`` is a verdict, ``pending`` or ``error``."""

    id: str
    title: str
    paper: str
    statement: str
    setting: str
    status: str
    quick: bool
    seeds: list[int]
    runtime_s: float
    checks: list[CheckResult] = field(default_factory=list)
    values: dict[str, list[float]] = field(default_factory=dict)
    figure: Figure | None = None
    table: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    reason: str = ""  # why pending / the error
    weak: bool = False
    notes: str = ""

    @property
    def primary(self) -> CheckResult | None:
        """The headline check: the first verdict check whose own verdict is the claim's (the one that decided a
        not-confirmed or inconclusive claim), else the first verdict check, else the first check."""
        verdict_checks = [c for c in self.checks if c.role == "verdict"]
        for c in verdict_checks:
            if c.evaluation.verdict == self.status:
                return c
        if verdict_checks:
            return verdict_checks[0]
        return self.checks[0] if self.checks else None

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "paper": self.paper,
            "statement": self.statement,
            "setting": self.setting,
            "status": self.status,
            "quick": self.quick,
            "seeds": self.seeds,
            "runtime_s": self.runtime_s,
            "checks": [c.to_dict() for c in self.checks],
            "values": {k: _clean(v) for k, v in self.values.items()},
            "figure": None if self.figure is None else self.figure.to_dict(),
            "table": self.table,
            "info": self.info,
            "reason": self.reason,
            "weak": self.weak,
            "notes": self.notes,
        }

    @classmethod
    def from_dict(cls, d: dict) -> ClaimResult:
        return cls(
            id=d["id"],
            title=d["title"],
            paper=d["paper"],
            statement=d["statement"],
            setting=d.get("setting", ""),
            status=d["status"],
            quick=d["quick"],
            seeds=list(d["seeds"]),
            runtime_s=d["runtime_s"],
            checks=[CheckResult.from_dict(c) for c in d.get("checks", [])],
            values={k: _unclean(v) for k, v in d.get("values", {}).items()},
            figure=None if d.get("figure") is None else Figure.from_dict(d["figure"]),
            table=d.get("table", []),
            info=d.get("info", {}),
            reason=d.get("reason", ""),
            weak=d.get("weak", False),
            notes=d.get("notes", ""),
        )


def evaluate(claim: Claim, m: Measurements) -> tuple[str, list[CheckResult]]:
    """Apply every check's rule to the measurements; the verdict combines the verdict checks."""
    results = []
    for check in claim.checks:
        values = check.values(m)
        evaluation = check.rule.evaluate(values)
        unmet = check.premise(m) if check.premise is not None else None
        if unmet:
            evaluation = dataclasses.replace(
                evaluation, verdict=INCONCLUSIVE, detail=f"premise not met: {unmet}; {evaluation.detail}"
            )
        results.append(
            CheckResult(check.name, check.statement, check.rule.describe(), check.role, check.units, values, evaluation)
        )
    verdict = combine([r.evaluation.verdict for r in results if r.role == "verdict"])
    return verdict, results


def run_claim(claim: Claim, quick: bool = False, seeds: int | None = None, progress: bool = False) -> ClaimResult:
    """Run one claim's experiment and judge it. Exceptions become an ``error`` result (never propagate)."""
    n = seeds if seeds is not None else (claim.quick_seeds if quick else claim.seeds)
    seed_list = list(range(int(n)))
    base = dict(
        id=claim.id,
        title=claim.title,
        paper=claim.paper,
        statement=claim.statement,
        setting=claim.setting,
        quick=quick,
        seeds=seed_list,
        weak=claim.weak,
        notes=claim.notes,
    )
    reason = claim.pending_reason()
    if reason is not None:
        return ClaimResult(status=PENDING, runtime_s=0.0, reason=reason, **base)
    start = time.perf_counter()
    try:
        m = claim.experiment(Context(quick, seed_list, progress))
        verdict, checks = evaluate(claim, m)
    except Exception as e:  # a broken experiment is reported, not raised: the other claims still run
        return ClaimResult(
            status=ERROR,
            runtime_s=time.perf_counter() - start,
            reason=f"{type(e).__name__}: {e}\n{traceback.format_exc()}",
            **base,
        )
    return ClaimResult(
        status=verdict,
        runtime_s=time.perf_counter() - start,
        checks=checks,
        values={k: list(v) for k, v in m.values.items()},
        figure=m.figure,
        table=m.table,
        info=m.info,
        **base,
    )


# ----------------------------------------------------------------------------- the catalogue
_CLAIMS: dict[str, Claim] = {}
_loaded = False


def register(claim: Claim) -> Claim:
    """Add a claim record (ids are unique, e.g. ``"C16"``)."""
    if claim.id in _CLAIMS and _CLAIMS[claim.id] is not claim:
        raise ValueError(f"claim {claim.id!r} is already registered")
    for check in claim.checks:
        if check.role not in ("verdict", "report"):
            raise ValueError(f"{claim.id}/{check.name}: role must be 'verdict' or 'report', got {check.role!r}")
    _CLAIMS[claim.id] = claim
    return claim


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in FAMILY_MODULES:
        importlib.import_module(f"{__package__}.{name}")


def all_claims() -> list[Claim]:
    """Every registered claim, in the order of its number."""
    _load()
    return sorted(_CLAIMS.values(), key=lambda c: (c.number, c.id))


def get(claim_id: str) -> Claim:
    _load()
    key = claim_id.upper()
    if key not in _CLAIMS:
        raise KeyError(f"unknown claim {claim_id!r}; known: {', '.join(c.id for c in all_claims())}")
    return _CLAIMS[key]


def select(ids: Sequence[str] | None = None) -> list[Claim]:
    """The claims with these ids (all when empty), in catalogue order."""
    if not ids:
        return all_claims()
    wanted = {get(i).id for i in ids}
    return [c for c in all_claims() if c.id in wanted]


__all__ = [
    "CONFIRMED",
    "ERROR",
    "INCONCLUSIVE",
    "NOT_CONFIRMED",
    "PENDING",
    "Check",
    "CheckResult",
    "Claim",
    "ClaimResult",
    "Context",
    "Figure",
    "Measurements",
    "Series",
    "all_claims",
    "downsample",
    "evaluate",
    "get",
    "register",
    "run_claim",
    "select",
]
