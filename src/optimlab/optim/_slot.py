"""A parameter as one step of the pipeline sees it (:class:`Slot`), the group-view key of its state layout, and
the rule its state tensors follow (:func:`check_compilable_state`)."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import torch
from torch import Tensor

#: key of the layout in the group view handed to ``state_keys``/``init_state``/``hyper`` (see ``Optimizer.layout``)
LAYOUT = "_layout"


class Slot:
    """One parameter in one step, as the pipeline and :meth:`Optimizer.prepare` see it."""

    __slots__ = ("group", "p", "work", "grad", "state", "layout", "copied", "guarded", "saved")

    def __init__(
        self,
        group: dict[str, Any],
        p: Tensor,
        work: Tensor,
        grad: Tensor,
        state: dict,
        layout: Hashable,
        copied: bool = False,
    ):
        self.group = group  #: its param group
        self.p = p  #: the parameter itself (its ``.grad`` may carry a graph)
        self.work = work  #: what the update sees: fp32 copy of a bf16/fp16 parameter, real view of a complex one
        self.grad = grad  #: the gradient as the update sees it: fp32/real, negated under maximize, detached
        self.state = state  #: its state dict (``"step"`` and the state tensors)
        self.layout = layout  #: its state layout (``Optimizer.layout``)
        self.copied = copied  #: ``work`` is a copy (fp32 of low precision, full tensor of a shard) to write back
        self.guarded = False  #: the update runs on a snapshot and its result is checked (see ``Optimizer._apply``)
        self.saved: list[tuple[Tensor, Tensor]] | None = None  #: the snapshot: (tensor, copy) of state and param

    def snapshot(self) -> None:
        """Copy the parameter (unless ``work`` is a throw-away copy) and every state tensor but the step counter,
        once: a guarded slot is snapshotted before ``prepare`` (which may write state) or else before its update."""
        if self.saved is None:
            tensors = [v for k, v in self.state.items() if k != "step" and isinstance(v, Tensor)]
            if not self.copied:
                tensors.append(self.work)
            self.saved = [(t, t.clone()) for t in tensors]

    def restore(self) -> None:
        """Put back the snapshot, and the step counter as it was before this step."""
        for tensor, old in self.saved or ():
            tensor.copy_(old)
        self.state["step"].sub_(1)

    @property
    def t(self) -> int:
        """The step this parameter is about to take (1-based)."""
        return int(self.state["step"].item()) + 1


def check_compilable_state(
    owner: str, state: dict[str, Any], update: Callable[..., Any], param: Tensor | None = None
) -> None:
    """The state rule: no state tensor an update receives is 0-d float64. torch.compile (2.13) treats such an input
    as a Python float and silently drops in-place writes to it (inductor and aot_eager; 0-d float32/int64 and
    shape-(1,) float64 are kept), so one-element float64 state has shape (1,). An update that runs outside the
    graph (``torch._dynamo.disable``, PSGD-Kron's) is exempt, and so is the state of a 0-d ``param`` (a scalar
    parameter's state has its shape: the user chose it). ``TypeError`` naming the state otherwise, checked when the
    state is created, eager or compiled alike."""
    if getattr(update, "_torchdynamo_disable", False) or (param is not None and param.dim() == 0):
        return
    for name, value in state.items():
        if isinstance(value, Tensor) and value.dim() == 0 and value.dtype == torch.float64:
            raise TypeError(
                f"{owner}: state {name!r} is a 0-d float64 tensor, whose in-place writes torch.compile drops; "
                "give it shape (1,)"
            )
