"""Resolve optimizer ids to something the runner can build: optimlab's registry and other installed libraries.

An id is ``name`` (an optimlab registry name, e.g. ``adamw``) or ``library:Name`` with library one of

* ``optimlab`` — the registry (same as a bare name);
* ``torch`` — ``torch.optim.Name`` (e.g. ``torch:AdamW``, ``torch:LBFGS``);
* ``po`` — pytorch_optimizer (``po:Lion``, ``po:SOAP``…);
* ``heavyball``, ``schedulefree``, ``optimi``, ``bnb`` — the class of that name in ``heavyball``,
  ``schedulefree``, ``optimi`` or ``bitsandbytes.optim``.

Each resolves to an :class:`AlgorithmHandle` with the constructor, the defaults the ``defaults`` ruleset uses,
a tuning search space (the registry record's, or one derived from the constructor's signature for other
libraries), whether ``step`` needs a closure, Hessian-vector products or a closure returning ``(loss, logits)``
(Sophia-G; such an optimizer runs only on workloads whose loss is a cross-entropy of logits, see
:func:`optimlab.bench.runner.not_applicable`), the library and its version, and a source hash for the results
cache. Every result row carries the library, so optimlab's AdamW and
``torch:AdamW`` can sit side by side on the leaderboard.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from .. import registry as R
from ..training import capabilities

#: library prefix -> (import path of the module holding the classes, distribution name for the version)
LIBRARIES: dict[str, tuple[str, str]] = {
    "torch": ("torch.optim", "torch"),
    "po": ("pytorch_optimizer", "pytorch_optimizer"),
    "heavyball": ("heavyball", "heavyball"),
    "schedulefree": ("schedulefree", "schedulefree"),
    "optimi": ("optimi", "torch-optimi"),
    "bnb": ("bitsandbytes.optim", "bitsandbytes"),
}

#: torch/foreign classes whose ``step`` needs a closure
_CLOSURE_CLASSES = {"LBFGS"}


@dataclass(frozen=True)
class AlgorithmHandle:
    """Everything the runner needs about one optimizer, whatever library it comes from."""

    id: str
    library: str
    library_version: str
    factory: Callable[..., torch.optim.Optimizer] = field(repr=False)
    defaults: Mapping[str, Any] = field(default_factory=dict)
    search_space: Mapping[str, R.SearchDim] = field(default_factory=dict)
    requires_closure: bool = False
    requires_hvp: bool = False
    #: the closure must return ``(loss, logits)`` (registry ``closure_returns_logits``: Sophia-G)
    requires_logits: bool = False
    #: the closure must return class-split losses ``(head, tail)`` (ImbSAM), which no workload provides
    requires_head_tail: bool = False
    source_hash: str = ""
    #: parameter-sized state tensors declared by the registry record (None for other libraries)
    state_tensors: float | None = None
    #: whether param groups may carry a ``param_type`` key (optimlab optimizers accept extra group keys)
    typed_groups: bool = True
    #: the multi-task method of an ``optimizer+method`` candidate (:mod:`~optimlab.bench.multitask_methods`)
    multitask: Any = None

    def create(self, params: Any, hparams: Mapping[str, Any]) -> torch.optim.Optimizer:
        """The optimizer over ``params`` with ``hparams`` overriding the defaults."""
        return self.factory(params, **dict(hparams))

    def resolved_hparams(self, hparams: Mapping[str, Any]) -> dict[str, Any]:
        """The full hyperparameters a run uses (defaults overridden, ``beta1``/``beta2`` folded into betas)."""
        merged = dict(self.defaults)
        merged.update(R.fold_betas(hparams, merged))
        return merged


def resolve(algorithm_id: str) -> AlgorithmHandle:
    """The handle of an optimizer id; ``ValueError`` with the known names when it cannot be resolved."""
    algorithm_id = algorithm_id.strip()
    if not algorithm_id:
        raise ValueError("empty optimizer id")
    base_id, plus, method = algorithm_id.rpartition("+")
    if plus:  # a multi-task candidate: optimizer + aggregator or loss weighting
        from . import multitask_methods

        base = resolve(base_id)
        return multitask_methods.combine(base, method.strip().lower(), f"{base.id}+{method.strip().lower()}")
    library, sep, name = algorithm_id.partition(":")
    if not sep:
        library, name = "optimlab", algorithm_id
    if library == "optimlab":
        return _from_registry(name, algorithm_id if sep else name)
    if library not in LIBRARIES:
        raise ValueError(
            f"unknown optimizer library {library!r} in {algorithm_id!r}; known: optimlab, {', '.join(LIBRARIES)}"
        )
    return _from_library(library, name, algorithm_id)


#: the id that stands for every registered optimlab optimizer (the whole catalogue)
ALL = "all"


def resolve_many(ids: str | list[str]) -> list[AlgorithmHandle]:
    """Handles of a comma-separated list (or list) of ids, in order, without duplicates; ``all`` stands for every
    registered optimizer (sorted by name)."""
    items = [s.strip() for s in ids.split(",")] if isinstance(ids, str) else list(ids)
    items = [name for item in items for name in (R.available() if item.lower() == ALL else [item])]
    out, seen = [], set()
    for item in items:
        if item and item not in seen:
            seen.add(item)
            out.append(resolve(item))
    if not out:
        raise ValueError("no optimizer given")
    return out


def _from_registry(name: str, display_id: str) -> AlgorithmHandle:
    try:
        spec = R.spec(name)
    except KeyError:
        raise ValueError(
            f"unknown optimizer {name!r}; registered: {', '.join(R.available())}; "
            f"other libraries: prefix the class name with one of {', '.join(LIBRARIES)} (e.g. torch:AdamW)"
        ) from None
    cls_module = sys.modules[spec.cls.__module__]
    sources = [cls_module]
    for extra in ("optimlab.optim._base", "optimlab.optim._kernels"):
        if extra in sys.modules:
            sources.append(sys.modules[extra])
    caps = capabilities(spec)
    return AlgorithmHandle(
        id=display_id.lower(),
        library="optimlab",
        library_version=_version("optimlab"),
        factory=spec.create,
        defaults=dict(spec.defaults),
        search_space=dict(spec.search_space),
        requires_closure=caps.closure,
        requires_hvp=caps.hvp,
        requires_logits=caps.logits,
        requires_head_tail=caps.head_tail,
        source_hash=_hash_sources(sources),
        state_tensors=spec.state_tensors,
        typed_groups=True,
    )


def needs_hvp(cls: type) -> bool:
    """Whether another library's optimizer class asks for Hessian-vector products (backward with
    ``create_graph=True``), under any of the attribute names libraries use."""
    for obj in (cls,):
        for attr in ("requires_hvp", "needs_hvp", "requires_create_graph"):
            if getattr(obj, attr, False):
                return True
    return False


def needs_logits(cls: type) -> bool:
    """Whether another library's optimizer class wants a closure returning ``(loss, logits)``."""
    return bool(getattr(cls, "requires_logits", False) or getattr(cls, "closure_returns_logits", False))


