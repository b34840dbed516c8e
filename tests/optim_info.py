"""The shape of a test record (tests/optim_db.py): what the generic matrix needs to test one registered algorithm,
and the torch.optim class it is compared with."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

ALL_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


@dataclass(frozen=True)
class TorchParity:
    """A torch.optim class with the same semantics, and the arguments that make the two agree."""

    path: str  # e.g. "torch.optim.AdamW"
    torch_kwargs: Mapping[str, Any] = field(default_factory=dict)
    our_kwargs: Mapping[str, Any] = field(default_factory=dict)

    def resolve(self) -> type | None:
        """The torch class, or None where this torch version lacks it."""
        module_name, _, attr = self.path.rpartition(".")
        return getattr(importlib.import_module(module_name), attr, None)


@dataclass(frozen=True)
class OptimInfo:
    """What the generic matrix (tests/test_matrix.py) needs to test one registered algorithm."""

    #: "module:function" of the plain reference implementation under tests/reference
    reference: str
    #: hyperparameters for reference parity, over the paper's defaults (exercise every branch: decay on, ...)
    test_hparams: Mapping[str, Any] = field(default_factory=dict)
    #: hyperparameters for the convergence tests: {"quadratic": {...}, "rosenbrock": {...}}; an algorithm that is
    #: not an unconstrained minimizer opts out with {"skip": "why"} (and tests what it does converge to elsewhere)
    convergence_hparams: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: torch.optim class with the same semantics, for parity tests (None if there is none)
    torch_equivalent: TorchParity | None = None
    #: parameter dtypes the dtype tests run
    dtypes: tuple[torch.dtype, ...] = ALL_DTYPES
    #: the optimizer keeps (some) state below fp32 on purpose (bf16 / 8-bit states)
    low_precision_state: bool = False
    #: complex parameters are tested; None: as the class's ``supports_complex`` says (wrappers, which state
    #: nothing, say it here)
    complex: bool | None = None
