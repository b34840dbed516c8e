"""Small float64 bilevel problems with known answers, shared by the bilevel tests."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.nn.functional import softplus

from optimlab.bilevel import BilevelProblem

F64 = torch.float64


@dataclass
class Ridge:
    """Per-feature ridge: g = ½‖Xw − y‖²/n + ½ Σ e^{λ_i} w_i², f = ½‖X_v w − y_v‖²/n_v.

    w*(λ) = A⁻¹ Xᵀy/n with A = XᵀX/n + diag(e^λ); since ∂A/∂λ_i = e^{λ_i} e_i e_iᵀ, the hypergradient is
    ∇F(λ)_i = −q_i e^{λ_i} w*_i with q = A⁻¹ ∇_w f(w*)."""

    x: torch.Tensor
    y: torch.Tensor
    xv: torch.Tensor
    yv: torch.Tensor

    @property
    def problem(self) -> BilevelProblem:
        return BilevelProblem(outer=self.outer, inner=self.inner)

    def inner(self, w, lam):
        return 0.5 * ((self.x @ w - self.y) ** 2).mean() + 0.5 * (lam.exp() * w * w).sum()

    def outer(self, w, lam):
        return 0.5 * ((self.xv @ w - self.yv) ** 2).mean()

    def matrix(self, lam):
        return self.x.T @ self.x / len(self.y) + torch.diag(lam.exp())

    def solution(self, lam):
        return torch.linalg.solve(self.matrix(lam), self.x.T @ self.y / len(self.y))

    def hypergradient(self, lam):
        w = self.solution(lam)
        grad_w = self.xv.T @ (self.xv @ w - self.yv) / len(self.yv)
        q = torch.linalg.solve(self.matrix(lam), grad_w)
        return -q * lam.exp() * w

    def curvature(self, lam):
        """(smallest, largest) eigenvalue of the inner Hessian."""
        ev = torch.linalg.eigvalsh(self.matrix(lam))
        return float(ev[0]), float(ev[-1])


def ridge(seed: int = 0, n: int = 40, d: int = 10, nv: int = 40) -> Ridge:
    g = torch.Generator().manual_seed(seed)
    w_true = torch.randn(d, generator=g, dtype=F64) * (torch.rand(d, generator=g, dtype=F64) < 0.5)
    x = torch.randn(n, d, generator=g, dtype=F64)
    xv = torch.randn(nv, d, generator=g, dtype=F64)
    return Ridge(
        x,
        x @ w_true + 0.5 * torch.randn(n, generator=g, dtype=F64),
        xv,
        xv @ w_true + 0.5 * torch.randn(nv, generator=g, dtype=F64),
    )


@dataclass
class Logistic:
    """A non-quadratic problem: ℓ2-logistic regression with per-feature penalties e^λ; f = validation log-loss."""

    x: torch.Tensor
    y: torch.Tensor
    xv: torch.Tensor
    yv: torch.Tensor

    @property
    def problem(self) -> BilevelProblem:
        return BilevelProblem(outer=self.outer, inner=self.inner)

    def inner(self, w, lam):
        return softplus(-self.y * (self.x @ w)).mean() + 0.5 * (lam.exp() * w * w).sum()

    def outer(self, w, lam):
        return softplus(-self.yv * (self.xv @ w)).mean()


def logistic(seed: int = 0, n: int = 30, d: int = 4) -> Logistic:
    g = torch.Generator().manual_seed(seed)
    w_true = torch.randn(d, generator=g, dtype=F64)
    x, xv = torch.randn(n, d, generator=g, dtype=F64), torch.randn(n, d, generator=g, dtype=F64)
    label = lambda a: torch.where(a @ w_true + 0.5 * torch.randn(n, generator=g, dtype=F64) > 0, 1.0, -1.0).to(F64)  # noqa: E731
    return Logistic(x, label(x), xv, label(xv))


@dataclass
class Quadratic:
    """g(w, x) = ½ wᵀAw − wᵀBx, f(w, x) = ½‖w − c‖² + ½ρ‖x‖²: w*(x) = Mx with M = A⁻¹B, and the bilevel solution
    x* = (MᵀM + ρI)⁻¹ Mᵀc."""

    a: torch.Tensor
    b: torch.Tensor
    c: torch.Tensor
    rho: float

    @property
    def problem(self) -> BilevelProblem:
        return BilevelProblem(outer=self.outer, inner=self.inner)

    def inner(self, w, x):
        return 0.5 * w @ (self.a @ w) - w @ (self.b @ x)

    def outer(self, w, x):
        return 0.5 * ((w - self.c) ** 2).sum() + 0.5 * self.rho * (x * x).sum()

    def solution(self):
        m = torch.linalg.solve(self.a, self.b)
        return torch.linalg.solve(m.T @ m + self.rho * torch.eye(m.shape[1], dtype=F64), m.T @ self.c)


def quadratic(seed: int = 0, n: int = 4, m: int = 3, rho: float = 0.1) -> Quadratic:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    a = q @ torch.diag(torch.linspace(1.0, 3.0, n, dtype=F64)) @ q.T
    return Quadratic(a, torch.randn(n, m, generator=g, dtype=F64), torch.randn(n, generator=g, dtype=F64), rho)
