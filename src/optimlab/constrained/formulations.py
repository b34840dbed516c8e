"""Formulations: how an objective and its constraints become a primal loss and a dual gradient.

A formulation is an ``nn.Module`` whose state is tensors: the Lagrange multipliers (``nn.Parameter`` s, one per
constraint, so any optimizer can be the dual optimizer) and the penalty coefficients (a buffer). Its
``state_dict()`` therefore round-trips bit-exactly through ``torch.save`` / ``torch.load(weights_only=True)``.

:meth:`Formulation.compute` turns what a step observed (the objective and the violations) into :class:`Terms`:
``primal`` (a scalar to backpropagate into the model; the multipliers enter it detached) and ``dual_grads``
(``∂L/∂λ`` per constraint, dense in the multipliers' shape, zero on examples a per-sample step did not observe).

* :class:`Lagrangian` — ``L = f + Σ λ·g + Σ μ·h``, ``∂L/∂λ = g`` (Arrow, Hurwicz & Uzawa, 1958).
* :class:`QuadraticPenalty` — ``f + ρ/2 Σ relu(g)² + ρ/2 Σ h²``, no multipliers (Nocedal & Wright, 2006, §17.1).
* :class:`AugmentedLagrangian` — inequality: ``f + 1/(2ρ) Σ (relu(λ + ρg)² − λ²)``, equality: ``μ·h + ρ/2 h²``,
  ``∂/∂λ = ρ g`` so that a dual SGD step with ``lr = 1`` is the method of multipliers ``λ ← [λ + ρ g]₊`` (Hestenes,
  1969; Powell, 1969; Nocedal & Wright, 2006, §17.3–17.4); ρ follows a :class:`PenaltySchedule`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .problem import INEQUALITY, Constraint, Violation

__all__ = ["AugmentedLagrangian", "Formulation", "Lagrangian", "PenaltySchedule", "QuadraticPenalty", "Terms"]

Reduce = Callable[[Tensor], Tensor]


@dataclass
class Terms:
    """One evaluation of a formulation: ``primal`` (backpropagate it), ``dual_grads`` (``∂L/∂λ`` per constraint),
    ``violations`` (the detached violations the dual update used, per constraint, as observed) and ``objective``."""

    primal: Tensor
    dual_grads: dict[str, Tensor]
    violations: dict[str, Tensor]
    objective: Tensor | None


def _as_violation(obs: Tensor | Violation | tuple) -> Violation:
    if isinstance(obs, Violation):
        return obs
    if isinstance(obs, tuple):
        return Violation(*obs)
    return Violation(obs)


class Formulation(nn.Module):
    """Base class: the constraints, their multipliers and penalty coefficients (see the module docstring).

    Subclasses define :meth:`primal_term` (per observed constraint entry) and :meth:`dual_term` (its ``∂L/∂λ``).
    """

    uses_multipliers: bool = True
    uses_penalty: bool = False

    def __init__(self, constraints: Sequence[Constraint], *, penalty: float = 1.0, dtype: torch.dtype | None = None):
        super().__init__()
        constraints = list(constraints)
        if not constraints:
            raise ValueError("constraints must not be empty")
        if any(not isinstance(c, Constraint) for c in constraints):
            raise ValueError("constraints must be Constraint records")
        names = [c.name for c in constraints]
        if len(set(names)) != len(names):
            raise ValueError(f"constraints must have distinct names, got {names}")
        if not (math.isfinite(penalty) and penalty > 0):
            raise ValueError(f"penalty must be a finite number > 0, got {penalty!r}")
        dtype = dtype or torch.get_default_dtype()
        self.constraints: dict[str, Constraint] = {c.name: c for c in constraints}
        self.multipliers = nn.ParameterDict()
        if self.uses_multipliers:
            for c in constraints:
                self.multipliers[c.name] = nn.Parameter(torch.full((c.size,), float(c.init), dtype=dtype))
        self.register_buffer("penalty", torch.full((len(constraints),), float(penalty), dtype=dtype))

    # ------------------------------------------------------------------ the per-entry rules
    def primal_term(self, c: Constraint, g: Tensor, lam: Tensor | None, rho: Tensor) -> Tensor:
        """Contribution of each observed entry of constraint ``c`` to the primal loss (``lam`` detached)."""
        raise NotImplementedError

    def dual_term(self, c: Constraint, g: Tensor, lam: Tensor, rho: Tensor) -> Tensor:
        """``∂L/∂λ`` of each observed entry (``g`` detached)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ evaluation
    def compute(
        self,
        objective: Tensor | None,
        violations: Mapping[str, Tensor | Violation],
        *,
        reduce: Reduce | None = None,
    ) -> Terms:
        """The primal loss and dual gradients at the observed point. ``violations`` maps every constraint name to
        its violation (a tensor, or a :class:`Violation` with indices / a strict value). ``reduce`` (optional)
        averages each batch-level violation (and its strict value) across processes before use (DDP)."""
        unknown = set(violations) - set(self.constraints)
        missing = set(self.constraints) - set(violations)
        if unknown or missing:
            raise ValueError(f"violations: unknown constraints {sorted(unknown)}, missing {sorted(missing)}")
        primal = objective if objective is not None else None
        dual_grads: dict[str, Tensor] = {}
        observed: dict[str, Tensor] = {}
        for i, (name, c) in enumerate(self.constraints.items()):
            v = _as_violation(violations[name])
            g, idx = v.value.reshape(-1), v.indices
            strict = (v.strict if v.strict is not None else v.value).detach().reshape(-1)
            if c.per_sample:
                if idx is None:
                    raise ValueError(f"violations[{name!r}]: a per-sample constraint needs indices")
                idx = idx.reshape(-1)
                if idx.shape != g.shape or strict.shape != g.shape:
                    raise ValueError(f"violations[{name!r}]: value, strict and indices must have the same length")
            else:
                if idx is not None:
                    raise ValueError(f"violations[{name!r}]: indices are for per-sample constraints only")
                if g.numel() != c.size or strict.numel() != c.size:
                    raise ValueError(f"violations[{name!r}]: expected {c.size} values, got {g.numel()}")
                if reduce is not None:
                    g, strict = reduce(g), reduce(strict)
            rho = self.penalty[i]
            lam = self.multipliers[name] if self.uses_multipliers else None
            lam_obs = None if lam is None else (lam.detach()[idx] if c.per_sample else lam.detach())
            term = self.primal_term(c, g, lam_obs, rho)
            term = term.mean() if c.per_sample else term.sum()
            primal = term if primal is None else primal + term
            observed[name] = strict
            if lam is not None:
                d = self.dual_term(c, strict.to(lam.dtype), lam_obs, rho)
                if c.resilience is not None:
                    d = d - lam_obs / c.resilience
                if c.per_sample:
                    d = torch.zeros_like(lam).index_put_((idx,), d, accumulate=True)
                dual_grads[name] = d
        return Terms(primal, dual_grads, observed, objective)

    # ------------------------------------------------------------------ state helpers
    @torch.no_grad()
    def project_(self) -> None:
        """Keep inequality multipliers in the dual cone: ``λ ← max(λ, 0)``."""
        for name, lam in self.multipliers.items():
            if self.constraints[name].kind == INEQUALITY:
                lam.clamp_(min=0)

    def slack(self, name: str) -> Tensor:
        """The resilient slack ``u = λ/α`` of a constraint (zeros without resilience)."""
        c, lam = self.constraints[name], self.multipliers[name].detach()
        return lam / c.resilience if c.resilience is not None else torch.zeros_like(lam)

    def penalty_of(self, name: str) -> Tensor:
        """The current penalty coefficient ρ of a constraint (0-d view into the buffer)."""
        return self.penalty[list(self.constraints).index(name)]

    def dual_parameters(self) -> list[nn.Parameter]:
        """The multipliers, in constraint order: give them to the dual optimizer."""
        return list(self.multipliers.values())

    def extra_repr(self) -> str:
        parts = (f"{c.name}:{c.kind}[{c.size}]{'/sample' if c.per_sample else ''}" for c in self.constraints.values())
        return ", ".join(parts)


