"""Aggregators: map the m×n Jacobian J (one row per objective) to one n-vector update direction.

Every aggregator here is a *Gramian weighting*: it computes task weights w ∈ ℝᵐ from G = J Jᵀ alone and returns
d = Jᵀ w. ``aggregator(J)`` does both; ``aggregator.weights(G)`` gives the weights, which is what
:func:`optimlab.multitask.jacobian_backward` uses (it never concatenates the Jacobian, and under DDP the weights are
computed from the all-reduced per-task gradients). Weights are computed in float64.

* :class:`Mean`, :class:`Sum` — the scalarized baselines (ERM).
* :class:`UPGrad` — Quinton & Rey (2024), *Jacobian Descent for Multi-Objective Optimization*, arXiv:2406.16232:
  the mean of each row projected onto the dual cone {x : Jx ≥ 0}; never conflicts with any objective.
* :class:`MGDA` — Désidéri (2012), *Multiple-gradient descent algorithm (MGDA) for multiobjective optimization*;
  solved by the Frank–Wolfe method of Sener & Koltun (2018), *Multi-Task Learning as Multi-Objective
  Optimization*, arXiv:1810.04650 (Algorithm 2): the min-norm point of the convex hull of the rows.
* :class:`PCGrad` — Yu et al. (2020), *Gradient Surgery for Multi-Task Learning*, arXiv:2001.06782 (Algorithm 1).
* :class:`CAGrad` — Liu et al. (2021), *Conflict-Averse Gradient Descent for Multi-task Learning*,
  arXiv:2110.14048 (Algorithm 1).
* :class:`IMTLG` — Liu et al. (2021), *Towards Impartial Multi-task Learning* (ICLR), the gradient part IMTL-G,
  in the Gramian form of Quinton & Rey (2024) that also accepts linearly dependent rows.

Conventions (torchjd's, so that its aggregators are drop-in equal, tested to 1e-6): UPGrad normalizes G by its
trace (``norm_eps``) and adds ``reg_eps``·I before the projections; MGDA stops Frank–Wolfe when the step
γ < ``epsilon`` or after ``max_iters``; PCGrad draws one random order per task from ``generator`` (the global RNG
when None; under DDP give every rank an identically seeded generator).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._qp import nonneg_qp, project_simplex

__all__ = ["CAGrad", "IMTLG", "MGDA", "Aggregator", "Mean", "PCGrad", "Sum", "UPGrad", "gramian_of"]


def gramian_of(jacobian: Tensor) -> Tensor:
    """G = J Jᵀ in float64 for an m×n (or m×…) Jacobian."""
    j = jacobian.reshape(jacobian.shape[0], -1).to(torch.float64)
    return j @ j.T


def _nonneg(name: str, value: float) -> float:
    value = float(value)
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def _positive(name: str, value: float) -> float:
    value = float(value)
    if not (value > 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or int(value) != value or int(value) < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


class Aggregator:
    """Base class: ``weights(G)`` from the Gramian; ``__call__(J)`` returns Jᵀ weights(J Jᵀ)."""

    def weights(self, gramian: Tensor) -> Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, jacobian: Tensor) -> Tensor:
        if jacobian.dim() != 2:
            shape = tuple(jacobian.shape)
            raise ValueError(f"jacobian must be a matrix (m objectives × n parameters), got shape {shape}")
        w = self.weights(gramian_of(jacobian))
        return w.to(jacobian.dtype) @ jacobian

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Mean(Aggregator):
    """The average of the rows (the gradient of the mean loss)."""

    def weights(self, gramian: Tensor) -> Tensor:
        m = gramian.shape[0]
        return torch.full((m,), 1.0 / m, dtype=torch.float64, device=gramian.device)


class Sum(Aggregator):
    """The sum of the rows (the gradient of the summed loss)."""

    def weights(self, gramian: Tensor) -> Tensor:
        return torch.ones(gramian.shape[0], dtype=torch.float64, device=gramian.device)


def _normalized(gramian: Tensor, eps: float) -> Tensor:
    """G / tr(G), or 0 when tr(G) < eps (J is numerically zero)."""
    g = gramian.to(torch.float64)
    tr = g.diagonal().sum()
    return torch.zeros_like(g) if float(tr) < eps else g / tr


class UPGrad(Aggregator):
    """Unconflicting projection of gradients (Quinton & Rey, 2024, arXiv:2406.16232).

    Each row g_i = Jᵀe_i is projected onto the dual cone of the rows, π(g_i) = Jᵀw⁽ⁱ⁾ with
    w⁽ⁱ⁾ = argmin_{v ≥ e_i} vᵀGv (their Proposition 1), and the update is Σ_i p_i π(g_i) with the preference
    vector p (uniform 1/m by default). Because every π(g_i) has J π(g_i) ≥ 0, so has the update: no objective
    increases to first order. Each projection is an m-dimensional non-negative QP solved exactly (active set).

    ``norm_eps``, ``reg_eps``: G is divided by its trace (unless the trace is below ``norm_eps``) and ``reg_eps``·I
    is added, as in torchjd; ``reg_eps = 0`` gives the exact projection (then J d ≥ 0 holds to rounding).
    """

    def __init__(self, pref_vector: Tensor | None = None, *, norm_eps: float = 1e-4, reg_eps: float = 1e-4) -> None:
        self.pref_vector = None if pref_vector is None else torch.as_tensor(pref_vector, dtype=torch.float64)
        if self.pref_vector is not None and (self.pref_vector.dim() != 1 or bool((self.pref_vector < 0).any())):
            raise ValueError("pref_vector must be a 1-D tensor of non-negative weights")
        self.norm_eps = _nonneg("norm_eps", norm_eps)
        self.reg_eps = _nonneg("reg_eps", reg_eps)

    def weights(self, gramian: Tensor) -> Tensor:
        m = gramian.shape[0]
        g = _normalized(gramian, self.norm_eps)
        g = g + self.reg_eps * torch.eye(m, dtype=g.dtype, device=g.device)
        if self.pref_vector is None:
            pref = torch.full((m,), 1.0 / m, dtype=g.dtype, device=g.device)
        else:
            if self.pref_vector.numel() != m:
                raise ValueError(f"pref_vector has {self.pref_vector.numel()} entries for {m} objectives")
            pref = self.pref_vector.to(g.device)
        # one QP per row i: min_{v ≥ u} vᵀGv with u = p_i e_i; v = u + s, s ≥ 0: min_s ½ sᵀGs + (Gu)ᵀs
        U = torch.diag(pref)
        keep = pref != 0
        V = U.clone()
        if bool(keep.any()):
            V[keep] += nonneg_qp(g, U[keep] @ g)
        return V.sum(0)


class MGDA(Aggregator):
    """Min-norm point of the convex hull of the rows (Désidéri, 2012) by Frank–Wolfe (Sener & Koltun, 2018,
    arXiv:1810.04650, Algorithm 2): α ← 1/m; repeatedly move towards the vertex e_t, t = argmin_r (Gα)_r, with the
    exact line search of their Algorithm 1, until the step γ < ``epsilon`` or ``max_iters`` steps."""

    def __init__(self, epsilon: float = 1e-3, max_iters: int = 100) -> None:
        self.epsilon = _positive("epsilon", epsilon)
        self.max_iters = _positive_int("max_iters", max_iters)

    def weights(self, gramian: Tensor) -> Tensor:
        g = gramian.to(torch.float64)
        m = g.shape[0]
        alpha = torch.full((m,), 1.0 / m, dtype=g.dtype, device=g.device)
        for _ in range(self.max_iters):
            g_alpha = g @ alpha
            t = int(g_alpha.argmin())
            aa = float(alpha @ g_alpha)  # ‖θ‖², θ = Jᵀα
            ab = float(g_alpha[t])  # θᵀg_t
            bb = float(g[t, t])  # ‖g_t‖²
            if bb <= ab:
                gamma = 1.0
            elif aa <= ab:
                gamma = 0.0
            else:
                gamma = (aa - ab) / (aa + bb - 2.0 * ab)
            alpha = (1.0 - gamma) * alpha
            alpha[t] += gamma
            if gamma < self.epsilon:
                break
        return alpha


class PCGrad(Aggregator):
    """Projecting conflicting gradients (Yu et al., 2020, arXiv:2001.06782, Algorithm 1): for each task i,
    g_i^PC ← g_i and, over the other tasks j in a random order, g_i^PC ← g_i^PC − (g_i^PC·g_j / ‖g_j‖²) g_j
    whenever g_i^PC·g_j < 0; the update is Σ_i g_i^PC. Kept in weight space: g_i^PC = Jᵀc⁽ⁱ⁾."""

    def __init__(self, generator: torch.Generator | None = None) -> None:
        self.generator = generator

    def weights(self, gramian: Tensor) -> Tensor:
        g = gramian.to(torch.float64).cpu()
        m = g.shape[0]
        total = torch.zeros(m, dtype=g.dtype)
        for i in range(m):
            order = torch.randperm(m, generator=self.generator)
            c = torch.zeros(m, dtype=g.dtype)
            c[i] = 1.0
            for j in order.tolist():
                if j == i:
                    continue
                dot = g[j] @ c  # g_i^PC · g_j
                if dot < 0.0:
                    c[j] -= dot / g[j, j]
            total += c
        return total.to(gramian.device)


class CAGrad(Aggregator):
    """Conflict-averse gradient descent (Liu et al., 2021, arXiv:2110.14048, Algorithm 1).

    With g₀ the mean gradient and φ = c²‖g₀‖²: w = argmin_{w ∈ Δ} g_wᵀg₀ + √φ‖g_w‖ (g_w = Jᵀw), and
    d = g₀ + (√φ/‖g_w‖) g_w. ``rescale=True`` divides d by 1 + c² (the authors' code's default; the paper's
    algorithm has no rescaling). The inner problem over the simplex is solved by projected gradient with
    backtracking (``max_iters``, ``tol``) on the trace-normalized Gramian (the argmin is scale-invariant).
    When ‖g_w‖ vanishes (the mean is Pareto-stationary to first order) the weights are zero."""

    def __init__(
        self,
        c: float = 0.4,
        *,
        rescale: bool = False,
        max_iters: int = 2000,
        tol: float = 1e-12,
        norm_eps: float = 1e-4,
    ) -> None:
        self.c = _nonneg("c", c)
        self.rescale = bool(rescale)
        self.max_iters = _positive_int("max_iters", max_iters)
        self.tol = _positive("tol", tol)
        self.norm_eps = _nonneg("norm_eps", norm_eps)

    def _solve(self, g: Tensor, b: Tensor, sqrt_phi: float) -> Tensor:
        m = g.shape[0]

        def f(w: Tensor) -> float:
            return float(w @ b + sqrt_phi * torch.sqrt((w @ g @ w).clamp_min(0.0)))

        w = torch.full((m,), 1.0 / m, dtype=g.dtype, device=g.device)
        step = 1.0
        fw = f(w)
        for _ in range(self.max_iters):
            norm = torch.sqrt((w @ g @ w).clamp_min(1e-300))
            grad = b + sqrt_phi * (g @ w) / norm
            while True:
                cand = project_simplex(w - step * grad)
                fc = f(cand)
                if fc <= fw - 0.5 / step * float((cand - w) @ (cand - w)) or step < 1e-12:
                    break
                step *= 0.5
            moved = float((cand - w).abs().max())
            w, fw = cand, fc
            step *= 2.0
            if moved < self.tol:
                break
        return w

    def weights(self, gramian: Tensor) -> Tensor:
        g = _normalized(gramian, self.norm_eps)
        m = g.shape[0]
        mean = torch.full((m,), 1.0 / m, dtype=g.dtype, device=g.device)
        b = g @ mean  # G·1/m: b_i = g_iᵀg₀
        g0_norm = math.sqrt(max(float(mean @ b), 0.0))
        sqrt_phi = self.c * g0_norm
        if sqrt_phi == 0.0:
            out = mean
        else:
            w = self._solve(g, b, sqrt_phi)
            gw_norm = math.sqrt(max(float(w @ g @ w), 0.0))
            if gw_norm < self.norm_eps:
                return torch.zeros(m, dtype=g.dtype, device=g.device)
            out = mean + (sqrt_phi / gw_norm) * w
        return out / (1.0 + self.c**2) if self.rescale else out


class IMTLG(Aggregator):
    """IMTL-G (Liu et al., 2021, ICLR): the convex-affine combination d = Jᵀα, Σα = 1, whose projections on every
    unit gradient u_i = g_i/‖g_i‖ are equal. In Gramian form, α ∝ G⁺ s with s_i = ‖g_i‖ (Quinton & Rey, 2024,
    which also covers linearly dependent rows); the weights are 0 when Σ G⁺s vanishes."""

    def weights(self, gramian: Tensor) -> Tensor:
        g = gramian.to(torch.float64)
        s = g.diagonal().clamp_min(0.0).sqrt()
        v = torch.linalg.pinv(g) @ s
        total = v.sum()
        return torch.zeros_like(v) if float(total.abs()) < 1e-12 else v / total
