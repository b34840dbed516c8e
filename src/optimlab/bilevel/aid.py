"""Alternating bilevel methods built on a hypergradient oracle: approximate implicit differentiation (AID) with a
CG or Neumann inverse-Hessian product, and truncated unrolled differentiation.

* :class:`AID` — ``inner_steps`` warm-started gradient-descent steps on ``g``, then the IFT hypergradient
  (:func:`implicit_hypergradient`) and one outer step: IFT + Neumann is Lorraine, Vicol & Duvenaud (2020,
  *Optimizing Millions of Hyperparameters by Implicit Differentiation*, arXiv:1911.02590, Algorithm 2); IFT + CG
  the same loop with conjugate gradient (Ji, Yang & Liang 2021, AID-BiO, arXiv:2010.07962).
* :class:`TruncatedUnroll` — ``inner_steps`` warm-started steps, back-propagating through the last ``truncate``
  (Shaban et al. 2019, arXiv:1810.10667): the baseline the implicit methods are compared with.
"""

from __future__ import annotations

from torch import Tensor

from ._method import HyperMethod, eager_descent
from .hypergradient import BilevelProblem, check_lr, implicit_hypergradient, unrolled_hypergradient
from .linear_solve import LinearSolve, _check_positive_int, cg


class AID(HyperMethod):
    """Approximate implicit differentiation: warm-started inner descent, then the IFT with ``linear_solve``.

    Args:
        problem: the bilevel problem.
        lam, w: initial hyperparameters and inner variables (copied).
        outer_lr: step on λ; bounds: optional box ``(low, high)`` that λ is projected onto after each step.
        inner_lr, inner_steps: gradient descent on ``g`` before each hypergradient.
        linear_solve: :func:`~optimlab.bilevel.cg` (IFT + CG), ``functools.partial(neumann, terms=K, alpha=α)``
            (IFT + Neumann) or :func:`~optimlab.bilevel.direct`.
    """

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
        linear_solve: LinearSolve = cg,
    ) -> None:
        super().__init__(problem, lam, w, outer_lr=outer_lr, bounds=bounds)
        check_lr("inner_lr", inner_lr)
        _check_positive_int("inner_steps", inner_steps, 0)
        self.inner_lr, self.inner_steps, self.linear_solve = inner_lr, inner_steps, linear_solve

    def hypergradient(self) -> Tensor:
        self.w = eager_descent(self.problem.inner, self.w, self.lam, steps=self.inner_steps, lr=self.inner_lr)
        return implicit_hypergradient(self.problem, self.w, self.lam, linear_solve=self.linear_solve)


class TruncatedUnroll(HyperMethod):
    """Truncated back-propagation through ``inner_steps`` warm-started descent steps (step ``inner_lr``), the last
    ``truncate`` of them (all when None); ``outer_lr`` and ``bounds`` as in :class:`~optimlab.bilevel.HyperMethod`."""

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
        truncate: int | None = None,
    ) -> None:
        super().__init__(problem, lam, w, outer_lr=outer_lr, bounds=bounds)
        check_lr("inner_lr", inner_lr)
        _check_positive_int("inner_steps", inner_steps, 1)
        if truncate is not None and not (isinstance(truncate, int) and 1 <= truncate <= inner_steps):
            raise ValueError(f"truncate must be an integer in [1, inner_steps={inner_steps}], got {truncate!r}")
        self.inner_lr, self.inner_steps, self.truncate = inner_lr, inner_steps, truncate

    def hypergradient(self) -> Tensor:
        p, self.w = unrolled_hypergradient(
            self.problem, self.w, self.lam, steps=self.inner_steps, lr=self.inner_lr, truncate=self.truncate
        )
        return p