class Lagrangian(Formulation):
    """``L(θ, λ, μ) = f(θ) + Σ λᵀ g(θ) + Σ μᵀ h(θ)``; gradient descent on θ, projected ascent on λ (Arrow, Hurwicz
    & Uzawa (1958), Studies in Linear and Non-linear Programming; for deep learning: Gallego-Posada et al. (2025),
    "Cooper: A Library for Constrained Optimization in Deep Learning", arXiv:2504.01212)."""

    def primal_term(self, c: Constraint, g: Tensor, lam: Tensor | None, rho: Tensor) -> Tensor:
        return lam * g

    def dual_term(self, c: Constraint, g: Tensor, lam: Tensor, rho: Tensor) -> Tensor:
        return g


class QuadraticPenalty(Formulation):
    """``f + ρ/2 Σ relu(g)² + ρ/2 Σ h²`` (Nocedal & Wright (2006), Numerical Optimization, eq. 17.7): no
    multipliers; its minimizer approaches the constrained one as ρ → ∞ (grow ρ with a :class:`PenaltySchedule`)."""

    uses_multipliers = False
    uses_penalty = True

    def primal_term(self, c: Constraint, g: Tensor, lam: Tensor | None, rho: Tensor) -> Tensor:
        v = torch.relu(g) if c.kind == INEQUALITY else g
        return 0.5 * rho * v * v


