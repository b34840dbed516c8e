"""Lists of tensors as one vector: the shape in which curvature routines see a model's parameters.

A "vector" here is a list of tensors shaped like the parameters (what ``torch.autograd.grad`` returns). The
eigen-solvers work on flat 1-D tensors instead (a Krylov basis is then one matrix); these helpers convert.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor


def work_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype to accumulate curvature estimates in: at least float32 (bf16/fp16 inputs are promoted)."""
    return torch.promote_types(dtype, torch.float32)


def flatten(tensors: Sequence[Tensor], dtype: torch.dtype | None = None) -> Tensor:
    """Concatenate ``tensors`` into one 1-D tensor (on the first tensor's device), optionally cast."""
    if len(tensors) == 0:
        raise ValueError("flatten: need at least one tensor")
    device = tensors[0].device
    if dtype is None:
        dtype = functools.reduce(torch.promote_types, (t.dtype for t in tensors))
    return torch.cat([t.reshape(-1).to(device=device, dtype=dtype) for t in tensors])


def unflatten(vector: Tensor, like: Sequence[Tensor], *, cast: bool = True) -> list[Tensor]:
    """Split a flat ``vector`` into tensors shaped like ``like`` (cast to their dtype/device if ``cast``)."""
    total = sum(t.numel() for t in like)
    if vector.numel() != total:
        raise ValueError(f"unflatten: vector has {vector.numel()} elements, the tensors have {total}")
    out, offset = [], 0
    for t in like:
        piece = vector[offset : offset + t.numel()].view(t.shape)
        out.append(piece.to(device=t.device, dtype=t.dtype) if cast else piece)
        offset += t.numel()
    return out


def dot(xs: Sequence[Tensor], ys: Sequence[Tensor]) -> Tensor:
    """Inner product of two lists of tensors, as a 0-d tensor in the working dtype."""
    return sum(
        (torch.sum(x.to(work_dtype(x.dtype)) * y.to(work_dtype(x.dtype))) for x, y in zip(xs, ys, strict=True)),
        start=torch.zeros((), dtype=work_dtype(xs[0].dtype), device=xs[0].device),
    )


def check_like(vectors: Sequence[Tensor], params: Sequence[Tensor], what: str = "vectors") -> None:
    """Raise ``ValueError`` unless ``vectors`` has one tensor per parameter, each of the parameter's shape."""
    if len(vectors) != len(params):
        raise ValueError(f"{what}: got {len(vectors)} tensors for {len(params)} parameters")
    for i, (v, p) in enumerate(zip(vectors, params)):
        if v.shape != p.shape:
            raise ValueError(f"{what}[{i}] has shape {tuple(v.shape)}, parameter {i} has {tuple(p.shape)}")
