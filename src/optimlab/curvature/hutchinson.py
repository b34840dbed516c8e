"""Hutchinson estimators of the Hessian diagonal and trace, and AdaHessian's spatial averaging.

Hutchinson (1989), *A stochastic estimator of the trace of the influence matrix for Laplacian smoothing
splines*: for a random probe z with E[z zᵀ] = I, E[zᵀ H z] = tr(H). Bekas, Kokiopoulou & Saad (2007) use the
same probes for the diagonal: E[z ⊙ H z] = diag(H), since E[z_i (Hz)_i] = Σ_j H_ij E[z_i z_j] = H_ii.

Per probe and coordinate i the variance is

* Rademacher (z_i = ±1): Var[z_i (Hz)_i] = Σ_{j≠i} H_ij² (exact on a diagonal H), and Var[zᵀHz] = 2 Σ_{i≠j} H_ij²;
* Gaussian: Var[z_i (Hz)_i] = 2 H_ii² + Σ_{j≠i} H_ij² = H_ii² + ‖H_i,:‖², and Var[zᵀHz] = 2 ‖H‖_F².

Rademacher probes are the default (lower variance; what AdaHessian, Yao et al. 2021, arXiv:2006.00719, and
Sophia-H, Liu et al. 2023, arXiv:2305.14342, use). The trace estimate is the sum of the diagonal estimate.

:func:`spatial_average` is AdaHessian's variance reduction for convolution kernels: the diagonal estimate is
replaced by its absolute value averaged over the kernel's spatial dimensions (or over fixed-size blocks).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .hvp import HVPFn
from .rng import random_probes
from .vectors import check_like, work_dtype


def hutchinson_diagonal(
    hvp_fn: HVPFn,
    params: Sequence[Tensor],
    generator: torch.Generator,
    *,
    num_samples: int = 1,
    distribution: str = "rademacher",
) -> list[Tensor]:
    """Unbiased estimate of diag(H): the mean of z ⊙ (H z) over ``num_samples`` probes.

    Args:
        hvp_fn: ``vectors -> H vectors`` on lists shaped like ``params``, e.g.
            ``functools.partial(optimlab.curvature.hvp, grads, params)`` (graph retained between probes).
        params: tensors giving the shapes, dtypes and devices of the probes (usually the parameters).
        generator: the source of the probes (see :mod:`optimlab.curvature.rng` to save/restore its state).
        num_samples: number of probes averaged.
        distribution: ``"rademacher"`` (default) or ``"gaussian"``.

    Returns:
        One tensor per parameter, in at least float32 (bf16/fp16 estimates are accumulated in float32).
    """
    if int(num_samples) < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples}")
    params = list(params)
    acc = [torch.zeros(p.shape, dtype=work_dtype(p.dtype), device=p.device) for p in params]
    for _ in range(int(num_samples)):
        z = random_probes(params, generator, distribution)
        hz = list(hvp_fn(z))
        check_like(hz, params, "hvp_fn output")
        for a, zi, hzi in zip(acc, z, hz):
            a.add_(zi.to(a.dtype) * hzi.to(a.dtype))
    if num_samples > 1:
        for a in acc:
            a.div_(num_samples)
    return acc


def hutchinson_trace(
    hvp_fn: HVPFn,
    params: Sequence[Tensor],
    generator: torch.Generator,
    *,
    num_samples: int = 1,
    distribution: str = "rademacher",
) -> Tensor:
    """Unbiased estimate of tr(H): the mean of zᵀ H z over ``num_samples`` probes (a 0-d tensor).

    Arguments as for :func:`hutchinson_diagonal`; with the same generator state both see the same probes and
    the trace estimate equals the sum of the diagonal estimate.
    """
    diag = hutchinson_diagonal(hvp_fn, params, generator, num_samples=num_samples, distribution=distribution)
    return sum((d.sum() for d in diag[1:]), start=diag[0].sum())


def spatial_average(
    diag: Tensor,
    *,
    absolute: bool = True,
    block_size: int | None = None,
    keepdim: bool = False,
) -> Tensor:
    """AdaHessian's spatial averaging of a Hessian-diagonal estimate (Yao et al. 2021, arXiv:2006.00719, §3.3).

    * ``block_size=None`` (default): a tensor with 3 or more dims is taken as a convolution kernel
      ``(out, in, *spatial)`` and averaged over its spatial dims (the 3×3 block of a 2-D conv, the width of a
      1-D conv); 0/1/2-D tensors are returned elementwise (block size 1), as in the authors' image
      classification code.
    * ``block_size=b``: the flattened tensor is averaged over consecutive blocks of ``b`` entries (the authors'
      option for dense layers); ``numel`` must be divisible by ``b``.

    Args:
        diag: the diagonal estimate (e.g. from :func:`hutchinson_diagonal`).
        absolute: average ``|diag|`` (the authors' choice: the magnitude of z ⊙ Hz, which equals ``|Hz|`` for
            Rademacher z) rather than the signed values.
        block_size: see above.
        keepdim: for the spatial case, return the reduced shape ``(out, in, 1, ..., 1)`` (broadcastable)
            instead of a tensor of ``diag``'s shape.
    """
    d = diag.abs() if absolute else diag
    if block_size is not None:
        b = int(block_size)
        if b < 1 or d.numel() % b != 0:
            raise ValueError(f"block_size must be >= 1 and divide numel={d.numel()}, got {block_size}")
        return d.reshape(-1, b).mean(dim=1, keepdim=True).expand(-1, b).reshape(d.shape)
    if d.dim() <= 2:
        return d if d is not diag else d.clone()
    mean = d.mean(dim=tuple(range(2, d.dim())), keepdim=True)
    return mean if keepdim else mean.expand_as(d).contiguous()
