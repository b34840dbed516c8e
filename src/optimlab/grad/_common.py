"""Plumbing shared by the gradient transforms: which tensors are gradients, and the statistics record."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import Tensor

TensorOrTensors = Tensor | Iterable[Tensor]


class ClipStats(NamedTuple):
    """What a clipping transform saw *before* it clipped, for logging (every field is a 0-d tensor).

    ``total_norm``: norm of all gradients viewed as one vector (L2 unless the transform takes a ``norm_type``).
    ``threshold``: the threshold in effect (max norm, clip value, the computed quantile, the AGC factor λ, ...).
    ``fraction_clipped``: fraction of the transform's units that it changed: coordinates for value, coordinate
    and quantile clipping; rows/tensors for AGC; 0 or 1 for global-norm clipping (the whole vector is one unit).
    """

    total_norm: Tensor
    threshold: Tensor
    fraction_clipped: Tensor


def is_parameter(t: Tensor) -> bool:
    """A parameter (its ``.grad`` is the gradient), as opposed to a tensor that *is* a gradient."""
    return isinstance(t, torch.nn.Parameter) or t.requires_grad


def as_list(tensors: TensorOrTensors) -> list[Tensor]:
    return [tensors] if isinstance(tensors, Tensor) else list(tensors)


def grads_of(tensors: TensorOrTensors) -> list[Tensor]:
    """The gradients to transform, in order.

    Rule: a parameter (``nn.Parameter`` or any tensor with ``requires_grad=True``) contributes its ``.grad``
    (skipped when ``None``, as ``torch.nn.utils.clip_grad_norm_`` does); any other tensor is taken to be a
    gradient itself (e.g. the output of ``torch.autograd.grad``). Transforms modify these tensors in place.
    """
    out = []
    for t in as_list(tensors):
        if is_parameter(t):
            if t.grad is not None:
                out.append(t.grad)
        else:
            out.append(t)
    for g in out:
        if g.is_sparse:
            raise ValueError("sparse gradients are not supported by optimlab.grad transforms")
    return out


def l2_norm(tensors: list[Tensor]) -> Tensor:
    """L2 norm of all tensors viewed as one vector (0-d, on the first tensor's device); 0 for an empty list."""
    if not tensors:
        return torch.tensor(0.0)
    device = tensors[0].device
    norms = [torch.linalg.vector_norm(t).to(device) for t in tensors]
    return torch.linalg.vector_norm(torch.stack(norms))


def scalar(value: float | Tensor, like: list[Tensor]) -> Tensor:
    """``value`` as a 0-d float tensor on the device of the first tensor of ``like`` (CPU if empty)."""
    device = like[0].device if like else None
    return torch.as_tensor(value, dtype=torch.float32, device=device).detach().clone()


def fraction(count: Tensor | int, total: int, like: list[Tensor]) -> Tensor:
    """count / total as a 0-d float32 tensor (0 when total is 0), without a host synchronisation."""
    count = torch.as_tensor(count, device=like[0].device if like else None)
    return count.to(torch.float32) / max(total, 1)


def check_nonnegative(name: str, value: float) -> float:
    value = float(value)
    if not value >= 0.0:  # also rejects NaN
        raise ValueError(f"{name} must be >= 0, got {value}")
    return value


def check_positive(name: str, value: float) -> float:
    value = float(value)
    if not value > 0.0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value
