"""Other libraries' implementations of optimlab's algorithms, for the side-by-side rows of ``step_time.py``.

A peer is matched by name (case-insensitive, ignoring ``_`` and ``-``) against the optimlab record's name and class
name, among each library's own optimizer classes (re-exports of ``torch.optim`` are not peers), plus the few
same-algorithm pairs whose names differ (:data:`ALIASES`: AdamW with bf16 state is HeavyBall's ``AdamW`` with
``storage_dtype="bfloat16"``; the 8-bit optimizers are bitsandbytes'). Each peer gets the optimlab record's defaults
for the arguments it accepts (its own defaults and optimlab's lr when those are refused), and runs in its own
default execution mode: HeavyBall compiles its update (inductor) on the first step, pytorch_optimizer and
torch-optimi step eagerly (optimi's foreach path).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

#: the libraries compared by default, by import name (pip names: pytorch_optimizer, heavyball, torch-optimi,
#: bitsandbytes)
LIBRARIES = ("pytorch_optimizer", "heavyball", "optimi", "bitsandbytes")
#: import name -> distribution name (for the version in the row label)
DISTRIBUTIONS = {"optimi": "torch-optimi"}
#: libraries whose optimizers compile their update on the first step (its time is shown as compile time)
COMPILING = frozenset({"heavyball"})
#: optimlab algorithm -> (library, class name, fixed options): peers whose names differ from optimlab's
ALIASES: dict[str, tuple[tuple[str, str, dict[str, Any]], ...]] = {
    "adamw_bf16": (("heavyball", "AdamW", {"storage_dtype": "bfloat16"}),),
    "adamw_8bit": (("bitsandbytes", "AdamW8bit", {}),),
    "lion_8bit": (("bitsandbytes", "Lion8bit", {}),),
}


def set_heavyball_compile_mode(mode: str) -> None:
    """The ``torch.compile`` mode HeavyBall uses for its update functions (``"none"``: no compilation)."""
    import heavyball.utils

    heavyball.utils.compile_mode = None if mode.lower() == "none" else mode


def normalise(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


@dataclass
class Library:
    """An installed optimizer library: its version and its own optimizer classes by normalised name."""

    name: str
    version: str
    classes: dict[str, type] = field(default_factory=dict)

    def label(self, cls: type, options: dict[str, Any]) -> str:
        extra = "".join(f", {k}={v}" for k, v in options.items())
        return f"{self.name} {self.version} ({cls.__name__}{extra})"


def _version(module, name: str) -> str:
    version = getattr(module, "__version__", None)
    if version:
        return str(version)
    try:
        return importlib.metadata.version(DISTRIBUTIONS.get(name, name))
    except importlib.metadata.PackageNotFoundError:
        return "?"


def _own_classes(module, names) -> dict[str, type]:
    """Optimizer classes of ``module`` by normalised name, leaving out re-exports of torch.optim."""
    out = {}
    for name in names:
        try:
            cls = module.load_optimizer(name) if hasattr(module, "load_optimizer") else getattr(module, name)
        except Exception:  # noqa: BLE001 - an optional package; anything it raises means "not available"
            continue
        if isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer) and not cls.__module__.startswith("torch."):
            out[normalise(name)] = cls
    return out


def load_library(name: str) -> Library | None:
    """The library ``name`` (an import name of :data:`LIBRARIES`), or None when it is not installed."""
    try:
        module = importlib.import_module(name)
    except Exception:  # noqa: BLE001 - not installed, or broken on this machine: no rows
        return None
    if name == "bitsandbytes":
        module = importlib.import_module("bitsandbytes.optim")
    names = module.get_supported_optimizers() if hasattr(module, "get_supported_optimizers") else dir(module)
    return Library(name, _version(importlib.import_module(name), name), _own_classes(module, names))


@dataclass(frozen=True)
class Peer:
    """One peer implementation of an optimlab algorithm."""

    label: str
    cls: type
    options: dict[str, Any]
    compiles: bool = False


def find_peers(spec, libraries: dict[str, Library]) -> list[Peer]:
    """The peers of an optimlab record among ``libraries`` (at most one per library and class)."""
    peers, seen = [], set()
    for lib in libraries.values():
        for key in (normalise(spec.name), normalise(spec.cls.__name__)):
            cls = lib.classes.get(key)
            if cls is not None and (lib.name, cls) not in seen:
                seen.add((lib.name, cls))
                peers.append(Peer(lib.label(cls, {}), cls, {}, lib.name in COMPILING))
                break
    for lib_name, cls_name, options in ALIASES.get(spec.name, ()):
        lib = libraries.get(lib_name)
        cls = lib.classes.get(normalise(cls_name)) if lib else None
        if cls is not None and (options or (lib_name, cls) not in seen):
            peers.append(Peer(lib.label(cls, options), cls, options, lib.name in COMPILING))
    return peers


def build_peer(peer: Peer, spec, params) -> torch.optim.Optimizer:
    """The peer optimizer on ``params`` with the optimlab record's defaults that it accepts."""
    accepted = inspect.signature(peer.cls).parameters
    hparams = {k: v for k, v in spec.defaults.items() if k in accepted}
    try:
        return peer.cls(params, **hparams, **peer.options)
    except (TypeError, ValueError):  # arguments with other meanings there: its own defaults, our lr
        lr = {"lr": spec.defaults["lr"]} if "lr" in spec.defaults else {}
        return peer.cls(params, **lr, **peer.options)


def load_libraries(names, loader: Callable[[str], Library | None] = load_library) -> dict[str, Library | None]:
    """Each of ``names`` loaded (None: not installed)."""
    return {name: loader(name) for name in names}


def keeping_grads(step, params):
    """``step(n)`` that puts each parameter's gradient back before every step: HeavyBall sets ``p.grad = None``
    after its step, which would make every timed step after the first a no-op."""
    grads = [p.grad for p in params]

    def run(steps: int) -> None:
        for _ in range(steps):
            for p, g in zip(params, grads):
                p.grad = g
            step(1)

    return run
