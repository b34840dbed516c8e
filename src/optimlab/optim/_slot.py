"""A parameter as one step of the pipeline sees it (:class:`Slot`), and the group-view key of its state layout."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

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
