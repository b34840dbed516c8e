"""The shape every outer-loop method shares: hyperparameters λ and inner variables held as tensors, one outer
iteration per :meth:`HyperMethod.step`, and a ``state_dict`` that resumes bit-exactly."""

from __future__ import annotations

import torch
from torch import Tensor

from .hypergradient import BilevelProblem, check_lr


def eager_grads(fn, w: Tensor, lam: Tensor) -> tuple[Tensor, Tensor]:
    """``(∇_w fn, ∇_λ fn)`` at ``(w, λ)`` by one plain reverse pass: the methods' eager path (on small problems
    ``torch.func.grad`` costs about twice as much per call; the functional API keeps it for composability)."""
    with torch.enable_grad():
        w_, lam_ = w.detach().requires_grad_(True), lam.detach().requires_grad_(True)
        gw, glam = torch.autograd.grad(fn(w_, lam_), (w_, lam_), allow_unused=True, materialize_grads=True)
    return gw, glam


def eager_descent(fn, w: Tensor, lam: Tensor, *, steps: int, lr: float) -> Tensor:
    """``steps`` gradient-descent steps on ``fn(·, λ)`` from ``w`` (eager)."""
    for _ in range(steps):
        w = w - lr * eager_grads(fn, w, lam)[0]
    return w


class HyperMethod:
    """Base of the bilevel methods: ``step()`` computes a hypergradient estimate ``p`` (advancing the method's inner
    variables) and takes the projected step ``λ ← clamp(λ − outer_lr · p, *bounds)`` (HOAG's projection onto a box
    of admissible hyperparameters; no projection when ``bounds`` is None).

    To drive λ with another optimizer, call :meth:`hypergradient` instead and hand ``p`` to it as ``λ.grad``.
    Everything that must survive a restart (λ, the inner variables, warm starts, the outer step counter) is a
    tensor in :meth:`state_dict`; schedules are functions of the counter.
    """

    #: names of the tensor attributes that make up the state (subclasses extend)
    state_names: tuple[str, ...] = ("lam", "w", "outer_step")

    def __init__(
        self,
        problem: BilevelProblem,
        lam: Tensor,
        w: Tensor,
        *,
        outer_lr: float,
        bounds: tuple[float, float] | None = None,
    ) -> None:
        if not isinstance(problem, BilevelProblem):
            raise ValueError(f"problem must be a BilevelProblem, got {type(problem).__name__}")
        check_lr("outer_lr", outer_lr)
        if bounds is not None and not (len(bounds) == 2 and bounds[0] < bounds[1]):
            raise ValueError(f"bounds must be (low, high) with low < high, got {bounds!r}")
        self.problem = problem
        self.outer_lr = outer_lr
        self.bounds = bounds
        self.lam = lam.detach().clone()
        self.w = w.detach().clone()
        self.outer_step = torch.zeros((), dtype=torch.int64)

    def hypergradient(self) -> Tensor:
        """Advance the inner variables and return the estimate of ∇F(λ) at the current λ."""
        raise NotImplementedError

    def step(self) -> Tensor:
        """One outer iteration; returns the hypergradient estimate that was used."""
        p = self.hypergradient()
        self.lam = self.lam - self.outer_lr * p
        if self.bounds is not None:
            self.lam = self.lam.clamp(*self.bounds)
        self.outer_step += 1
        return p

    def outer_loss(self) -> Tensor:
        """``f(w, λ)`` at the method's current inner variable (the validation loss it sees)."""
        return self.problem.outer(self.w, self.lam)

    def state_dict(self) -> dict[str, Tensor]:
        return {name: getattr(self, name).clone() for name in self.state_names}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        missing = [n for n in self.state_names if n not in state]
        if missing:
            raise KeyError(f"{type(self).__name__}.load_state_dict: missing {missing}")
        for name in self.state_names:
            setattr(self, name, state[name].detach().clone())
