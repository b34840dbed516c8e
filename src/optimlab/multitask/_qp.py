"""Small dense solvers behind the aggregators: every problem lives in the m-dimensional space of task weights
(m = number of objectives), so they are solved exactly in float64 with plain torch linear algebra.

* :func:`nonneg_qp` — min_s ½ sᵀGs + cᵀs subject to s ≥ 0 for a batch of linear terms c, by the primal
  active-set method of Lawson & Hanson (*Solving Least Squares Problems*, 1974, ch. 23) written for a PSD
  quadratic form and run on all problems of the batch at once: finite, exact up to rounding.
* :func:`project_simplex` — Euclidean projection onto the probability simplex (sort-based, Held et al. 1974).
"""

from __future__ import annotations

import torch
from torch import Tensor

#: outer iterations that free all violating coordinates at once before falling back to one at a time
_BLOCK_ITERS = 1
#: relative residual above which a free-set solve falls back to SVD least squares
_RESIDUAL = 1e-12


def _solve_free(G: Tensor, C: Tensor, free: Tensor) -> Tensor:
    """For every row k: the minimizer of ½ zᵀGz + c_kᵀz over the coordinates free[k] (the others held at 0),
    i.e. G_FF z_F = −c_F. LU with one step of iterative refinement; where the free block is (nearly) singular —
    duplicated, zero or dependent rows of J — and LU's residual is not small, SVD least squares (minimum norm)."""
    mask = free.to(G.dtype)
    A = mask[:, :, None] * G[None] * mask[:, None, :] + torch.diag_embed(1.0 - mask)
    rhs = (-C * mask).unsqueeze(-1)
    sol, info = torch.linalg.solve_ex(A, rhs)
    ok = (info == 0) & torch.isfinite(sol).all(dim=(1, 2))
    if bool(ok.all()):
        sol = sol - torch.linalg.solve_ex(A, A @ sol - rhs)[0]  # iterative refinement
        resid = (A @ sol - rhs).norm(dim=(1, 2))
        size = A.abs().amax(dim=(1, 2)) * sol.norm(dim=(1, 2)) + rhs.norm(dim=(1, 2))
        ok = torch.isfinite(sol).all(dim=(1, 2)) & (resid <= _RESIDUAL * size.clamp_min(1e-300))
    if not bool(ok.all()):
        bad = ~ok
        sol = sol.clone()
        sol[bad] = torch.linalg.lstsq(A[bad], rhs[bad], driver="gelsd").solution
    return sol.squeeze(-1) * mask


def nonneg_qp(G: Tensor, c: Tensor, *, tol: float = 1e-13, max_iter: int | None = None) -> Tensor:
    """argmin_{s ≥ 0} ½ sᵀGs + cᵀs for a symmetric PSD ``G`` (m×m) and ``c`` of shape (m,) or (K, m) — K problems
    sharing G, solved together — in float64.

    Active-set iteration: move the coordinates with a negative gradient into the free set (all of them for the
    first few iterations, then only the most negative one, Lawson–Hanson's rule), solve the
    unconstrained problem on the free set, and step back to the feasible boundary while a free coordinate would
    turn negative. Stops when every fixed coordinate has a non-negative gradient (the KKT conditions)."""
    G = G.to(torch.float64)
    single = c.dim() == 1
    C = c.to(torch.float64).reshape(-1, G.shape[0])
    K, m = C.shape
    scale = max(float(G.diagonal().abs().max()) if m else 0.0, float(C.abs().max()) if C.numel() else 0.0, 1e-300)
    S = torch.zeros_like(C)
    free = torch.zeros(K, m, dtype=torch.bool, device=C.device)
    rows = torch.arange(K, device=C.device)
    limit = max_iter if max_iter is not None else 3 * m + 10
    for it in range(limit + _BLOCK_ITERS):
        grad = S @ G + C
        candidates = (~free) & (grad < -tol * scale)
        active = candidates.any(1)
        if not bool(active.any()):
            break
        if it < _BLOCK_ITERS:  # first free every violating coordinate at once (usually reaches the solution fast)
            free |= candidates
        else:  # then Lawson–Hanson's one coordinate at a time (finite termination)
            j = torch.where(candidates, grad, torch.zeros_like(grad)).argmin(1)
            free[rows[active], j[active]] = True
        inner = active.clone()
        for _ in range(m + 1):
            Z = _solve_free(G, C, free)
            bad = free & (Z <= 0) & inner[:, None]
            done = inner & ~bad.any(1)
            S = torch.where(done[:, None], Z, S)
            inner &= ~done
            if not bool(inner.any()):
                break
            # largest step from S towards Z that keeps every free coordinate non-negative
            ratios = torch.where(bad, S / (S - Z), torch.full_like(S, float("inf")))
            alpha = ratios.min(1).values.clamp(0.0, 1.0)
            alpha = torch.where(inner, alpha, torch.zeros_like(alpha))
            S = torch.where(inner[:, None], S + alpha[:, None] * (Z - S), S)
            thresh = tol * S.abs().amax(1, keepdim=True).clamp_min(1e-300)
            free = torch.where(inner[:, None], free & (S > thresh), free)
            S = torch.where(free, S, torch.zeros_like(S))
    S = S.clamp_min(0.0)
    return S[0] if single else S


def project_simplex(v: Tensor) -> Tensor:
    """Euclidean projection of ``v`` onto {w ≥ 0, Σ w = 1}."""
    u, _ = torch.sort(v, descending=True)
    css = u.cumsum(0) - 1.0
    k = torch.arange(1, v.numel() + 1, dtype=v.dtype, device=v.device)
    rho = int((u - css / k > 0).nonzero().max())
    theta = css[rho] / (rho + 1)
    return (v - theta).clamp_min(0.0)
