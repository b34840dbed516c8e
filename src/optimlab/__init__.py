"""optimlab: verified, fast, comparable optimizers for PyTorch.

Every optimizer class is importable from here (``optimlab.AdamW``, ``optimlab.Lion``, ...); the registry gives
the catalogue: ``optimlab.available()``, ``optimlab.create("lion", params, lr=3e-4)``, ``optimlab.spec("lion")``.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import Any

from .memory import state_bytes, state_bytes_by_param
from .optim._base import Optimizer
from .registry import AlgorithmSpec, available, create, families, param_groups, spec, specs
from .routing import matrix_param_groups, param_roles

__version__ = "0.1.0"


def _classes() -> dict[str, type]:
    return {s.cls.__name__: s.cls for s in specs()}


def __getattr__(name: str) -> Any:
    if importlib.util.find_spec(f"{__name__}.{name}") is not None:  # a submodule: `from optimlab import curvature`
        return importlib.import_module(f"{__name__}.{name}")
    classes = _classes()
    if name in classes:
        return classes[name]
    raise AttributeError(f"module 'optimlab' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_classes()))


__all__ = [
    "AlgorithmSpec",
    "Optimizer",
    "available",
    "create",
    "families",
    "matrix_param_groups",
    "param_groups",
    "param_roles",
    "spec",
    "specs",
    "state_bytes",
    "state_bytes_by_param",
]
