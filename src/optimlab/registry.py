"""The algorithm registry: one :class:`AlgorithmSpec` record per algorithm.

The record is what a user needs to know about an algorithm, and what ``create``/``available``, the generic test
matrix, the ``optimlab list`` table and the benchmark's search spaces and memory columns read. Each fact is stated
once: defaults in the constructor's signature (the record holds only the paper's values that differ),
capabilities on the class, test-only facts beside the tests (tests/optim_db.py).
Records live next to the code they describe (at the bottom of each ``optimlab.optim`` module); the registry
imports every module of the algorithm packages on first use, so adding an algorithm edits no central list.
"""

from __future__ import annotations

import importlib
import inspect
import math
import pkgutil
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

#: packages whose modules hold registry records
ALGORITHM_PACKAGES = ("optimlab.optim", "optimlab.wrappers")


@dataclass(frozen=True)
class Paper:
    """Where an algorithm comes from."""

    title: str
    authors: str
    year: int
    arxiv: str | None = None
    seed_id: str | None = None  # index in the project's seed catalogue, e.g. "#26"

    def cite(self) -> str:
        where = f"arXiv:{self.arxiv}" if self.arxiv else ""
        return f"{self.authors} ({self.year}). {self.title}. {where}".strip()


@dataclass(frozen=True)
class LogUniform:
    """Tuning dimension sampled log-uniformly in [low, high]."""

    low: float
    high: float


@dataclass(frozen=True)
class Uniform:
    """Tuning dimension sampled uniformly in [low, high]."""

    low: float
    high: float


@dataclass(frozen=True)
class OneMinusLogUniform:
    """Tuning dimension for momenta: 1 - x with x log-uniform in [1 - high, 1 - low]."""

    low: float
    high: float


@dataclass(frozen=True)
class Choice:
    """Tuning dimension chosen among fixed values."""

    values: tuple


SearchDim = LogUniform | Uniform | OneMinusLogUniform | Choice

#: what a tuning-free algorithm spares the user (``AlgorithmSpec.tuning_free``): the learning rate (the step size
#: is estimated from the run: DoG, Prodigy, D-Adaptation) or the schedule (schedule-free: averaging replaces the
#: decay, so the benchmark runs it with a constant schedule)
TUNING_FREE = {"lr": "no learning rate to tune", "schedule": "no learning-rate schedule (constant lr)"}


@dataclass(frozen=True)
class Convention:
    """One point on which implementations of an algorithm disagree (a row of docs/conventions.md).

    ``paper`` says what the paper does and ``elsewhere`` what torch.optim, the authors' code or other libraries do
    (only facts checked against a named source). Where optimlab lets the user pick, ``switch`` is the constructor
    argument and ``choices`` its accepted values with what each reproduces (``(value, "who does this")``); where it
    does not, ``fixed`` says which convention optimlab implements. The default shown in the docs is never written
    here: scripts/update_conventions.py reads it from the optimizer that ``create`` (and the class) builds.
    """

    point: str
    paper: str
    elsewhere: str
    switch: str | None = None
    choices: tuple[tuple[Any, str], ...] = ()
    fixed: str = ""

    def __post_init__(self) -> None:
        if (self.switch is None) != (not self.choices):
            raise ValueError(f"convention {self.point!r}: a switch needs choices and choices need a switch")
        if (self.switch is None) == (not self.fixed):
            raise ValueError(f"convention {self.point!r}: give either a switch with choices or the fixed convention")
        if self.switch is not None and len(self.choices) < 2:
            raise ValueError(f"convention {self.point!r}: a switch selects between at least two conventions")


