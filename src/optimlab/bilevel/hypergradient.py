"""A bilevel problem and its hypergradient, by implicit differentiation or by unrolling.

    min_λ  F(λ) = f(w*(λ), λ)      s.t.   w*(λ) = argmin_w g(w, λ)

with an outer (validation) loss ``f`` and an inner (training) loss ``g``. The hypergradient is

    ∇F(λ) = ∇_λ f − ∂²_{λw} g · [∇²_w g]⁻¹ ∇_w f       (implicit-function theorem)

* :func:`implicit_hypergradient` — the IFT at a given (approximate) inner solution, the inverse Hessian applied by
  a linear solver: CG (Pedregosa 2016, HOAG, arXiv:1602.02355), Neumann series (Lorraine, Vicol & Duvenaud 2020,
  arXiv:1911.02590) or a direct solve. It is ``torch.func.grad`` of ``f`` through :func:`custom_argmin`.
* :func:`unrolled_hypergradient` — reverse-mode differentiation through ``steps`` gradient-descent iterations on
  ``g``, truncated to the last ``truncate`` of them (Shaban, Cheng, Hatch & Boots 2019, *Truncated
  Back-propagation for Bilevel Optimization*, arXiv:1810.10667; full unrolling: Maclaurin et al. 2015,
  Franceschi et al. 2017).

``w`` and ``λ`` are single tensors of any shape; ``f`` and ``g`` are pure functions of them written with torch
operations, so every function here composes with ``torch.func.vmap`` (batches of hyperparameters).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .implicit import custom_argmin
from .linear_solve import LinearSolve, _check_positive_int, cg


@dataclass(frozen=True)
class BilevelProblem:
    """``min_λ outer(w*(λ), λ)`` with ``w*(λ) = argmin_w inner(w, λ)``; both map ``(w, λ)`` to a scalar."""

    outer: Callable[[Tensor, Tensor], Tensor]
    inner: Callable[[Tensor, Tensor], Tensor]

    def inner_grad(self, w: Tensor, lam: Tensor) -> Tensor:
        """``∇_w g(w, λ)``."""
        return torch.func.grad(self.inner)(w, lam)


def check_lr(name: str, value: float) -> None:
    """``ValueError`` naming ``name`` unless ``value`` is a finite number > 0."""
    if not (isinstance(value, (int, float)) and 0.0 < value < float("inf")):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def inner_descent(problem: BilevelProblem, w: Tensor, lam: Tensor, *, steps: int, lr: float) -> Tensor:
    """``steps`` iterations of gradient descent ``w ← w − lr ∇_w g(w, λ)`` (the inner solver of the methods)."""
    for _ in range(steps):
        w = w - lr * problem.inner_grad(w, lam)
    return w


def implicit_hypergradient(
    problem: BilevelProblem, w: Tensor, lam: Tensor, *, linear_solve: LinearSolve = cg
) -> Tensor:
    """The IFT hypergradient at the inner point ``w`` (taken as w*(λ)): ``∇_λ f − ∂²_{λw} g · A⁻¹ ∇_w f`` with
    ``A = ∇²_w g`` applied by HVPs and inverted by ``linear_solve`` (:func:`cg`, :func:`neumann`, :func:`direct`).

    Cost: one gradient of ``f``, the solver's HVPs (``maxiter`` for CG at most, ``terms`` for Neumann, ``w.numel()``
    for the direct solve) and one mixed product ``∂²_{λw} g · u``.
    """
    root = custom_argmin(problem.inner, linear_solve=linear_solve)(lambda init, _lam: init)
    return torch.func.grad(lambda lam_: problem.outer(root(w, lam_), lam_))(lam)


def unrolled_hypergradient(
    problem: BilevelProblem, w0: Tensor, lam: Tensor, *, steps: int, lr: float, truncate: int | None = None
) -> tuple[Tensor, Tensor]:
    """Hypergradient of ``f(w_T, λ)`` where ``w_T`` is ``steps`` gradient-descent iterations from ``w0``,
    back-propagated through the last ``truncate`` iterations only (all of them when ``None``).

    Returns ``(hypergradient, w_T)``. Memory grows with ``truncate`` (one inner iterate kept per step).
    """
    _check_positive_int("steps", steps, 1)
    check_lr("lr", lr)
    kept = steps if truncate is None else truncate
    _check_positive_int("truncate", kept, 1)
    if kept > steps:
        raise ValueError(f"truncate must be ≤ steps ({steps}), got {truncate}")
    w0 = w0.detach()

    def objective(lam_: Tensor) -> tuple[Tensor, Tensor]:
        w = inner_descent(problem, w0, lam_.detach(), steps=steps - kept, lr=lr).detach()
        w = inner_descent(problem, w, lam_, steps=kept, lr=lr)
        return problem.outer(w, lam_), w

    hypergradient, w_final = torch.func.grad(objective, has_aux=True)(lam)
    return hypergradient, w_final.detach()
