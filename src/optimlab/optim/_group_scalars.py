"""The one step override of the parameter-free optimizers: whole-group (or whole-model) scalars, then the update.

DoG, DoWG, Prodigy and D-Adaptation compute step sizes from norms and inner products over all parameters of a
group (or of the model) before the per-tensor update: they implement the step pipeline's ``prepare`` hook (it sees
the parameters with gradients that the non-finite policy lets through, state created), and the base class's
per-tensor loop then runs the update function with the scalars that :meth:`hyper` hands it.

Scalars that must resume (DoG's r̄ and G, Prodigy's d, ...) are one-element tensors (the parameter's compute dtype:
fp32 for fp32/bf16/fp16, fp64 for fp64; they are computed in float64) in the state of *every*
parameter that has state, all holding the same value: :func:`read_scalars` reads them from a parameter that has
taken a step and :func:`write_scalars` writes them to all, so ``state_dict()`` round-trips them like any other
state. Each costs one element per parameter tensor. They have shape (1,), not (): torch.compile (2.13) treats a 0-d
float64 input as a Python float and silently drops in-place writes to it (measured: ``x.copy_(v)`` inside a compiled
function leaves a 0-d float64 ``x`` unchanged under the aot_eager and inductor backends).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from ._base import Optimizer
from ._base import Slot as Entry


def scalar(like: Tensor) -> Tensor:
    """A fresh state scalar for the parameter view ``like``: a zero of shape (1,) in its dtype (see the module
    docstring for why not 0-d)."""
    return torch.zeros(1, dtype=like.dtype, device=like.device)


def read_scalars(optimizer: torch.optim.Optimizer, params: Iterable[Tensor], names: Sequence[str]) -> dict | None:
    """The shared scalars as Python floats, from the first of ``params`` that has taken a step (None: none has)."""
    for p in params:
        state = optimizer.state.get(p)
        if state and float(state["step"]) > 0 and names[0] in state:
            return {n: float(state[n]) for n in names}
    return None


def write_scalars(optimizer: torch.optim.Optimizer, params: Iterable[Tensor], values: dict[str, float]) -> None:
    """Write the shared scalars into the state of every parameter of ``params`` that has state."""
    for p in params:
        state = optimizer.state.get(p)
        if state:
            for n, v in values.items():
                state[n].fill_(v)


def dot(a: Tensor, b: Tensor) -> float:
    """⟨a, b⟩ as a Python float (float64 accumulation)."""
    return float(torch.dot(a.reshape(-1).double(), b.reshape(-1).double()))


def sq_norm(a: Tensor) -> float:
    return dot(a, a)


def state_bytes(tensors: int, scalars: int) -> Callable[..., int]:
    """Analytic state bytes: ``tensors`` parameter-sized tensors, the fp32 step counter and ``scalars`` one-element
    tensors, all in the compute dtype."""

    def formula(shape, dtype, hp) -> int:
        return R.dense_state_bytes(shape, dtype, tensors) + R.compute_dtype(dtype).itemsize * scalars

    return formula


class GroupScalarOptimizer(Optimizer):
    """Whole-group scalars in the pipeline's ``prepare`` hook (eagerly), then the per-tensor update."""

    # sharded parameters: the scalars' inner products and norms are taken on the gathered full tensors (measured:
    # shard by shard, D-Adapt Adam drifted 7e-3 from one process in 5 steps)
    shard_local = False

    @staticmethod
    def by_group(entries: list[Entry]) -> list[tuple[dict[str, Any], list[Entry]]]:
        """Entries split by param group, in group order."""
        out: dict[int, tuple[dict[str, Any], list[Entry]]] = {}
        for e in entries:
            out.setdefault(id(e.group), (e.group, []))[1].append(e)
        return list(out.values())

    def screen_scalars(self, entries: list[Entry], values: dict[str, float]) -> list[Entry]:
        """The non-finite policy on whole-group scalars about to be written to state: ``entries`` when every value
        is finite in the state's dtype (it may overflow fp32 from finite gradients), else what the policy keeps of
        them (``"skip"``: none, the scalars stay as they were; ``"raise"``: ``FloatingPointError``)."""
        dtype = entries[0].state[next(iter(values))].dtype
        as_state = torch.tensor(list(values.values()), dtype=torch.float64).to(dtype)
        return self._screen(entries, [as_state] * len(entries), "step-size scalar")
