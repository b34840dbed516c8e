"""Small dense solvers behind the aggregators: every problem lives in the m-dimensional space of task weights
(m = number of objectives), so they are solved exactly in float64 with plain torch linear algebra.

* :func:`nonneg_qp` — min_s ½ sᵀGs + cᵀs subject to s ≥ 0, by the primal active-set method of Lawson & Hanson
  (*Solving Least Squares Problems*, 1974, ch. 23) written for a PSD quadratic form: finite, exact up to rounding.
* :func:`project_simplex` — Euclidean projection onto the probability simplex (sort-based, Held et al. 1974).
"""

from __future__ import annotations

import torch
from torch import Tensor


def _solve_free(G: Tensor, c: Tensor, free: Tensor) -> Tensor:
    """The minimizer of ½ sᵀGs + cᵀs over the coordinates in ``free`` (the others held at 0): G_FF z = −c_F,
    least squares where G_FF is singular (G is only PSD)."""
    idx = free.nonzero().flatten()
    z = torch.zeros_like(c)
    if idx.numel() == 0:
        return z
    gff = G[idx][:, idx]
    rhs = -c[idx]
    sol = torch.linalg.lstsq(gff, rhs.unsqueeze(-1), driver="gelsd").solution.squeeze(-1)
    z[idx] = sol
    return z


def nonneg_qp(G: Tensor, c: Tensor, *, tol: float = 1e-13, max_iter: int | None = None) -> Tensor:
    """argmin_{s ≥ 0} ½ sᵀGs + cᵀs for a symmetric PSD ``G`` (m×m) and ``c`` (m), in float64.

    Active-set iteration: move the coordinate with the most negative gradient into the free set, solve the
    unconstrained problem on the free set, and step back to the feasible boundary while a free coordinate would
    turn negative. Stops when every fixed coordinate has a non-negative gradient (the KKT conditions)."""
    G = G.to(torch.float64)
    c = c.to(torch.float64)
    m = c.numel()
    scale = max(float(G.diagonal().abs().max()) if m else 0.0, float(c.abs().max()) if m else 0.0, 1e-300)
    s = torch.zeros_like(c)
    free = torch.zeros(m, dtype=torch.bool, device=c.device)
    limit = max_iter if max_iter is not None else 3 * m + 10
    for _ in range(limit):
        grad = G @ s + c
        candidates = (~free) & (grad < -tol * scale)
        if not bool(candidates.any()):
            break
        j = int(torch.where(candidates, grad, torch.zeros_like(grad)).argmin())
        free[j] = True
        for _ in range(m + 1):
            z = _solve_free(G, c, free)
            bad = free & (z <= 0)
            if not bool(bad.any()):
                s = z
                break
            # largest step from s towards z that keeps every free coordinate non-negative
            ratios = torch.where(bad, s / (s - z), torch.full_like(s, float("inf")))
            alpha = float(ratios.min().clamp(0.0, 1.0))
            s = s + alpha * (z - s)
            free &= s > tol * max(float(s.abs().max()), 1e-300)
            s = torch.where(free, s, torch.zeros_like(s))
    return s.clamp_min(0.0)


def project_simplex(v: Tensor) -> Tensor:
    """Euclidean projection of ``v`` onto {w ≥ 0, Σ w = 1}."""
    u, _ = torch.sort(v, descending=True)
    css = u.cumsum(0) - 1.0
    k = torch.arange(1, v.numel() + 1, dtype=v.dtype, device=v.device)
    rho = int((u - css / k > 0).nonzero().max())
    theta = css[rho] / (rho + 1)
    return (v - theta).clamp_min(0.0)
