"""HOAG: hyperparameter optimization with approximate gradient (Pedregosa 2016, *Hyperparameter optimization with
approximate gradient*, ICML, arXiv:1602.02355, Algorithm 1).

Outer iteration k, with a summable tolerance sequence ε_k (Σ ε_k < ∞ is what the convergence proof needs):

1. solve the inner problem to ‖∇_w g(w, λ_k)‖ ≤ ε_k (warm-started gradient descent here);
2. solve ∇²_w g · q = ∇_w f to ‖residual‖ ≤ ε_k by conjugate gradient, warm-started at the previous q;
3. p_k = ∇_λ f − ∂²_{λw} g · q;
4. λ_{k+1} = λ_k − p_k / L (``outer_lr`` = 1/L; the paper's adaptive choice of L is not implemented).

Tolerances: ``ε_k = tol · decay^k`` (geometric, the paper's default uses decay 0.9) or ``tol / (k + 1)²``
(``schedule="quadratic"``); both are summable.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .. import curvature
from ._method import HyperMethod, eager_grads
from .hypergradient import BilevelProblem, check_lr
from .linear_solve import _check_positive_int, cg

SCHEDULES = ("geometric", "quadratic")


def hoag_tolerance(k: int, *, tol: float, decay: float = 0.9, schedule: str = "geometric") -> float:
    """ε_k of outer step ``k`` (0-based): ``tol·decay^k`` or ``tol/(k+1)²`` — both summable sequences."""
    if schedule == "geometric":
        return tol * decay**k
    if schedule == "quadratic":
        return tol / (k + 1) ** 2
    raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")


class HOAG(HyperMethod):
    """HOAG with inexact inner solves and CG solves to a summable tolerance schedule.

    Args:
        problem, lam, w, outer_lr, bounds: as in :class:`~optimlab.bilevel.HyperMethod` (``outer_lr`` plays 1/L;
            ``bounds`` is the paper's projection onto a box of admissible hyperparameters).
        inner_lr: gradient-descent step on ``g``; ``max_inner_steps`` caps the inner loop.
        tol, decay, schedule: the tolerance sequence (see :func:`hoag_tolerance`).
        max_cg_steps: cap on the CG iterations per outer step.
    """

    state_names = (*HyperMethod.state_names, "q")

    def __init__(
        self,
        problem: BilevelProblem,
        lam: Tensor,
        w: Tensor,
        *,
        outer_lr: float,
        inner_lr: float,
        bounds: tuple[float, float] | None = None,
        tol: float = 1e-1,
        decay: float = 0.9,
        schedule: str = "geometric",
        max_inner_steps: int = 1000,
        max_cg_steps: int = 100,
    ) -> None:
        super().__init__(problem, lam, w, outer_lr=outer_lr, bounds=bounds)
        check_lr("inner_lr", inner_lr)
        check_lr("tol", tol)
        if not (0.0 < decay < 1.0):
            raise ValueError(f"decay must be in (0, 1) for a summable schedule, got {decay!r}")
        if schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
        _check_positive_int("max_inner_steps", max_inner_steps, 0)
        _check_positive_int("max_cg_steps", max_cg_steps, 1)
        self.inner_lr, self.tol, self.decay, self.schedule = inner_lr, tol, decay, schedule
        self.max_inner_steps, self.max_cg_steps = max_inner_steps, max_cg_steps
        self.q = torch.zeros_like(self.w)
        self.last_inner_steps = 0

    def tolerance(self) -> float:
        """ε_k at the current outer step."""
        return hoag_tolerance(int(self.outer_step), tol=self.tol, decay=self.decay, schedule=self.schedule)

    def hypergradient(self) -> Tensor:
        eps = self.tolerance()
        problem, lam, w = self.problem, self.lam, self.w
        steps = 0
        while steps < self.max_inner_steps:
            g = eager_grads(problem.inner, w, lam)[0]
            if float(torch.linalg.vector_norm(g)) <= eps:
                break
            w = w - self.inner_lr * g
            steps += 1
        self.w, self.last_inner_steps = w, steps
        grad_w_f, grad_lam_f = eager_grads(problem.outer, w, lam)
        with torch.enable_grad():  # one graph of ∇_w g for every HVP of the CG solve and the mixed product
            w_, lam_ = w.detach().requires_grad_(True), lam.detach().requires_grad_(True)
            (grad_w_g,) = torch.autograd.grad(problem.inner(w_, lam_), w_, create_graph=True)
            self.q = cg(
                lambda v: curvature.hvp([grad_w_g], [w_], [v])[0],
                grad_w_f,
                x0=self.q,
                maxiter=self.max_cg_steps,
                rtol=0.0,
                atol=eps,
            ).detach()
            (cross,) = torch.autograd.grad(
                grad_w_g, lam_, grad_outputs=self.q, allow_unused=True, materialize_grads=True
            )
        return grad_lam_f - cross
