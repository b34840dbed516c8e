"""F2SA: a fully first-order method for bilevel optimization (Kwon, Kwon, Wright & Nowak 2023, *A Fully First-Order
Method for Stochastic Bilevel Optimization*, ICML, arXiv:2301.10945, Algorithm 1).

The value-function penalty ``L_μ(λ, w) = f(w, λ) + μ (g(w, λ) − min_z g(z, λ))`` replaces the inverse Hessian:
its minimizer ``w_μ(λ)`` and the inner solution ``z*(λ)`` give

    ∇_λ L_μ = ∇_λ f(w_μ, λ) + μ (∇_λ g(w_μ, λ) − ∇_λ g(z*, λ))  →  ∇F(λ)   with error O(1/μ),

so only gradients are needed. Outer iteration k with multiplier μ_k:

    repeat inner_steps times:   z ← z − γ ∇_w g(z, λ);    w ← w − (γ/μ_k) (∇_w f(w, λ) + μ_k ∇_w g(w, λ))
    λ ← λ − outer_lr · [∇_λ f(w, λ) + μ_k (∇_λ g(w, λ) − ∇_λ g(z, λ))]
    μ_{k+1} = min(μ_k + δ, μ_max)

The step on ``w`` is the paper's α_k with α_k μ_k = γ (both inner sequences then move at the speed of g's
curvature); the multiplier grows linearly here (the paper's δ_k schedules are polynomial), which is a choice.
"""

from __future__ import annotations

from torch import Tensor

from ._method import HyperMethod, eager_grads
from .hypergradient import BilevelProblem, check_lr
from .linear_solve import _check_positive_int


class F2SA(HyperMethod):
    """Fully first-order bilevel method: two copies of the inner variables (``w`` for the penalized problem, ``z`` for
    the inner one) and an increasing penalty multiplier ``μ_k = min(multiplier + k·multiplier_increment,
    max_multiplier)``. ``inner_lr`` is γ (z's step; w's is γ/μ_k), ``inner_steps`` the inner iterations per outer
    step; ``outer_lr`` and ``bounds`` as in :class:`~optimlab.bilevel.HyperMethod`."""

    state_names = (*HyperMethod.state_names, "z")

    def __init__(
        self,
        problem: BilevelProblem,
        lam: Tensor,
        w: Tensor,
        *,
        outer_lr: float,
        inner_lr: float,
        bounds: tuple[float, float] | None = None,
        inner_steps: int = 10,
        multiplier: float = 1.0,
        multiplier_increment: float = 1.0,
        max_multiplier: float = 1e3,
    ) -> None:
        super().__init__(problem, lam, w, outer_lr=outer_lr, bounds=bounds)
        check_lr("inner_lr", inner_lr)
        _check_positive_int("inner_steps", inner_steps, 1)
        check_lr("multiplier", multiplier)
        if not (multiplier_increment >= 0.0):
            raise ValueError(f"multiplier_increment must be ≥ 0, got {multiplier_increment!r}")
        if not (max_multiplier >= multiplier):
            raise ValueError(f"max_multiplier must be ≥ multiplier ({multiplier}), got {max_multiplier!r}")
        self.inner_lr, self.inner_steps = inner_lr, inner_steps
        self.multiplier, self.multiplier_increment = multiplier, multiplier_increment
        self.max_multiplier = max_multiplier
        self.z = self.w.clone()

    def current_multiplier(self) -> float:
        """μ_k at the current outer step."""
        return min(self.multiplier + int(self.outer_step) * self.multiplier_increment, self.max_multiplier)

    def hypergradient(self) -> Tensor:
        mu, gamma, problem, lam = self.current_multiplier(), self.inner_lr, self.problem, self.lam
        w, z = self.w, self.z
        for _ in range(self.inner_steps):
            z = z - gamma * eager_grads(problem.inner, z, lam)[0]
            w = w - (gamma / mu) * (eager_grads(problem.outer, w, lam)[0] + mu * eager_grads(problem.inner, w, lam)[0])
        self.w, self.z = w, z
        grad_lam_f = eager_grads(problem.outer, w, lam)[1]
        return grad_lam_f + mu * (eager_grads(problem.inner, w, lam)[1] - eager_grads(problem.inner, z, lam)[1])
