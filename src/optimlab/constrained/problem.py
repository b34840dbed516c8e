"""What a constrained problem declares: its constraints, and what a training step observes of them.

A constraint is written ``g(θ) ≤ 0`` (inequality) or ``h(θ) = 0`` (equality): the step hands the formulation the
*violation* ``g(θ)`` (e.g. ``loss_i − ε`` or ``floor − recall``), one number per multiplier. A batch-level
constraint has ``size`` multipliers and the step observes all of them; a per-sample constraint (Feasible Learning)
has one multiplier per training example and the step observes the examples of its mini-batch, named by their
``indices`` into the (local) dataset.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from torch import Tensor

INEQUALITY = "inequality"
EQUALITY = "equality"
KINDS = (INEQUALITY, EQUALITY)

__all__ = ["EQUALITY", "INEQUALITY", "Constraint", "Violation"]


@dataclass(frozen=True)
class Constraint:
    """One (vector) constraint of a problem.

    * ``name``: a Python identifier; the key under which a step passes its violation.
    * ``kind``: ``"inequality"`` (``g ≤ 0``, multipliers kept ≥ 0) or ``"equality"`` (``h = 0``, free multipliers).
    * ``size``: the number of multipliers; for a per-sample constraint, the number of training examples (under DDP:
      of this rank's shard, whose multipliers live on this rank).
    * ``per_sample``: the step observes a mini-batch of the constraints, with their indices; the primal term is the
      batch *mean* of ``λ_i g_i`` (so that DDP's gradient average over equal shards equals one process on the
      whole batch), the dual gradient of each observed ``λ_i`` is its own ``g_i``.
    * ``resilience``: ``α > 0`` turns on the resilient relaxation of Hounie et al. (2023), "Resilient Constrained
      Learning", arXiv:2306.02426 (the slack variant of Feasible Learning): ``g ≤ u`` with cost ``α/2 ‖u‖²``, whose
      best slack is ``u = λ/α``; the dual gradient becomes ``g − λ/α`` (inequalities only).
    * ``init``: the multipliers' initial value (≥ 0 for an inequality).
    """

    name: str
    kind: str = INEQUALITY
    size: int = 1
    per_sample: bool = False
    resilience: float | None = None
    init: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise ValueError(f"name must be a Python identifier, got {self.name!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"size must be an integer >= 1, got {self.size!r}")
        if self.resilience is not None:
            if self.kind != INEQUALITY:
                raise ValueError("resilience applies to inequality constraints only")
            if not (math.isfinite(self.resilience) and self.resilience > 0):
                raise ValueError(f"resilience must be a finite number > 0, got {self.resilience!r}")
        if not math.isfinite(self.init) or (self.kind == INEQUALITY and self.init < 0):
            raise ValueError(f"init must be finite (and >= 0 for an inequality), got {self.init!r}")


class Violation(NamedTuple):
    """What a step observes of one constraint.

    ``value``: the differentiable violation (the primal term is built from it). ``indices``: for a per-sample
    constraint, the examples of ``value`` (int64, same length). ``strict``: optionally, the violation the dual
    update uses instead (a non-differentiable quantity such as a true recall, with ``value`` its differentiable
    surrogate: the proxy-constraint scheme of Cotter et al. (2019), "Optimization with Non-Differentiable
    Constraints with Applications to Fairness, Recall, Churn, and Other Goals", arXiv:1809.04198).
    """

    value: Tensor
    indices: Tensor | None = None
    strict: Tensor | None = None