@dataclass(frozen=True)
class AlgorithmSpec:
    """What a user needs to know about one algorithm: its paper, the paper's defaults, a tuning search space and
    the state-bytes formula. Capabilities (closure, Hessian-vector products, logits, complex parameters) are
    stated once, on the class (:func:`optimlab.training.capabilities`); test-only facts (reference
    implementation, test and convergence hyperparameters, torch equivalent) live beside the tests
    (tests/optim_db.py), as torch keeps its ``OptimizerInfo`` records."""

    name: str
    cls: type
    family: str
    paper: Paper
    summary: str
    #: the hyperparameters the paper states, in the order the catalogue shows them (see :attr:`defaults`); a
    #: space-separated string is split into names
    hparams: tuple[str, ...] | str = ()
    #: the paper's values where they differ from the constructor's defaults (the constructor follows torch.optim
    #: where torch has the algorithm); keys not in the constructor's signature (a wrapper's base) must be here
    paper_defaults: Mapping[str, Any] = field(default_factory=dict)
    #: tuning search space; keys are constructor arguments (``beta1``/``beta2`` map into ``betas``)
    search_space: Mapping[str, SearchDim] = field(default_factory=dict)
    #: number of parameter-sized state tensors (excluding the step counter) at the defaults
    state_tensors: float = 0
    #: analytic state bytes of one parameter, ``f(shape, dtype, hparams) -> int``, when ``state_tensors`` alone
    #: cannot say it (a flag adds a buffer, a projector has rank-r factors, ...); see :meth:`state_bytes`
    state_formula: Callable[[tuple[int, ...], torch.dtype, Mapping[str, Any]], int] | None = None
    #: conventions and deviations worth knowing (eps placement, which form of a rule, ...)
    notes: str = ""
    #: the points where implementations in the wild disagree, and the switch that picks each (docs/conventions.md)
    conventions: tuple[Convention, ...] = ()
    #: a key of :data:`TUNING_FREE` (what the algorithm needs no tuning of), or None
    tuning_free: str | None = None

    def __post_init__(self) -> None:
        if self.tuning_free is not None and self.tuning_free not in TUNING_FREE:
            raise ValueError(
                f"{self.name}: tuning_free must be one of {sorted(TUNING_FREE)} or None, got {self.tuning_free!r}"
            )
        if isinstance(self.hparams, str):
            object.__setattr__(self, "hparams", tuple(self.hparams.split()))
        stray = [k for k in self.paper_defaults if k not in self.hparams]
        if stray:
            raise ValueError(f"{self.name}: paper_defaults {stray} are not listed in hparams")
        ctor = constructor_defaults(self.cls)
        unknown = [k for k in self.hparams if k not in self.paper_defaults and k not in ctor]
        if unknown:
            raise ValueError(f"{self.name}: hparams {unknown} have no constructor default; give them in paper_defaults")

    @property
    def schedule_free(self) -> bool:
        """Whether the algorithm is schedule-free (run with a constant learning rate, no decay on top)."""
        return self.tuning_free == "schedule"

    @property
    def defaults(self) -> dict[str, Any]:
        """The paper's defaults, passed by ``create`` (overridable): ``hparams`` with the constructor's defaults,
        where the paper differs overridden by ``paper_defaults``."""
        ctor = constructor_defaults(self.cls)
        return {k: self.paper_defaults[k] if k in self.paper_defaults else ctor[k] for k in self.hparams}

    def create(self, params: Iterable[Any], **overrides: Any) -> torch.optim.Optimizer:
        defaults = dict(self.defaults)
        if "base" in overrides and overrides["base"] != defaults.get("base"):
            # a wrapper on another base: keep the wrapper's own defaults, the new base brings its paper defaults
            own = set(getattr(self.cls, "hyperparameters", {})) | {"base"}
            defaults = {k: v for k, v in defaults.items() if k in own}
        return self.cls(params, **{**defaults, **fold_betas(overrides, {**constructor_defaults(self.cls), **defaults})})

    def state_bytes(self, shape: tuple[int, ...], dtype: torch.dtype = torch.float32, **hparams: Any) -> int:
        """Analytic optimizer-state bytes for one parameter of this shape and dtype under these hyperparameters
        (the paper's defaults where not given). The test matrix checks it against the measured bytes."""
        hp = {**self.defaults, **fold_betas(hparams, self.defaults)}
        if self.state_formula is not None:
            return int(self.state_formula(tuple(shape), dtype, hp))
        return dense_state_bytes(shape, dtype, self.state_tensors)


def constructor_defaults(cls: type) -> dict[str, Any]:
    """The default of every named argument of ``cls.__init__`` (the source of an algorithm's defaults)."""
    params = inspect.signature(cls.__init__).parameters.values()
    return {p.name: p.default for p in params if p.default is not inspect.Parameter.empty}


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype optimizer math and state use for a parameter dtype (fp32 for bf16/fp16, real for complex)."""
    if dtype.is_complex:
        dtype = dtype.to_real()
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def dense_state_bytes(shape: tuple[int, ...], dtype: torch.dtype, tensors: float) -> int:
    """``tensors`` parameter-sized state tensors in the compute dtype plus the 4-byte fp32 step counter."""
    numel = math.prod(shape) * (2 if dtype.is_complex else 1)
    return int(math.ceil(tensors * numel)) * compute_dtype(dtype).itemsize + 4


def fold_betas(overrides: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Accept ``beta1=…``/``beta2=…``/``beta3=…`` as overrides of the ``betas`` tuple (tuning samples one β at a
    time). A name that is itself an argument (``defaults`` holds it, e.g. Prodigy's ``beta3``) is left alone; an
    index beyond the tuple raises ``ValueError`` naming it."""
    out = dict(overrides)
    keys = [k for k in ("beta1", "beta2", "beta3") if k in out and k not in defaults]
    if not keys or ("betas" not in out and "betas" not in defaults):
        return out
    betas = list(out.get("betas", defaults.get("betas")))
    for k in keys:
        index = int(k[-1]) - 1
        if index >= len(betas):
            raise ValueError(f"{k}: the optimizer's betas have {len(betas)} entries")
        betas[index] = out.pop(k)
    out["betas"] = tuple(betas)
    return out


_REGISTRY: dict[str, AlgorithmSpec] = {}
_loaded = False


def register(spec: AlgorithmSpec) -> AlgorithmSpec:
    """Add a record; names are unique and lower-case."""
    if spec.name != spec.name.lower():
        raise ValueError(f"algorithm names are lower-case, got {spec.name!r}")
    if spec.name in _REGISTRY and _REGISTRY[spec.name] is not spec:
        raise ValueError(f"algorithm {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for package_name in ALGORITHM_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{package_name}.{info.name}")


def spec(name: str) -> AlgorithmSpec:
    """The record of one algorithm (``KeyError`` listing the known names otherwise)."""
    _load()
    key = name.lower()
    if key not in _REGISTRY:
        raise KeyError(f"unknown algorithm {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[key]


def available(family: str | None = None) -> list[str]:
    """Names of the registered algorithms, optionally of one family, sorted."""
    _load()
    return sorted(n for n, s in _REGISTRY.items() if family is None or s.family == family)


def specs(family: str | None = None) -> list[AlgorithmSpec]:
    return [spec(n) for n in available(family)]


def families() -> list[str]:
    _load()
    return sorted({s.family for s in _REGISTRY.values()})


def create(name: str, params: Iterable[Any], **overrides: Any) -> torch.optim.Optimizer:
    """Build a registered optimizer with the paper's defaults, overridden by ``overrides``.

    >>> opt = create("lion", model.parameters(), lr=3e-4)        # doctest: +SKIP
    """
    return spec(name).create(params, **overrides)
