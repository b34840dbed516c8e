"""Robust gradient estimators: given a stack of per-sample or per-microbatch gradients, return one estimate.

Seed #72: Schaipp, Garrigos, Simsekli & Gower (2024), *SGD with Clipping is Secretly Estimating the Median
Gradient*, arXiv:2402.12828 (TMLR 2025 as *Tracking the Median of Gradients with a Stochastic Proximal Point
Method*): use a median of gradients instead of their mean when the noise is heavy-tailed or corrupted — across
samples (:func:`coordinate_median`, :func:`geometric_median`, :func:`median_of_means`) or across iterations,
where one stochastic proximal-point step on m ↦ ‖m − g_t‖ is a clipped update (:func:`median_tracking_step_`).
Seed #185: Koloskova, Hendrikx & Stich (2023), *Revisiting Gradient Clipping: Stochastic bias and tight
convergence guarantees*, arXiv:2305.01588 — the clipped-SGD estimate clip_c(mean) (:func:`clipped_mean`).
Median of means: Nemirovsky & Yudin (1983); Lugosi & Mendelson (2019), *Mean estimation and regression under
heavy-tailed distributions: a survey*.

Input convention (``stack``): one tensor of shape (B, *shape) — B gradients of one tensor — or a list/tuple of
such tensors, one per parameter, all with the same B (e.g. the per-sample gradients from
:func:`optimlab.grad.per_sample_grads`), or a dict name → such tensor. The result has the same container type
with the leading B dimension removed. Estimators that use a norm (geometric median, clipping) treat the B
gradients as whole vectors across all parameters (one norm per sample); coordinate-wise ones act per coordinate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import torch
from torch import Tensor

from ._common import ClipStats, TensorOrTensors, check_positive, fraction, grads_of, l2_norm, scalar

Stack = Tensor | Sequence[Tensor] | Mapping[str, Tensor]


def _unpack(stack: Stack) -> tuple[list[Tensor], object]:
    if isinstance(stack, Tensor):
        tensors, kind = [stack], "tensor"
    elif isinstance(stack, Mapping):
        tensors, kind = list(stack.values()), list(stack.keys())
    else:
        tensors, kind = list(stack), "list"
    if not tensors:
        raise ValueError("empty stack of gradients")
    b = tensors[0].shape[0] if tensors[0].dim() > 0 else None
    for t in tensors:
        if t.dim() == 0 or t.shape[0] != b:
            raise ValueError("every stacked tensor needs the same leading (sample) dimension B")
    if b == 0:
        raise ValueError("the stack holds no gradients (B = 0)")
    return tensors, kind


def _pack(tensors: list[Tensor], kind: object) -> Stack:
    if kind == "tensor":
        return tensors[0]
    if kind == "list":
        return tensors
    return dict(zip(kind, tensors))  # type: ignore[arg-type]


def _sample_norms(tensors: list[Tensor]) -> Tensor:
    """(B,) L2 norm of each stacked gradient over all tensors."""
    per_tensor = [torch.linalg.vector_norm(t.flatten(1), dim=1) for t in tensors]
    return torch.linalg.vector_norm(torch.stack(per_tensor, dim=1), dim=1)


def _coordinate_median(t: Tensor) -> Tensor:
    """Median along dim 0; for an even count the mean of the two middle values (the usual statistical median)."""
    b = t.shape[0]
    s = t.sort(dim=0).values
    return s[b // 2] if b % 2 else (s[b // 2 - 1] + s[b // 2]) / 2


def coordinate_median(stack: Stack) -> Stack:
    """Coordinate-wise median over the B stacked gradients (even B: mean of the two middle values)."""
    tensors, kind = _unpack(stack)
    return _pack([_coordinate_median(t) for t in tensors], kind)


def geometric_median(stack: Stack, *, max_iter: int = 100, tol: float = 1e-7, eps: float = 1e-12) -> Stack:
    """Geometric (spatial, L1) median argmin_m Σ_i ‖g_i − m‖₂ of the B stacked gradients (Weiszfeld's algorithm).

    The norm is over all tensors jointly. Starts at the coordinate-wise median and iterates
    m ← Σ_i w_i g_i / Σ_i w_i with w_i = 1 / max(‖g_i − m‖, eps) until the step is ≤ tol·max(1, ‖m‖)
    or ``max_iter`` steps (each stopping test synchronises with the host). The median of Schaipp et al. (#72).
    """
    tensors, kind = _unpack(stack)
    b = tensors[0].shape[0]
    flat = torch.cat([t.reshape(b, -1) for t in tensors], dim=1)
    m = _coordinate_median(flat)
    for _ in range(max_iter):
        w = 1.0 / torch.linalg.vector_norm(flat - m, dim=1).clamp_min(eps)
        new = (w[:, None] * flat).sum(0) / w.sum()
        step = torch.linalg.vector_norm(new - m)
        m = new
        if float(step) <= tol * max(1.0, float(torch.linalg.vector_norm(m))):
            break
    out, start = [], 0
    for t in tensors:
        n = t[0].numel()
        out.append(m[start : start + n].reshape(t.shape[1:]))
        start += n
    return _pack(out, kind)


def median_of_means(
    stack: Stack, num_groups: int, *, median: Literal["coordinate", "geometric"] = "coordinate"
) -> Stack:
    """Median of means: split the B gradients into ``num_groups`` contiguous groups (sizes differ by at most one,
    ``torch.tensor_split``), average within each group, return the median of the group means — coordinate-wise
    (default) or geometric. ``num_groups=1`` is the plain mean, ``num_groups=B`` the plain median.
    Order the samples randomly (or per worker) before calling: groups are contiguous slices.
    """
    tensors, kind = _unpack(stack)
    b = tensors[0].shape[0]
    if not 1 <= int(num_groups) <= b:
        raise ValueError(f"num_groups must be in [1, B={b}], got {num_groups}")
    means = [torch.stack([c.mean(0) for c in t.tensor_split(int(num_groups), dim=0)]) for t in tensors]
    if median == "coordinate":
        return _pack([_coordinate_median(m) for m in means], kind)
    if median == "geometric":
        return _pack(list(geometric_median(means)), kind)  # type: ignore[arg-type]
    raise ValueError(f"median must be 'coordinate' or 'geometric', got {median!r}")


def clipped_mean(stack: Stack, max_norm: float, *, per_sample: bool = False) -> Stack:
    """Clipped gradient estimates, with clip_c(v) = v · min(1, c/‖v‖) (norm over all tensors jointly):

    * ``per_sample=False``: clip_c((1/B) Σ_i g_i) — the clipped-SGD step direction (seed #185, and #27 for B = 1);
    * ``per_sample=True``: (1/B) Σ_i clip_c(g_i) — per-sample clipping, DP-SGD's aggregate without noise (#133).

    The factor is computed as 1 / max(1, ‖v‖/c) (Abadi et al.'s form): exact, and 1 for a zero vector.
    """
    c = check_positive("max_norm", max_norm)
    tensors, kind = _unpack(stack)
    b = tensors[0].shape[0]
    if per_sample:
        factor = 1.0 / (_sample_norms(tensors) / c).clamp_min(1.0)
        out = [(t * factor.reshape(b, *([1] * (t.dim() - 1))).to(t.dtype)).mean(0) for t in tensors]
    else:
        out = [t.mean(0) for t in tensors]
        factor = 1.0 / (l2_norm(out) / c).clamp_min(1.0)
        out = [o * factor.to(o.dtype) for o in out]
    return _pack(out, kind)


@torch.no_grad()
def median_tracking_step_(
    estimate: Sequence[Tensor],
    grads: TensorOrTensors,
    step_size: float,
    *,
    norm: Literal["l2", "l1"] = "l2",
) -> ClipStats:
    """One stochastic proximal-point step towards the median of the gradient stream (Schaipp et al., #72).

    m ← argmin_u ‖u − g‖ + ‖u − m‖²/(2γ), which has the closed form

    * ``norm="l2"`` (geometric median): m ← m + min(1, γ/‖g − m‖)·(g − m), norm over all tensors — a clipped
      step towards g, i.e. clipping estimates the median where momentum (m ← m + γ(g − m)) estimates the mean;
    * ``norm="l1"`` (coordinate-wise median): m ← m + clamp(g − m, −γ, γ).

    ``estimate``: the running estimates m, one tensor per gradient, updated in place (caller-held state,
    e.g. initialised to the first gradient); ``grads``: parameters (their ``.grad``) or gradient tensors;
    γ = ``step_size`` > 0. Returns :class:`ClipStats` with ``total_norm = ‖g − m‖`` before the step,
    ``threshold = γ`` and the fraction clipped (of the whole step for l2, of coordinates for l1).
    """
    gamma = check_positive("step_size", step_size)
    gs = grads_of(grads)
    ms = list(estimate)
    if len(ms) != len(gs):
        raise ValueError(f"estimate: expected {len(gs)} tensors (one per gradient), got {len(ms)}")
    diffs = [g - m for g, m in zip(gs, ms)]
    dist = l2_norm(diffs)
    if norm == "l2":
        factor = 1.0 / (dist / gamma).clamp_min(1.0)
        for m, d in zip(ms, diffs):
            m.add_(d * factor.to(device=d.device, dtype=d.dtype))
        clipped = (dist > gamma).to(torch.float32)
    elif norm == "l1":
        count, total = 0, 0
        for m, d in zip(ms, diffs):
            count = count + (d.abs() > gamma).sum().to(dist.device)
            total += d.numel()
            m.add_(d.clamp(-gamma, gamma))
        clipped = fraction(count, total, diffs)
    else:
        raise ValueError(f"norm must be 'l2' or 'l1', got {norm!r}")
    return ClipStats(dist, scalar(gamma, diffs), clipped)
