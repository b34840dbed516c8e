"""Losses from the optimization literature.

StableMax (Prieto, Barsbey, Mediano & Birdal, 2025, *Grokking at the Edge of Numerical Stability*, ICLR 2025,
arXiv:2501.04697, seed #253): softmax's exponential replaced by a function that grows only linearly,

    s(x) = x + 1 (x ≥ 0),   1 / (1 − x) (x < 0);     StableMax(x)_i = s(x_i) / Σ_j s(x_j),

and the StableMax cross-entropy ℓ(x, y) = −log StableMax(x)_y. s is positive, increasing, C¹ at 0 (value and
slope 1), so StableMax is a proper distribution with the ordering of softmax. Because s grows linearly, the
probability of the predicted class approaches 1 only polynomially as logits grow, which keeps float32 away
from *Softmax Collapse*: softmax-CE gradients that are exactly zero once exp(x_j − x_y) underflows or is
absorbed (e.g. logits (200, 0, 0) in float32), which the paper shows stops learning in grokking tasks.

Numerics (ours; evaluating log(s_y / Σ s) directly, as a straightforward implementation does, loses the
true-class gradient to cancellation once p_y rounds to 1): log s(x) = log1p(x) for x ≥ 0 and −log1p(−x) for
x < 0, and

    ℓ(x, y) = log(1 + Σ_{j≠y} s_j / s_y) = softplus(logsumexp_{j≠y} log s_j − log s_y),

whose gradient, (p_k − δ_ky)·(log s)'(x_k) with (log s)'(x) = 1/(1 + |x|), is formed without the cancellation
in p_y − 1: autograd differentiates the softplus form, giving −Σ_{j≠y} p_j for the true class. So the loss and
its gradient keep full relative precision in float32 even when p_y rounds to 1 (down to Σ_{j≠y} s_j / s_y ≈ 1e-38,
where float32's exponent range ends).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["StableMaxCrossEntropyLoss", "log_stablemax", "stablemax", "stablemax_cross_entropy"]


def _compute_dtype(x: Tensor) -> Tensor:
    """Half-precision inputs are computed in float32 (as autocast does for cross-entropy)."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def _s(x: Tensor) -> Tensor:
    # each branch is evaluated on clamped input so the unselected one stays finite (no NaN gradients)
    return torch.where(x >= 0, x.clamp(min=0) + 1, 1 / (1 - x.clamp(max=0)))


def _log_s(x: Tensor) -> Tensor:
    return torch.where(x >= 0, torch.log1p(x.clamp(min=0)), -torch.log1p((-x).clamp(min=0)))


def stablemax(input: Tensor, dim: int = -1) -> Tensor:
    """StableMax(x)_i = s(x_i) / Σ_j s(x_j) along ``dim`` (Prieto et al., 2025). Half precision → float32."""
    s = _s(_compute_dtype(input))
    return s / s.sum(dim=dim, keepdim=True)


def log_stablemax(input: Tensor, dim: int = -1) -> Tensor:
    """log StableMax(x) along ``dim``, computed as log s(x) − logsumexp(log s(x)). Half precision → float32."""
    ls = _log_s(_compute_dtype(input))
    return ls - torch.logsumexp(ls, dim=dim, keepdim=True)


def stablemax_cross_entropy(
    input: Tensor, target: Tensor, *, reduction: str = "mean", ignore_index: int = -100
) -> Tensor:
    """−log StableMax(input)_target, with ``torch.nn.functional.cross_entropy``'s layout and reductions.

    ``input``: logits (C,), (N, C) or (N, C, d1, ...) — classes along dim 1 as in torch; ``target``: class
    indices of shape (), (N,) or (N, d1, ...). ``reduction``: ``"mean"`` (over non-ignored targets), ``"sum"``
    or ``"none"``; targets equal to ``ignore_index`` contribute 0. Class weights and label smoothing are not
    supported. Half-precision logits are computed (and the loss returned) in float32.
    See the module docstring for the numerically stable form.
    """
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    x = _compute_dtype(input)
    if x.dim() == 0:
        raise ValueError("input must have a class dimension")
    if x.dim() == 1:
        x, target = x.unsqueeze(0), target.unsqueeze(0)
        unbatched = True
    else:
        x = x.movedim(1, -1)
        unbatched = False
    if target.dtype not in (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8):
        raise ValueError("target must hold class indices (an integer tensor)")
    if target.shape != x.shape[:-1]:
        raise ValueError(f"target shape {tuple(target.shape)} does not match input shape {tuple(input.shape)}")
    target = target.long()
    valid = target != ignore_index
    t = torch.where(valid, target, torch.zeros_like(target))
    num_classes = x.shape[-1]
    if bool(((t < 0) | (t >= num_classes)).any()):
        raise IndexError(f"target out of range for {num_classes} classes")
    if num_classes == 1:
        loss = x.squeeze(-1) * 0.0  # a single class has probability 1; keep the graph connected
    else:
        ls = _log_s(x)
        ls_y = ls.gather(-1, t.unsqueeze(-1)).squeeze(-1)
        is_y = torch.zeros_like(ls, dtype=torch.bool).scatter_(-1, t.unsqueeze(-1), True)
        rest = torch.logsumexp(ls.masked_fill(is_y, float("-inf")), dim=-1)  # log Σ_{j≠y} s_j
        loss = torch.logaddexp(torch.zeros_like(rest), rest - ls_y)  # log(1 + e^z), stable both ways
    loss = torch.where(valid, loss, torch.zeros_like(loss))
    if unbatched:
        loss = loss.squeeze(0)
        valid = valid.squeeze(0)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / valid.sum()


class StableMaxCrossEntropyLoss(nn.Module):
    """Module form of :func:`stablemax_cross_entropy` (a drop-in for ``nn.CrossEntropyLoss`` without weights
    or label smoothing)."""

    def __init__(self, reduction: str = "mean", ignore_index: int = -100) -> None:
        super().__init__()
        self.reduction = reduction
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return stablemax_cross_entropy(input, target, reduction=self.reduction, ignore_index=self.ignore_index)
