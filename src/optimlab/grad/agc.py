"""Adaptive gradient clipping (AGC).

Brock, De, Smith & Simonyan (2021), *High-Performance Large-Scale Image Recognition Without Normalization*,
ICML 2021, arXiv:2102.06171, Section 4. For every unit i of every weight W with gradient G:

    G_i ← λ · (‖W_i‖* / ‖G_i‖) · G_i   if ‖G_i‖ / ‖W_i‖* > λ,   else unchanged;   ‖W_i‖* = max(‖W_i‖_F, ε),

so afterwards ‖G_i‖ / ‖W_i‖* ≤ λ for every unit. ε (default 1e-3) keeps zero-initialised weights from having
their gradients clipped to zero. Units, in PyTorch's layouts: the rows (index along dim 0, i.e. output units /
output channels) of any tensor with ≥ 2 dims (``nn.Linear`` (out, in), ``nn.ConvNd`` (out, in, *k)); the whole
tensor for 0-D/1-D tensors (biases, gains). This matches the authors' JAX code, which reduces over every axis
but the output axis of HWIO kernels. Caveat: ``nn.ConvTransposeNd`` stores (in, out, *k), so its dim-0 units are
input channels.

The paper does not clip the final linear (classifier) layer, and the best λ shrinks as the batch grows (about
0.01 at batch size 4096 in their ImageNet runs): pass the parameters you want clipped and tune λ.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ._common import ClipStats, TensorOrTensors, as_list, check_nonnegative, check_positive, fraction, l2_norm, scalar


def unitwise_norm(x: Tensor) -> Tensor:
    """Frobenius norm per unit: per row (dim 0, keepdim so it broadcasts) for ≥ 2-D tensors, whole tensor else."""
    if x.dim() <= 1:
        return torch.linalg.vector_norm(x)
    return torch.linalg.vector_norm(x, dim=tuple(range(1, x.dim())), keepdim=True)


@torch.no_grad()
def adaptive_clip_grad_(
    parameters: TensorOrTensors,
    clipping: float = 0.01,
    eps: float = 1e-3,
    *,
    grads: Sequence[Tensor | None] | None = None,
) -> ClipStats:
    """AGC (Brock et al., 2021) on each parameter's gradient, in place; λ = ``clipping``, ε = ``eps``.

    ``parameters``: the weights W (AGC needs them). Their ``.grad`` is clipped unless ``grads`` gives the gradient
    tensors explicitly (same order and shapes; ``None`` entries are skipped).
    Returns :class:`ClipStats`: pre-clip L2 ``total_norm`` of the gradients, ``threshold = λ`` and the fraction of
    units (rows / whole 1-D tensors) that were clipped. Non-finite gradient norms propagate (NaN stays NaN).
    """
    clipping = check_positive("clipping", clipping)
    eps = check_nonnegative("eps", eps)
    params = as_list(parameters)
    if grads is None:
        pairs = [(p, p.grad) for p in params if p.grad is not None]
    else:
        grads = list(grads)
        if len(grads) != len(params):
            raise ValueError(f"grads: expected {len(params)} tensors (one per parameter), got {len(grads)}")
        pairs = [(p, g) for p, g in zip(params, grads) if g is not None]
    for p, g in pairs:
        if p.shape != g.shape:
            raise ValueError(f"gradient shape {tuple(g.shape)} does not match parameter shape {tuple(p.shape)}")
    gs = [g for _, g in pairs]
    total_norm = l2_norm(gs)
    count, units = 0, 0
    for p, g in pairs:
        w_norm = unitwise_norm(p.detach()).clamp_min(eps)
        g_norm = unitwise_norm(g)
        max_norm = w_norm * clipping
        clip = g_norm > max_norm
        # the division only matters where clip is True, where g_norm > λε ≥ 0; the clamp keeps the other
        # branch finite when a unit's gradient is exactly zero
        scale = torch.where(clip, max_norm / g_norm.clamp_min(torch.finfo(g_norm.dtype).tiny), 1.0)
        g.mul_(scale.to(g.dtype))
        count = count + clip.sum().to(gs[0].device)
        units += clip.numel()
    return ClipStats(total_norm, scalar(clipping, gs), fraction(count, units, gs))
