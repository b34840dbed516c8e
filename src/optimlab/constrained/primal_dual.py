"""The primal–dual step: any optimizer on the model, any optimizer on the multipliers, four ways to interleave them.

``closure()`` runs the forward pass on the current batch and returns ``(objective, violations)`` (objective may be
None, as in Feasible Learning); :meth:`PrimalDual.step` evaluates the formulation, backpropagates the primal loss,
hands the multipliers their gradient ``∂L/∂λ``, steps both optimizers and projects the multipliers.

Dual sign convention: a dual optimizer whose param group has ``maximize=True`` receives ``∂L/∂λ`` (ascent, as in
Cooper); any other receives ``−∂L/∂λ`` (descent on −L). So every optimizer works as a dual optimizer.

Methods (``method=``):

* ``"simultaneous"`` — projected gradient descent–ascent at the same point (Arrow, Hurwicz & Uzawa, 1958).
* ``"alternating"`` — the dual step first, then the primal step with the updated multipliers on the same forward
  pass (no extra evaluation).
* ``"extragradient"`` — both players step to an extrapolated point, the closure is evaluated there, both restart
  from the saved point (parameters *and* optimizer states) and step with the extrapolated gradients (Korpelevich
  (1976); Gidel et al. (2019), "A Variational Inequality Perspective on Generative Adversarial Networks",
  arXiv:1802.10551). Two evaluations per step.
* ``"extrapolation_from_past"`` — the extrapolation reuses the previous step's extrapolated gradients (Popov
  (1980); Gidel et al. (2019)): one evaluation per step, the past gradients kept as tensors in the state.

For optimizers without state (SGD) the extrapolation methods are the classical ones; with stateful optimizers the
extrapolation is a step of the optimizer from the saved state, which is then restored.

Under DDP (``torch.distributed`` initialized, ``sync_dual=True``) every batch-level violation is averaged over the
ranks (differentiably) before it enters the formulation, so every rank holds the same batch-level multipliers and
penalty, and a term that is nonlinear in the violation (penalty, augmented Lagrangian) sees the global batch's
violation, as one process would; per-sample multipliers stay local to their shard (their terms are batch means,
which DDP's gradient average over equal shards makes global). The model's gradients are averaged by DDP as usual.
The 2-process run equals one process on the whole batch (tests/constrained/test_ddp.py).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .formulations import Formulation, PenaltySchedule, Terms
from .problem import Violation

__all__ = ["METHODS", "PrimalDual", "StepInfo"]

METHODS = ("simultaneous", "alternating", "extragradient", "extrapolation_from_past")

Closure = Callable[[], tuple[Tensor | None, Mapping[str, Tensor | Violation]]]


@dataclass
class StepInfo:
    """What one step observed at the current (not extrapolated) point: the objective, the primal Lagrangian and
    the violations per constraint (detached; per-sample ones for the batch's examples)."""

    objective: float | None
    lagrangian: float
    violations: dict[str, Tensor]


def _distributed_mean(t: Tensor) -> Tensor:
    """The mean over ranks; differentiable (its backward sums the ranks' gradients) when ``t`` requires grad."""
    import torch.distributed as dist

    if t.requires_grad:
        from torch.distributed.nn.functional import all_reduce

        return all_reduce(t, op=dist.ReduceOp.SUM) / dist.get_world_size()
    t = t.clone()
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t / dist.get_world_size()


class PrimalDual:
    """Drives one constrained training step (see the module docstring).

    ``formulation``: a :class:`~optimlab.constrained.Formulation`; ``primal_optimizer``: any optimizer over the
    model; ``dual_optimizer``: any optimizer over ``formulation.dual_parameters()`` (exactly those; required iff
    the formulation has multipliers); ``penalty_schedule``: grows ρ (formulations with a penalty only).
    """

    def __init__(
        self,
        formulation: Formulation,
        primal_optimizer: torch.optim.Optimizer,
        dual_optimizer: torch.optim.Optimizer | None = None,
        *,
        method: str = "simultaneous",
        penalty_schedule: PenaltySchedule | None = None,
        sync_dual: bool = True,
    ) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        duals = formulation.dual_parameters()
        if duals and dual_optimizer is None:
            raise ValueError("dual_optimizer is required: the formulation has multipliers")
        if dual_optimizer is not None:
            held = {id(p) for g in dual_optimizer.param_groups for p in g["params"]}
            if held != {id(p) for p in duals}:
                raise ValueError("dual_optimizer must hold exactly formulation.dual_parameters()")
        if penalty_schedule is not None and not formulation.uses_penalty:
            raise ValueError(f"penalty_schedule: {type(formulation).__name__} has no penalty coefficient")
        if method in ("alternating",) and not duals:
            raise ValueError("method 'alternating' needs multipliers")
        self.formulation = formulation
        self.primal_optimizer = primal_optimizer
        self.dual_optimizer = dual_optimizer
        self.method = method
        self.penalty_schedule = penalty_schedule
        self.sync_dual = sync_dual
        self.steps = torch.zeros((), dtype=torch.int64)
        self._past_primal: list[Tensor] | None = None
        self._past_dual: list[Tensor] | None = None

    # ------------------------------------------------------------------ pieces
    def _primal_params(self) -> list[Tensor]:
        return [p for g in self.primal_optimizer.param_groups for p in g["params"]]

    def _reduce(self):
        if not self.sync_dual:
            return None
        import torch.distributed as dist

        return _distributed_mean if dist.is_available() and dist.is_initialized() else None

    def _evaluate(self, out) -> Terms:
        objective, violations = out
        return self.formulation.compute(objective, violations, reduce=self._reduce())

    def _set_dual_grads(self, terms: Terms) -> None:
        if self.dual_optimizer is None:
            return
        grads = {id(self.formulation.multipliers[n]): g for n, g in terms.dual_grads.items()}
        for group in self.dual_optimizer.param_groups:
            sign = 1.0 if group.get("maximize", False) else -1.0
            for p in group["params"]:
                p.grad = grads[id(p)] * sign

    def _backward(self, terms: Terms) -> None:
        self.primal_optimizer.zero_grad(set_to_none=True)
        terms.primal.backward()
        self._set_dual_grads(terms)

    def _dual_step(self) -> None:
        if self.dual_optimizer is not None:
            self.dual_optimizer.step()
            self.formulation.project_()

    def _both_steps(self) -> None:
        self.primal_optimizer.step()
        self._dual_step()

    def _snapshot(self) -> dict[str, Any]:
        duals = self.formulation.dual_parameters()
        return {
            "primal": [p.detach().clone() for p in self._primal_params()],
            "dual": [p.detach().clone() for p in duals],
            "primal_opt": copy.deepcopy(self.primal_optimizer.state_dict()),
            "dual_opt": None if self.dual_optimizer is None else copy.deepcopy(self.dual_optimizer.state_dict()),
        }

    @torch.no_grad()
    def _restore(self, snap: dict[str, Any]) -> None:
        for p, s in zip(self._primal_params(), snap["primal"]):
            p.copy_(s)
        for p, s in zip(self.formulation.dual_parameters(), snap["dual"]):
            p.copy_(s)
        self.primal_optimizer.load_state_dict(snap["primal_opt"])
        if self.dual_optimizer is not None:
            self.dual_optimizer.load_state_dict(snap["dual_opt"])

    def _grads(self) -> tuple[list[Tensor], list[Tensor]]:
        primal = [torch.zeros_like(p) if p.grad is None else p.grad.detach().clone() for p in self._primal_params()]
        dual = [p.grad.detach().clone() for p in self.formulation.dual_parameters()]
        return primal, dual

    def _load_grads(self, primal: list[Tensor], dual: list[Tensor]) -> None:
        for p, g in zip(self._primal_params(), primal):
            p.grad = g.clone()
        for p, g in zip(self.formulation.dual_parameters(), dual):
            p.grad = g.clone()

    # ------------------------------------------------------------------ the step
    def step(self, closure: Closure) -> StepInfo:
        """One primal–dual step with ``closure`` (see the module docstring); returns :class:`StepInfo`."""
        method = self.method
        if method in ("simultaneous", "alternating"):
            out = closure()
            terms = self._evaluate(out)
            if method == "alternating":
                self._set_dual_grads(terms)
                self._dual_step()
                info_terms, terms = terms, self._evaluate(out)  # the same forward, the new multipliers
                self.primal_optimizer.zero_grad(set_to_none=True)
                terms.primal.backward()
                self.primal_optimizer.step()
                terms = info_terms
            else:
                self._backward(terms)
                self._both_steps()
        elif method == "extragradient":
            snap = self._snapshot()
            terms = self._evaluate(closure())
            self._backward(terms)
            self._both_steps()
            self._backward(self._evaluate(closure()))
            self._restore(snap)
            self._both_steps()
        else:  # extrapolation from the past
            snap = None
            if self._past_primal is not None:
                snap = self._snapshot()
                self._load_grads(self._past_primal, self._past_dual)
                self._both_steps()
            terms = self._evaluate(closure())
            self._backward(terms)
            self._past_primal, self._past_dual = self._grads()
            if snap is not None:
                self._restore(snap)
            self._both_steps()
        self.steps += 1
        if self.penalty_schedule is not None:
            self.penalty_schedule.update_(self.formulation, int(self.steps), terms.violations)
        return StepInfo(
            None if terms.objective is None else float(terms.objective.detach()),
            float(terms.primal.detach()),
            terms.violations,
        )

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything that must resume, as tensors: formulation (multipliers, ρ), both optimizers, the step count and
        the past extrapolation gradients. Loads with ``torch.load(weights_only=True)``."""
        state: dict[str, Any] = {
            "formulation": self.formulation.state_dict(),
            "primal_optimizer": self.primal_optimizer.state_dict(),
            "steps": self.steps.clone(),
        }
        if self.dual_optimizer is not None:
            state["dual_optimizer"] = self.dual_optimizer.state_dict()
        if self._past_primal is not None:
            state["past_primal"] = [g.clone() for g in self._past_primal]
            state["past_dual"] = [g.clone() for g in self._past_dual]
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.formulation.load_state_dict(state["formulation"])
        self.primal_optimizer.load_state_dict(state["primal_optimizer"])
        if self.dual_optimizer is not None:
            self.dual_optimizer.load_state_dict(state["dual_optimizer"])
        self.steps = state["steps"].clone()
        if "past_primal" in state:
            self._past_primal = [g.clone() for g in state["past_primal"]]
            self._past_dual = [g.clone() for g in state["past_dual"]]
        else:
            self._past_primal = self._past_dual = None