class AugmentedLagrangian(Formulation):
    """The augmented Lagrangian (method of multipliers; Hestenes (1969), Powell (1969); Nocedal & Wright (2006),
    eqs. 17.36 and 17.65 for inequalities): inequality ``1/(2ρ) (relu(λ + ρg)² − λ²)``, equality
    ``μh + ρ/2 h²``; dual gradient ``ρ g`` (dual SGD with lr 1 is the exact multiplier update)."""

    uses_penalty = True

    def primal_term(self, c: Constraint, g: Tensor, lam: Tensor | None, rho: Tensor) -> Tensor:
        if c.kind == INEQUALITY:
            return (torch.relu(lam + rho * g) ** 2 - lam * lam) / (2 * rho)
        return lam * g + 0.5 * rho * g * g

    def dual_term(self, c: Constraint, g: Tensor, lam: Tensor, rho: Tensor) -> Tensor:
        return rho * g


@dataclass(frozen=True)
class PenaltySchedule:
    """Grows the penalty coefficients: every ``every`` steps, ``ρ ← min(growth · ρ, max)`` for each constraint whose
    largest observed violation (positive part for inequalities, absolute value for equalities) exceeds
    ``tolerance`` (always, when ``tolerance`` is None). The multiplicative rule of Bertsekas (1982), Constrained
    Optimization and Lagrange Multiplier Methods, §2.2; ρ lives in the formulation's ``penalty`` buffer."""

    growth: float = 2.0
    every: int = 1
    max: float = 1e6
    tolerance: float | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.growth) and self.growth >= 1):
            raise ValueError(f"growth must be a finite number >= 1, got {self.growth!r}")
        if not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"every must be an integer >= 1, got {self.every!r}")
        if not self.max > 0:
            raise ValueError(f"max must be > 0, got {self.max!r}")
        if self.tolerance is not None and not self.tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {self.tolerance!r}")

    @torch.no_grad()
    def update_(self, formulation: Formulation, step: int, violations: Mapping[str, Tensor]) -> None:
        """Apply the rule after step number ``step`` (1-based) given that step's observed violations."""
        if step % self.every:
            return
        for i, (name, c) in enumerate(formulation.constraints.items()):
            v = violations[name]
            worst = float((torch.relu(v) if c.kind == INEQUALITY else v.abs()).max()) if v.numel() else 0.0
            if self.tolerance is None or worst > self.tolerance:
                formulation.penalty[i] = min(float(formulation.penalty[i]) * self.growth, self.max)
