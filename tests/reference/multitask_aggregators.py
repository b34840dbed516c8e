"""Plain references of the aggregators, written in the space of the gradients (rows of J), never through the
Gramian: each follows its paper's own statement.

* UPGrad (Quinton & Rey 2024, Eq. 3–5): π_J(g) = argmin_{x : Jx ≥ 0} ‖x − g‖², solved through its dual
  min_{λ ≥ 0} ‖g + Jᵀλ‖² (non-negative least squares, scipy's Lawson–Hanson), x = g + Jᵀλ; d = Σ p_i π_J(g_i).
* MGDA (Sener & Koltun 2018, Algorithms 1–2): Frank–Wolfe on the convex hull, with the two-vector line search on
  vectors θ and g_t.
* PCGrad (Yu et al. 2020, Algorithm 1): vector projections, one torch.randperm(m) per task.
* CAGrad (Liu et al. 2021, Algorithm 1): the simplex problem solved by scipy's SLSQP (as the authors' code does).
* IMTL-G (Liu et al. 2021, Eq. 10 of the ICLR paper): D = [g₁ − g_i]ᵀ, U = [u₁ − u_i]ᵀ (i = 2..m),
  α₂..ₘ = g₁Uᵀ(DUᵀ)⁻¹, α₁ = 1 − Σ α₂..ₘ, d = Σ α_i g_i.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import minimize, nnls


def upgrad(J: torch.Tensor, pref: torch.Tensor | None = None) -> torch.Tensor:
    Jn = J.double().numpy()
    m = Jn.shape[0]
    p = np.full(m, 1.0 / m) if pref is None else pref.double().numpy()
    d = np.zeros(Jn.shape[1])
    for i in range(m):
        g = Jn[i]
        lam, _ = nnls(Jn.T, -g, maxiter=100 * m)
        d += p[i] * (g + Jn.T @ lam)
    return torch.from_numpy(d)


def mgda(J: torch.Tensor, epsilon: float = 1e-3, max_iters: int = 100) -> torch.Tensor:
    rows = [r for r in J.double()]
    m = len(rows)
    alpha = [1.0 / m] * m
    for _ in range(max_iters):
        theta = sum(a * r for a, r in zip(alpha, rows))
        t = min(range(m), key=lambda r: float(theta @ rows[r]))
        b = rows[t]
        # Algorithm 1 on (θ, b): argmin_γ ‖(1 − γ)θ + γ b‖²
        tt, tb, bb = float(theta @ theta), float(theta @ b), float(b @ b)
        if tb >= bb:
            gamma = 1.0
        elif tb >= tt:
            gamma = 0.0
        else:
            gamma = float((b - theta) @ (-theta)) / float((b - theta) @ (b - theta))
        alpha = [(1 - gamma) * a for a in alpha]
        alpha[t] += gamma
        if gamma < epsilon:
            break
    return sum(a * r for a, r in zip(alpha, rows))


def pcgrad(J: torch.Tensor) -> torch.Tensor:
    """Uses the global RNG: one torch.randperm(m) per task, in task order."""
    rows = [r for r in J.double()]
    m = len(rows)
    out = torch.zeros_like(rows[0])
    for i in range(m):
        order = torch.randperm(m)
        gpc = rows[i].clone()
        for j in order.tolist():
            if j == i:
                continue
            dot = gpc @ rows[j]
            if dot < 0:
                gpc = gpc - dot / (rows[j] @ rows[j]) * rows[j]
        out += gpc
    return out


def cagrad(J: torch.Tensor, c: float, rescale: bool = False) -> torch.Tensor:
    Jn = J.double().numpy()
    m = Jn.shape[0]
    g0 = Jn.mean(0)
    sqrt_phi = c * np.linalg.norm(g0)

    def objective(w):
        gw = Jn.T @ w
        return gw @ g0 + sqrt_phi * np.sqrt(gw @ gw + 1e-30)

    res = minimize(
        objective,
        np.full(m, 1.0 / m),
        bounds=[(0.0, 1.0)] * m,
        constraints=({"type": "eq", "fun": lambda w: w.sum() - 1.0},),
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    gw = Jn.T @ res.x
    d = g0 + sqrt_phi / np.linalg.norm(gw) * gw
    return torch.from_numpy(d / (1 + c**2) if rescale else d)


def imtlg(J: torch.Tensor) -> torch.Tensor:
    G = J.double()
    u = G / G.norm(dim=1, keepdim=True)
    D = G[0:1] - G[1:]
    U = u[0:1] - u[1:]
    alpha_rest = G[0] @ U.T @ torch.linalg.inv(D @ U.T)
    alpha = torch.cat([(1 - alpha_rest.sum()).reshape(1), alpha_rest])
    return alpha @ G
