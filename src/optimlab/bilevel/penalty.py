"""The value-function penalty method PBGD (Shen & Chen 2023, *On Penalty-based Bilevel Gradient Descent Method*,
ICML, arXiv:2302.05185, V-PBGD).

With a fixed penalty γ, gradient descent jointly on (λ, w) for

    f(w, λ) + γ (g(w, λ) − v(λ)),        v(λ) = min_z g(z, λ) ≈ g(z_k, λ),

where z_k comes from ``inner_steps`` warm-started descent steps on g (Danskin: ∇v(λ) = ∇_λ g(z*, λ)):

    z ← descent on g(·, λ) with step inner_lr;
    λ ← λ − outer_lr · (∇_λ f + γ(∇_λ g(w, λ) − ∇_λ g(z, λ)));
    w ← w − (inner_lr/γ) · (∇_w f + γ ∇_w g(w, λ))              (both at the old point: one joint step).

The paper takes one step size α for both blocks, α ≲ 1/(γ L); here w's step is α = inner_lr/γ (so that its
g-part moves like z's descent) and λ has its own ``outer_lr``: set ``outer_lr = inner_lr/γ`` for the paper's
single step. The fixed point is the penalized problem's solution, within O(1/γ) of the bilevel solution.
"""

from __future__ import annotations

from torch import Tensor

from ._method import HyperMethod, eager_descent, eager_grads
from .hypergradient import BilevelProblem, check_lr
from .linear_solve import _check_positive_int


class PenaltyBilevel(HyperMethod):
    """V-PBGD: joint gradient descent on the value-function penalty with fixed ``penalty`` γ; ``inner_steps``
    warm-started descent steps (step ``inner_lr``) on z per outer step; ``outer_lr`` and ``bounds`` as in
    :class:`~optimlab.bilevel.HyperMethod`."""

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
        penalty: float = 10.0,
        inner_steps: int = 10,
    ) -> None:
        super().__init__(problem, lam, w, outer_lr=outer_lr, bounds=bounds)
        check_lr("inner_lr", inner_lr)
        check_lr("penalty", penalty)
        _check_positive_int("inner_steps", inner_steps, 0)
        self.inner_lr, self.penalty, self.inner_steps = inner_lr, penalty, inner_steps
        self.z = self.w.clone()

    def hypergradient(self) -> Tensor:
        problem, lam, w, gamma = self.problem, self.lam, self.w, self.penalty
        self.z = eager_descent(problem.inner, self.z, lam, steps=self.inner_steps, lr=self.inner_lr)
        grad_w_f, grad_lam_f = eager_grads(problem.outer, w, lam)
        grad_w_g, grad_lam_g = eager_grads(problem.inner, w, lam)
        self.w = w - (self.inner_lr / gamma) * (grad_w_f + gamma * grad_w_g)  # w half of the joint step, old point
        return grad_lam_f + gamma * (grad_lam_g - eager_grads(problem.inner, self.z, lam)[1])