def _from_library(library: str, name: str, display_id: str) -> AlgorithmHandle:
    module_path, dist = LIBRARIES[library]
    try:
        module = importlib.import_module(module_path)
    except ImportError:
        raise ValueError(f"{display_id}: library {dist!r} is not installed (pip install {dist})") from None
    cls = getattr(module, name, None)
    if cls is None and library == "po":
        cls = _po_lookup(module, name)
    if not (inspect.isclass(cls) and issubclass(cls, torch.optim.Optimizer)):
        raise ValueError(f"{display_id}: no optimizer class {name!r} in {module_path}")
    signature = inspect.signature(cls.__init__)
    try:
        source = inspect.getsource(cls)
    except (OSError, TypeError):
        source = f"{cls.__module__}.{cls.__qualname__}"
    version = _version(dist)
    return AlgorithmHandle(
        id=display_id,
        library=dist,
        library_version=version,
        factory=cls,
        defaults={},
        search_space=signature_search_space(signature),
        requires_closure=name in _CLOSURE_CLASSES or bool(getattr(cls, "requires_closure", False)),
        requires_hvp=needs_hvp(cls),
        requires_logits=needs_logits(cls),
        source_hash=hashlib.sha256((source + version).encode()).hexdigest()[:16],
        state_tensors=None,
        typed_groups=False,
    )


def _po_lookup(module: Any, name: str) -> Any:
    loader = getattr(module, "load_optimizer", None)
    if loader is None:
        return None
    try:
        return loader(name.lower())
    except Exception:
        return None


def signature_search_space(signature: inspect.Signature) -> dict[str, R.SearchDim]:
    """A generic search space for a foreign optimizer, from the arguments its constructor takes."""
    params = signature.parameters
    space: dict[str, R.SearchDim] = {}
    if "lr" in params:
        space["lr"] = R.LogUniform(1e-5, 1.0)
    if "betas" in params:
        space["beta1"] = R.OneMinusLogUniform(0.5, 0.99)
        space["beta2"] = R.OneMinusLogUniform(0.9, 0.9999)
    if "momentum" in params:
        space["momentum"] = R.OneMinusLogUniform(0.5, 0.999)
    if "weight_decay" in params:
        space["weight_decay"] = R.LogUniform(1e-6, 1.0)
    return space


def foreign_factory_with_betas(handle: AlgorithmHandle) -> Callable[..., torch.optim.Optimizer]:
    """A factory that folds ``beta1``/``beta2`` into ``betas`` using the class's own default betas."""
    cls = handle.factory
    signature = inspect.signature(cls.__init__)
    default_betas = signature.parameters["betas"].default if "betas" in signature.parameters else (0.9, 0.999)

    def make(params, **hparams):
        return cls(params, **R.fold_betas(hparams, {"betas": default_betas}))

    return make


def build_optimizer(handle: AlgorithmHandle, params: Any, hparams: Mapping[str, Any]) -> torch.optim.Optimizer:
    """Create the optimizer; foreign classes get ``beta1``/``beta2`` folded into their ``betas``."""
    if handle.library == "optimlab":
        return handle.create(params, hparams)
    return foreign_factory_with_betas(handle)(params, **dict(hparams))


def _hash_sources(modules: list[Any]) -> str:
    h = hashlib.sha256()
    for module in modules:
        try:
            h.update(inspect.getsource(module).encode())
        except (OSError, TypeError):
            h.update(module.__name__.encode())
    return h.hexdigest()[:16]


def _version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:
        module = sys.modules.get(dist.replace("-", "_"))
        return str(getattr(module, "__version__", "unknown"))


def available_libraries() -> dict[str, str | None]:
    """Library prefix -> installed version (None when not installed)."""
    out: dict[str, str | None] = {"optimlab": _version("optimlab")}
    for prefix, (module_path, dist) in LIBRARIES.items():
        try:
            importlib.util.find_spec(module_path.split(".")[0])
            found = importlib.util.find_spec(module_path.split(".")[0]) is not None
        except (ImportError, ValueError):
            found = False
        out[prefix] = _version(dist) if found else None
    return out
