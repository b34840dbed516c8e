"""Feasible Learning: one loss bound per training example, one multiplier per example.

Ramirez, Hounie, Elenter, Gallego-Posada, Hashemizadeh, Ribeiro & Lacoste-Julien (2025), "Feasible Learning",
AISTATS 2025, arXiv:2501.14912: ``min_θ 0  s.t.  ℓ_i(θ) ≤ ε  for every training example i``, solved by
gradient descent–ascent on the Lagrangian ``Σ_i λ_i (ℓ_i(θ) − ε)``: the multipliers re-weight the examples, hard
ones up. The *resilient* variant (RFL) relaxes each bound by a slack ``u_i`` of minimal norm
(``α/2 ‖u‖²``; Hounie et al. (2023), arXiv:2306.02426), whose best response is ``u = λ/α``; the dual step is then
``λ_i ← [λ_i + η (ℓ_i − ε − λ_i/α)]₊``.

Under DDP each rank builds its formulation with ``num_samples`` = its shard's size and indexes its examples
locally: the per-example multipliers live with their data and are never communicated.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .formulations import Lagrangian
from .problem import Constraint, Violation

__all__ = ["FeasibleLearning"]


class FeasibleLearning(Lagrangian):
    """The Lagrangian of Feasible Learning (see the module docstring), with an optional objective.

    ``num_samples``: training examples (of this rank's shard); ``epsilon``: the per-example loss bound;
    ``resilience``: ``α`` of the slack variant (None: plain FL); ``init``: initial multipliers. The constraint is
    named ``"loss"``; :meth:`violations` builds what a step passes to ``compute``."""

    def __init__(
        self,
        num_samples: int,
        epsilon: float,
        *,
        resilience: float | None = None,
        init: float = 0.0,
        dtype: torch.dtype | None = None,
    ) -> None:
        if not (math.isfinite(epsilon) and epsilon >= 0):
            raise ValueError(f"epsilon must be a finite number >= 0, got {epsilon!r}")
        super().__init__(
            [Constraint("loss", size=num_samples, per_sample=True, resilience=resilience, init=init)], dtype=dtype
        )
        self.epsilon = float(epsilon)

    def violations(self, losses: Tensor, indices: Tensor) -> dict[str, Violation]:
        """``{"loss": ℓ_i − ε at the examples ``indices``}`` (``losses``: per-example, unreduced)."""
        return {"loss": Violation(losses - self.epsilon, indices)}

    @property
    def weights(self) -> Tensor:
        """The per-example multipliers λ (detached)."""
        return self.multipliers["loss"].detach()
