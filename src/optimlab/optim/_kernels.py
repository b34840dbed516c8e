"""Shared per-tensor building blocks for the update functions.

Every hyperparameter reaching these helpers is either a Python number (eager mode: fast fused in-place ops with
``alpha=``/``value=``) or a 0-d tensor (``compile=True``: tensors keep ``torch.compile`` from recompiling when a
scheduler changes the learning rate). The helpers pick the right form, so update functions are written once.
Rule for update functions: use operators and these helpers on hyperparameters, never ``math.*``.
"""

from __future__ import annotations

import torch
from torch import Tensor

Scalar = float | Tensor


def is_zero(x: Scalar) -> bool:
    """True only for a Python zero; a tensor is never treated as zero (no data-dependent branches)."""
    return not isinstance(x, Tensor) and x == 0


def add_scaled_(x: Tensor, y: Tensor, alpha: Scalar) -> Tensor:
    """x += alpha * y."""
    return x.add_(y * alpha) if isinstance(alpha, Tensor) else x.add_(y, alpha=alpha)


def addcdiv_scaled_(x: Tensor, a: Tensor, b: Tensor, value: Scalar) -> Tensor:
    """x += value * a / b."""
    return x.add_(a / b * value) if isinstance(value, Tensor) else x.addcdiv_(a, b, value=value)


def addcmul_scaled_(x: Tensor, a: Tensor, b: Tensor, value: Scalar) -> Tensor:
    """x += value * a * b."""
    return x.add_(a * b * value) if isinstance(value, Tensor) else x.addcmul_(a, b, value=value)


def ema_(avg: Tensor, x: Tensor, beta: Scalar) -> Tensor:
    """avg <- beta * avg + (1 - beta) * x  (exponential moving average)."""
    if isinstance(beta, Tensor):
        return avg.mul_(beta).add_(x * (1 - beta))
    return avg.lerp_(x, 1 - beta)


def ema_sq_(avg: Tensor, x: Tensor, beta: Scalar) -> Tensor:
    """avg <- beta * avg + (1 - beta) * x**2  (second-moment EMA)."""
    return addcmul_scaled_(avg.mul_(beta), x, x, 1 - beta)


def decoupled_decay_(p: Tensor, lr: Scalar, weight_decay: Scalar) -> None:
    """p <- p * (1 - lr * weight_decay)  (decoupled weight decay, Loshchilov & Hutter 2019)."""
    if not is_zero(weight_decay):
        p.mul_(1 - lr * weight_decay)


def coupled_decay(grad: Tensor, p: Tensor, weight_decay: Scalar) -> Tensor:
    """grad + weight_decay * p  (classic L2 regularisation folded into the gradient); returns a new tensor."""
    if is_zero(weight_decay):
        return grad
    return grad + p * weight_decay


def bias_correction(beta: Scalar, step: Scalar) -> Scalar:
    """1 - beta**step  (Adam's debiasing factor)."""
    return 1 - beta**step


def sqrt(x: Scalar) -> Scalar:
    """Square root of a Python number or a 0-d tensor."""
    return x**0.5


def copy_stochastic_(dst: Tensor, src: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Round fp32 ``src`` into the low-precision ``dst`` stochastically (unbiased: E[dst] = src).

    Each value goes to one of its two neighbouring representable values with probability proportional to
    closeness. For bfloat16 this adds uniform random bits below bf16's mantissa and truncates (exact, cheap);
    for other dtypes it picks between the round-to-nearest value and its neighbour on the other side of src.
    """
    src = src.float()
    if dst.dtype == torch.bfloat16:
        bits = src.view(torch.int32)
        noise = torch.randint(0, 1 << 16, src.shape, device=src.device, dtype=torch.int32, generator=generator)
        rounded = ((bits + noise) & -65536).view(torch.float32)  # clear the 16 low bits: truncate to bf16
        # ints that overflow into inf/nan stay as the round-to-nearest value
        rounded = torch.where(torch.isfinite(rounded) | ~torch.isfinite(src), rounded, src)
        return dst.copy_(rounded)
    nearest = src.to(dst.dtype)
    near32 = nearest.float()
    up = src > near32
    away = torch.where(up, torch.full_like(nearest, float("inf")), torch.full_like(nearest, -float("inf")))
    other = torch.nextafter(nearest, away)  # the neighbour on src's other side, in dst's own precision
    gap = other.float() - near32
    prob = torch.where((gap != 0) & torch.isfinite(gap), (src - near32) / gap, torch.zeros_like(src))
    u = torch.rand(src.shape, device=src.device, generator=generator)
    return dst.copy_(torch.where(u < prob, other, nearest))
