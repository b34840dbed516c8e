"""Constrained learning: train any model with any optimizer under inequality and equality constraints.

A problem is an objective plus :class:`Constraint` s (batch-level, or per-sample with one multiplier per training
example); a :class:`Formulation` (an ``nn.Module`` holding the multipliers and penalty coefficients as tensors)
turns each step's observations into a primal loss and the multipliers' gradients; :class:`PrimalDual` steps the
model's optimizer and the multipliers' optimizer (any two optimizers; :class:`NuPI` is the PI controller) by
simultaneous or alternating descent–ascent, extragradient or extrapolation from the past, and checkpoints all of it
through ``state_dict()`` (bit-exact, ``weights_only=True``)::

    from optimlab import constrained as C

    form = C.Lagrangian([C.Constraint("rate_gap", size=2)])
    pd = C.PrimalDual(form, torch.optim.Adam(model.parameters(), 1e-3),
                      torch.optim.SGD(form.dual_parameters(), lr=1e-2, maximize=True))

    def closure():
        out = model(x)
        return loss_fn(out, y), {"rate_gap": gap(out) - tolerance}   # g ≤ 0

    info = pd.step(closure)

The formulation is a module: move it with ``form.to(device)`` before building the dual optimizer; checkpoint
``pd.state_dict()`` (formulation, both optimizers, step count, extrapolation memory) next to the model's.

Contents (one idea per module):

* :mod:`.problem` — :class:`Constraint` (kind, size, per-sample, resilience) and :class:`Violation`;
* :mod:`.formulations` — :class:`Lagrangian`, :class:`QuadraticPenalty`, :class:`AugmentedLagrangian` and the
  :class:`PenaltySchedule` for ρ;
* :mod:`.feasible` — :class:`FeasibleLearning` (Ramirez et al., 2025, arXiv:2501.14912), with the resilient slack
  variant (Hounie et al., 2023, arXiv:2306.02426);
* :mod:`.nupi` — :class:`NuPI`, the νPI multiplier controller (Sohrabi et al., 2024, arXiv:2406.04558);
* :mod:`.primal_dual` — :class:`PrimalDual`: the step, its four methods, DDP and checkpoints.
"""

from .feasible import FeasibleLearning
from .formulations import AugmentedLagrangian, Formulation, Lagrangian, PenaltySchedule, QuadraticPenalty, Terms
from .nupi import NuPI
from .primal_dual import METHODS, PrimalDual, StepInfo
from .problem import EQUALITY, INEQUALITY, Constraint, Violation

__all__ = [
    "EQUALITY",
    "INEQUALITY",
    "METHODS",
    "AugmentedLagrangian",
    "Constraint",
    "FeasibleLearning",
    "Formulation",
    "Lagrangian",
    "NuPI",
    "PenaltySchedule",
    "PrimalDual",
    "QuadraticPenalty",
    "StepInfo",
    "Terms",
    "Violation",
]
