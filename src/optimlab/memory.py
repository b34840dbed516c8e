"""Measured optimizer-state memory: what an optimizer actually holds, per parameter and in total.

The registry's :meth:`~optimlab.registry.AlgorithmSpec.state_bytes` says what an algorithm *should* hold; the test
matrix checks the two agree for every registered algorithm, so memory claims in the docs and the benchmark are
measured facts. Tensors that share storage are counted once.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _holders(optimizer: torch.optim.Optimizer) -> list[torch.optim.Optimizer]:
    """The optimizer and, for wrappers, the optimizers they wrap (recursively)."""
    out = [optimizer]
    base = getattr(optimizer, "base", None)
    if isinstance(base, torch.optim.Optimizer):
        out += _holders(base)
    return out


def _tensors(value) -> list[Tensor]:
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _tensors(v)]
    if isinstance(value, dict):
        return [t for v in value.values() for t in _tensors(v)]
    return []


def state_bytes_by_param(optimizer: torch.optim.Optimizer) -> list[int]:
    """Bytes of optimizer state held for each parameter, in param-group order (wrapped optimizers included)."""
    params = [p for g in optimizer.param_groups for p in g["params"]]
    seen: set[tuple[int, int]] = set()
    out = []
    for p in params:
        total = 0
        for holder in _holders(optimizer):
            for t in _tensors(holder.state.get(p, {})):
                key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
                if key not in seen:
                    seen.add(key)
                    total += t.untyped_storage().nbytes()
        out.append(total)
    return out


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Total bytes of optimizer state (every tensor in ``optimizer.state``, wrapped optimizers included)."""
    return sum(state_bytes_by_param(optimizer))
