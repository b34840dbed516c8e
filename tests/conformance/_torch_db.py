"""torch's own optimizer test database (``optim_db`` of ``torch/testing/_internal/common_optimizers.py``, shipped in
the torch wheel) and the optimlab drop-ins it is run against.

The database module imports torch's test utilities, which need the ``expecttest`` package (a torch development
dependency) for a base class only; when it is not installed a stand-in providing that base class is used for the
import. The utilities also freeze ``torch.backends`` flags at import; that freeze is undone so other tests in the
process are unaffected.
"""

from __future__ import annotations

import sys
import types
import unittest
from copy import deepcopy
from typing import Any

import torch

import optimlab

#: torch.optim class name -> the optimlab drop-in substituted for it
DROP_INS: dict[str, type] = {
    "SGD": optimlab.SGD,
    "Adam": optimlab.Adam,
    "AdamW": optimlab.AdamW,
    "Adamax": optimlab.Adamax,
    "NAdam": optimlab.NAdam,
    "RAdam": optimlab.RAdam,
    "Adafactor": optimlab.Adafactor,
    "Muon": optimlab.Muon,
}

#: constructor arguments that select torch's conventions where optimlab's default follows another source
#: (documented in docs/compatibility.md); used only where results are compared number for number with torch
TORCH_CONVENTIONS: dict[str, dict[str, Any]] = {"Muon": {"preset": "torch"}}

#: options for the behaviour tests that do not compare numbers with torch: Newton-Schulz in float32 instead of
#: bfloat16, whose matrix products are emulated on CPUs without bf16 units (~100 ms per step here, 400x float32);
#: the bf16 path is compared with torch's in test_matches_torch and tested in tests/test_muon.py
FAST_OPTIONS: dict[str, dict[str, Any]] = {"Muon": {"ns_dtype": "float32"}}


def _import_common_optimizers() -> types.ModuleType:
    frozen = torch.backends.flags_frozen()
    stub = None
    if "expecttest" not in sys.modules:
        try:
            import expecttest  # noqa: F401
        except ImportError:
            stub = types.ModuleType("expecttest")
            stub.TestCase = unittest.TestCase
            sys.modules["expecttest"] = stub
    try:
        from torch.testing._internal import common_optimizers
    finally:
        if stub is not None:
            del sys.modules["expecttest"]
        if not frozen:
            setattr(torch.backends, "__allow_nonbracketed_mutation_flag", True)
    return common_optimizers


db = _import_common_optimizers()
INFOS = {info.name: info for info in db.optim_db if info.name in DROP_INS}
ConstructionError = db.OptimizerErrorEnum.CONSTRUCTION_ERROR


def sample_inputs(name: str, flags: bool = False) -> list:
    """torch's sample constructor inputs for ``name`` on the CPU; with ``flags``, also the variants with each
    supported global flag (``foreach``; ``differentiable`` and ``fused`` have their own tests) set."""
    info = INFOS[name]
    if not flags:
        return info.optim_inputs_func(device="cpu")
    return db._get_optim_inputs_including_global_cliquey_kwargs(
        "cpu", torch.float32, info, skip=("differentiable", "fused")
    )


def error_inputs(name: str) -> list:
    return INFOS[name].optim_error_inputs_func(device="cpu", dtype=torch.float32)


def cases(flags: bool = False) -> list[tuple[str, int, str]]:
    """(optimizer, input index, description) for every sample input of every drop-in."""
    return [(name, i, inp.desc) for name in DROP_INS for i, inp in enumerate(sample_inputs(name, flags))]


def kwargs_of(name: str, index: int, flags: bool = False) -> dict[str, Any]:
    return deepcopy(sample_inputs(name, flags)[index].kwargs)


def make(name: str, params, torch_conventions: bool = False, **kwargs):
    """The optimlab drop-in for torch's ``name``, constructed with torch's arguments."""
    extra = TORCH_CONVENTIONS.get(name, {}) if torch_conventions else FAST_OPTIONS.get(name, {})
    return DROP_INS[name](params, **extra, **kwargs)


def torch_class(name: str) -> type:
    return getattr(torch.optim, name)


def step_together(opt, ref, ours: list, theirs: list, steps: int) -> None:
    """``steps`` steps of ``opt`` on ``ours`` and ``ref`` on their twins ``theirs``, with the same random gradients."""
    for _ in range(steps):
        for p, q in zip(ours, theirs):
            p.grad = torch.randn_like(p)
            q.grad = p.grad.clone()
        opt.step()
        ref.step()
