"""Helpers shared by the memory-efficient optimizers (projected/GaLore family, Subset-Norm, Adafactor, low-precision
states): per-parameter state layouts and a step-dependent branch that also works under ``torch.compile``.

* :class:`PerParamLayout` lets a parameter's state tensors depend on the parameter itself (a projected matrix keeps
  a rank-r projector, a bias keeps plain AdamW state; Adafactor keeps row/column factors for matrices and a full
  second moment for vectors; an 8-bit optimizer keeps small tensors in fp32) through the base class's
  :meth:`~optimlab.optim._base.Optimizer.layout` hook: the step pipeline updates the parameters of a group that share
  a layout together (same validation, non-finite policy, dtype handling, compile path).
* :func:`when` runs a state refresh only on some steps (a projector refresh every T steps). Eagerly the step is a
  Python number and this is a plain ``if``; under ``compile=True`` the step is a 0-d tensor and the branch becomes
  ``torch.cond``, so the compiled graph neither breaks nor recompiles when the refresh step comes.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import Any

import torch
from torch import Tensor

from ._base import LAYOUT, Optimizer


class PerParamLayout(Optimizer):
    """An optimizer whose state names depend on the parameter: override :meth:`layout` and
    :meth:`layout_state_keys`; ``init_state(p, group)`` and ``hyper(group)`` see the layout as ``group[LAYOUT]``."""

    def layout(self, p: Tensor, group: dict[str, Any]) -> Hashable:
        raise NotImplementedError

    def layout_state_keys(self, layout: Hashable, group: dict[str, Any]) -> tuple[str, ...]:
        """Names of the state tensors of a parameter with this layout, in the order the update takes them."""
        raise NotImplementedError

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        return self.layout_state_keys(group[LAYOUT], group)


def when(
    pred: bool | Tensor,
    fn: Callable[..., Sequence[Tensor]],
    carried: Sequence[Tensor],
    extra: Sequence[Tensor] = (),
) -> None:
    """``carried[i].copy_(fn(*carried, *extra)[i])`` for every i, but only where ``pred`` holds.

    ``fn`` must be functional (return new tensors shaped like ``carried``, never modify its inputs). With a Python
    bool this is an ``if``; with a 0-d bool tensor (compiled mode) it is ``torch.cond``, whose false branch returns
    copies of the carried tensors unchanged.
    """
    if not isinstance(pred, Tensor):
        if pred:
            for dst, new in zip(carried, fn(*carried, *extra)):
                dst.copy_(new)
        return
    n = len(carried)

    def true_fn(*args: Tensor) -> tuple[Tensor, ...]:
        return tuple(t.clone(memory_format=torch.contiguous_format) for t in fn(*args))

    def false_fn(*args: Tensor) -> tuple[Tensor, ...]:
        return tuple(t.clone(memory_format=torch.contiguous_format) for t in args[:n])

    out = torch.cond(pred, true_fn, false_fn, (*carried, *extra))
    for dst, new in zip(carried, out):
        dst.copy_(new)


def every(step: Any, period: Any, offset: int = 1) -> bool | Tensor:
    """True on steps ``offset, offset + period, offset + 2·period, ...`` (steps count from 1)."""
    return (step - offset) % period == 0
