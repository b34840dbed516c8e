"""Implicit differentiation of a root or an argmin, composable with ``torch.func`` (Blondel et al. 2022,
*Efficient and Modular Implicit Differentiation*, arXiv:2105.15183).

The user states what the solution satisfies, ``F(w*, θ) = 0``, and provides any solver; the returned map
``θ -> w*(θ)`` has the gradient given by the implicit-function theorem, whatever the solver did::

    ∂w*/∂θ = −(∂_w F)⁻¹ ∂_θ F      so a cotangent v pulls back as   θ̄ = −(∂_θ F)ᵀ u,   (∂_w F)ᵀ u = v.

* :func:`custom_root` — from an optimality condition ``F(w, *params)`` (VJPs of F give both products);
* :func:`custom_argmin` — from an inner objective ``g(w, *params)`` with ``F = ∇_w g``: ``(∂_w F)ᵀ = ∇²_w g``
  (symmetric) is applied as Hessian-vector products of ``g`` (reverse-over-reverse, linearized once per solve) and
  the cross term by a VJP of ``∇_w g``.

The solution is attached by a ``torch.autograd.Function`` with ``setup_context`` and ``generate_vmap_rule``, so
the map works with plain ``.backward()``, ``torch.func.grad``, ``vjp``, ``jacrev`` and ``vmap`` (batches of
hyperparameters). Unlike TorchOpt's ``custom_root`` (metaopt/torchopt #223), nothing is stored outside the
tensors that pass through the function. The solver runs on detached inputs; its iterations are never
differentiated. ``w`` and every entry of ``params`` are single tensors (any shape).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .linear_solve import LinearSolve, cg

Solver = Callable[..., Tensor]


class _Condition:
    """How to apply the two products of the IFT for one kind of optimality condition."""

    def transpose_matvec(self, w: Tensor, params: tuple[Tensor, ...]) -> Callable[[Tensor], Tensor]:
        raise NotImplementedError

    def matvec(self, w: Tensor, params: tuple[Tensor, ...]) -> Callable[[Tensor], Tensor]:
        raise NotImplementedError

    def params_jvp(self, w: Tensor, params: tuple[Tensor, ...], tangents: tuple[Tensor, ...]) -> Tensor:
        raise NotImplementedError

    def params_vjp(self, w: Tensor, params: tuple[Tensor, ...], u: Tensor) -> tuple[Tensor, ...]:
        raise NotImplementedError


class _Root(_Condition):
    def __init__(self, optimality_fn: Callable[..., Tensor]) -> None:
        self.fn = optimality_fn

    def transpose_matvec(self, w, params):
        _, pullback = torch.func.vjp(lambda w_: self.fn(w_, *params), w)
        return lambda u: pullback(u)[0]

    def params_vjp(self, w, params, u):
        _, pullback = torch.func.vjp(lambda *ps: self.fn(w, *ps), *params)
        return pullback(u)

    def matvec(self, w, params):
        return lambda x: torch.func.jvp(lambda w_: self.fn(w_, *params), (w,), (x,))[1]

    def params_jvp(self, w, params, tangents):
        return torch.func.jvp(lambda *ps: self.fn(w, *ps), params, tangents)[1]


class _Argmin(_Condition):
    def __init__(self, objective: Callable[..., Tensor]) -> None:
        self.objective = objective
        self.grad_w = torch.func.grad(objective, argnums=0)

    def transpose_matvec(self, w, params):
        # reverse-over-reverse, linearized once per solve: each product is then one reverse pass (measured ~10× faster
        # per product here than re-linearizing with forward-over-reverse, curvature.functional_hvp, at every call)
        _, pullback = torch.func.vjp(lambda w_: self.grad_w(w_, *params), w)
        return lambda u: pullback(u)[0]

    def params_vjp(self, w, params, u):
        _, pullback = torch.func.vjp(lambda *ps: self.grad_w(w, *ps), *params)
        return pullback(u)

    def matvec(self, w, params):
        return self.transpose_matvec(w, params)  # the Hessian is symmetric

    def params_jvp(self, w, params, tangents):
        return torch.func.jvp(lambda *ps: self.grad_w(w, *ps), params, tangents)[1]


class _ImplicitSolution(torch.autograd.Function):
    """Identity on the solution in the forward; the IFT pullback in the backward and pushforward in the jvp."""

    generate_vmap_rule = True

    @staticmethod
    def forward(condition: _Condition, linear_solve: LinearSolve, solution: Tensor, *params: Tensor) -> Tensor:
        return solution.clone()

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: Tensor) -> None:
        condition, linear_solve, solution, *params = inputs
        ctx.condition, ctx.linear_solve = condition, linear_solve
        ctx.save_for_backward(output, *params)  # the output carries w*(θ)'s own derivative: double backward is exact
        ctx.save_for_forward(solution, *params)

    @staticmethod
    def backward(ctx: Any, grad_output: Tensor) -> tuple:
        solution, *params = ctx.saved_tensors
        params = tuple(params)
        matvec = ctx.condition.transpose_matvec(solution, params)
        u = ctx.linear_solve(matvec, grad_output)
        grads = ctx.condition.params_vjp(solution, params, -u)
        return (None, None, None, *grads)

    @staticmethod
    def jvp(ctx: Any, _condition: None, _solve: None, _solution_tangent: Tensor | None, *tangents: Tensor | None):
        solution, *params = ctx.saved_tensors
        params = tuple(params)
        tangents = tuple(torch.zeros_like(p) if t is None else t for p, t in zip(params, tangents))
        rhs = ctx.condition.params_jvp(solution, params, tangents)
        return -ctx.linear_solve(ctx.condition.matvec(solution, params), rhs)


def _attach(condition: _Condition, linear_solve: LinearSolve, solver: Solver) -> Callable[..., Tensor]:
    @functools.wraps(solver)
    def solution_map(init: Tensor, *params: Tensor) -> Tensor:
        w = solver(init.detach(), *(p.detach() for p in params)).detach()
        return _ImplicitSolution.apply(condition, linear_solve, w, *params)

    return solution_map


def custom_root(
    optimality_fn: Callable[..., Tensor], *, linear_solve: LinearSolve = cg
) -> Callable[[Solver], Callable[..., Tensor]]:
    """Decorator: ``solver(init, *params) -> w`` becomes a map with IFT gradients for ``F(w, *params) = 0``.

    Args:
        optimality_fn: ``F(w, *params)``, a tensor shaped like ``w`` that vanishes at the solution; written with
            torch operations (it is differentiated by ``torch.func.vjp``).
        linear_solve: ``(matvec, b) -> x`` for ``(∂_w F)ᵀ x = b``: :func:`~optimlab.bilevel.cg` (default; needs a
            symmetric positive-definite ``∂_w F``), :func:`~optimlab.bilevel.neumann`,
            :func:`~optimlab.bilevel.direct`, configured with ``functools.partial``.

    The decorated function has the solver's signature ``(init, *params)``; gradients flow to every ``params``
    entry (none to ``init``).
    """
    return lambda solver: _attach(_Root(optimality_fn), linear_solve, solver)


def custom_argmin(
    objective: Callable[..., Tensor], *, linear_solve: LinearSolve = cg
) -> Callable[[Solver], Callable[..., Tensor]]:
    """Decorator for ``w*(params) = argmin_w objective(w, *params)`` (a smooth, strongly convex inner problem):
    :func:`custom_root` with ``F = ∇_w objective``, applied by Hessian-vector products of ``objective``.
    """
    return lambda solver: _attach(_Argmin(objective), linear_solve, solver)
