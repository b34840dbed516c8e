"""Gauss–Newton–Bartlett (GNB) estimator of the Gauss–Newton diagonal for softmax cross-entropy models.

Liu et al. (2023), *Sophia: A Scalable Stochastic Second-order Optimizer for Language Model Pre-training*,
arXiv:2305.14342, Algorithm 2 (the estimator of Sophia-G): on a mini-batch of B examples (B label positions,
i.e. tokens for a language model),

1. compute the logits f(θ, x_b);
2. sample ŷ_b ~ softmax(f(θ, x_b)) — labels from the model's own predictive distribution, not the data;
3. ĝ = ∇_θ (1/B) Σ_b ℓ_CE(f(θ, x_b), ŷ_b);
4. return ĥ = B · ĝ ⊙ ĝ.

Why it works (Bartlett's second identity): for ℓ_CE and ŷ ~ softmax(z), E[∇_z ℓ ∇_z ℓᵀ] = diag(p) − p pᵀ =
∇²_z ℓ, the Hessian of the loss in the logits. The per-example gradients J_bᵀ(p_b − e_ŷ_b) are independent with
mean zero, so the cross terms vanish and E[B ĝ ĝᵀ] = (1/B) Σ_b J_bᵀ (diag(p_b) − p_b p_bᵀ) J_b: the Gauss–Newton
matrix of the mean loss. Hence E[ĥ] is exactly its diagonal for any B (for a linear model, softmax regression,
that is the Hessian's diagonal).

Scaling convention: the paper folds B into ĥ (as here, ``batch_size`` defaults to the number of label
positions). The official code (github.com/Liuhong99/Sophia) keeps the EMA of ĝ ⊙ ĝ and multiplies by
B = ``total_bs * block_size`` (tokens) inside the update's denominator, ρ·B·h; the two are the same update.
Pass ``batch_size=1`` to get the unscaled ĝ ⊙ ĝ.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from .vectors import work_dtype


def sample_labels(logits: Tensor, generator: torch.Generator) -> Tensor:
    """Labels ŷ ~ softmax(logits) along the last dim, drawn from ``generator``; shape ``logits.shape[:-1]``.

    Sampled in float32 on the generator's device (then moved to the logits' device)."""
    if logits.ndim < 1 or logits.shape[-1] < 1:
        raise ValueError(f"logits must have a class dimension, got shape {tuple(logits.shape)}")
    probs = torch.softmax(logits.detach().reshape(-1, logits.shape[-1]).float(), dim=-1)
    labels = torch.multinomial(probs.to(generator.device), 1, generator=generator).squeeze(-1)
    return labels.to(logits.device).reshape(logits.shape[:-1])


def gauss_newton_bartlett(
    logits: Tensor,
    params: Sequence[Tensor],
    generator: torch.Generator,
    *,
    mask: Tensor | None = None,
    batch_size: float | None = None,
    retain_graph: bool = False,
) -> list[Tensor]:
    """The GNB estimate ĥ = B · ĝ ⊙ ĝ of diag(Gauss–Newton) of the mean cross-entropy (Sophia-G).

    Args:
        logits: model outputs ``(..., C)`` computed from ``params`` with autograd on (a fresh forward pass;
            the estimator only differentiates through it).
        params: the parameters to estimate the diagonal for.
        generator: the source of the sampled labels.
        mask: optional boolean ``logits.shape[:-1]``; only ``True`` positions count (e.g. no padding), and B is
            their number.
        batch_size: B; default the number of (unmasked) label positions, as in the paper. ``1`` gives ĝ ⊙ ĝ.
        retain_graph: keep the forward graph (to reuse ``logits`` afterwards).

    Returns:
        One tensor per parameter (zeros where the logits do not depend on it), in at least float32.
    """
    params = list(params)
    flat = logits.reshape(-1, logits.shape[-1])
    labels = sample_labels(logits, generator).reshape(-1)
    if mask is not None:
        if mask.shape != logits.shape[:-1]:
            raise ValueError(f"mask must have shape {tuple(logits.shape[:-1])}, got {tuple(mask.shape)}")
        keep = mask.reshape(-1).to(device=logits.device, dtype=torch.bool)
        flat, labels = flat[keep], labels[keep]
    n = flat.shape[0]
    if n == 0:
        raise ValueError("gauss_newton_bartlett: no label positions (empty batch or all-False mask)")
    loss = F.cross_entropy(flat, labels, reduction="mean")
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph, allow_unused=True, materialize_grads=True)
    scale = float(n) if batch_size is None else float(batch_size)
    return [g.to(work_dtype(g.dtype)).square().mul_(scale) for g in grads]
