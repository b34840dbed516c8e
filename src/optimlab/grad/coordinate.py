"""Coordinate-wise clipping (per-coordinate thresholds) and quantile clipping (one threshold set from the
gradient itself so that a chosen fraction of coordinates is clipped).

Coordinate-wise rule (Zhang, Karimireddy, Veit, Kim, Reddi, Kumar & Sra, 2020, *Why are Adaptive Methods Good
for Attention Models?*, NeurIPS 2020, arXiv:1912.03194 — CClip, and the clipping step of ACClip):

    ĝ_i = min(1, τ_i / |g_i|) · g_i = sign(g_i) · min(|g_i|, τ_i),

each coordinate clipped independently against its own threshold τ_i ≥ 0 (a scalar τ gives value clipping).
ACClip maintains τ adaptively, τ_i^α ← β τ_i^α + (1 − β)|g_i|^α, and clips its momentum with the same rule; that
moving average is an optimizer's state and is left to an optimizer built on :func:`clip_coordinate_`.

Quantile rule (seed #221: Pan & Li, 2023, *Toward Understanding Why Adam Converges Faster Than SGD for
Transformers*, arXiv:2306.00204 — only a small fraction of coordinates causes the bad directional sharpness,
and clipping those coordinates speeds up SGD): with N the number of gradient coordinates over *all* tensors
passed in (the whole model) and |g|_(1) ≤ … ≤ |g|_(N) their sorted magnitudes,

    τ = |g|_(k),  k = ⌈q·N⌉ clamped to [1, N]    (the q-quantile, numpy's ``method="inverted_cdf"``),

then every coordinate is clipped to [−τ, τ]. Exactly the coordinates with |g_i| > τ change; with distinct
magnitudes these are the N − k largest ones, i.e. ⌊(1 − q)·N⌋ of them for q ≥ 1/N (fewer when magnitudes tie
at τ). q = 1 clips nothing; q = 0 clips everything down to the smallest magnitude. (The papers fix the idea —
clip the few largest coordinates — not a quantile convention; the one above is this library's, chosen so the
clipped fraction is exact and testable.)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ._common import ClipStats, TensorOrTensors, check_nonnegative, fraction, grads_of, l2_norm, scalar


@torch.no_grad()
def clip_coordinate_(parameters: TensorOrTensors, threshold: float | Sequence[Tensor]) -> ClipStats:
    """ĝ_i = sign(g_i)·min(|g_i|, τ_i) for every coordinate, in place (Zhang et al. 2020, CClip).

    ``threshold``: one float τ ≥ 0 for all coordinates, or one non-negative tensor per gradient, broadcastable
    to it (per-coordinate τ_i, e.g. an ACClip-style running estimate).
    Returns :class:`ClipStats`: pre-clip L2 ``total_norm``, ``threshold`` (τ, or the mean of the τ_i over all
    coordinates) and the fraction of coordinates with |g_i| > τ_i.
    """
    grads = grads_of(parameters)
    if isinstance(threshold, Tensor) and threshold.dim() == 0:
        threshold = float(threshold)
    if isinstance(threshold, (int, float)):
        tau = check_nonnegative("threshold", threshold)
        taus = [tau] * len(grads)
    else:
        taus = list(threshold)
        if len(taus) != len(grads):
            raise ValueError(f"threshold: expected {len(grads)} tensors (one per gradient), got {len(taus)}")
        for t in taus:
            if bool((t < 0).any()) or bool(t.isnan().any()):
                raise ValueError("threshold tensors must be non-negative")
    total_norm = l2_norm(grads)
    count, tau_sum, total = 0, 0.0, 0
    for g, tau in zip(grads, taus):
        if isinstance(tau, Tensor):
            tau = tau.to(device=g.device, dtype=g.dtype)
            tau_sum = tau_sum + tau.expand_as(g).sum(dtype=torch.float64).to(grads[0].device)
        else:
            tau_sum = tau_sum + tau * g.numel()
        count = count + (g.abs() > tau).sum().to(grads[0].device)
        total += g.numel()
        g.copy_(torch.minimum(torch.maximum(g, -tau), tau) if isinstance(tau, Tensor) else g.clamp(-tau, tau))
    mean_tau = scalar(tau_sum / max(total, 1), grads)
    return ClipStats(total_norm, mean_tau, fraction(count, total, grads))


def quantile_threshold(parameters: TensorOrTensors, q: float) -> Tensor:
    """τ = |g|_(⌈qN⌉), the q-quantile (``inverted_cdf``) of the gradient magnitudes over all tensors (0-d).

    Memory: concatenates |g| of all gradients once (one extra gradient-sized buffer).
    """
    q = float(q)
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be in [0, 1], got {q}")
    grads = grads_of(parameters)
    if not grads:
        raise ValueError("quantile_threshold: no gradients")
    device = grads[0].device
    dtype = functools.reduce(torch.promote_types, [g.dtype for g in grads])
    flat = torch.cat([g.detach().abs().flatten().to(device=device, dtype=dtype) for g in grads])
    n = flat.numel()
    if n == 0:
        return torch.zeros((), dtype=flat.dtype, device=device)
    # ⌈q·n⌉ without being fooled by rounding in q·n (e.g. 0.7·10 = 7.000000000000001)
    k = min(max(math.ceil(q * n - 1e-12 * n), 1), n)
    return flat.kthvalue(k).values


@torch.no_grad()
def clip_quantile_(parameters: TensorOrTensors, q: float) -> ClipStats:
    """Clip every coordinate to [−τ, τ] with τ the q-quantile of |g| over all gradients (seed #221), in place.

    See the module docstring for the exact rule; e.g. ``q=0.99`` clips the largest 1% of coordinates (by
    magnitude, over the whole model) down to the magnitude of the largest unclipped one.
    Returns :class:`ClipStats`: pre-clip L2 ``total_norm``, the computed ``threshold`` τ and the fraction of
    coordinates clipped (|g_i| > τ).
    """
    grads = grads_of(parameters)
    if not grads:
        return ClipStats(torch.tensor(0.0), torch.tensor(0.0), torch.tensor(0.0))
    tau = quantile_threshold(grads, q)
    total_norm = l2_norm(grads)
    count, total = 0, 0
    for g in grads:
        t = tau.to(device=g.device, dtype=g.dtype)
        count = count + (g.abs() > t).sum().to(grads[0].device)
        total += g.numel()
        g.copy_(torch.minimum(torch.maximum(g, -t), t))
    return ClipStats(total_norm, tau, fraction(count, total, grads))
