"""Multi-task and multi-objective training: Jacobian descent, gradient aggregators, loss weightings, gradient
surgery with an EMA, and inter-domain gradient matching — each composes with any optimizer.

* :mod:`.jacobian` — :func:`jacobian_backward` (per-task gradients of the shared parameters, an aggregator, the
  result in ``.grad``; one all-reduce of the per-task gradients under DDP), :func:`jacobian`, :func:`gramian`;
* :mod:`.aggregators` — :class:`UPGrad`, :class:`MGDA`, :class:`PCGrad`, :class:`CAGrad`, :class:`IMTLG`,
  :class:`Mean`, :class:`Sum` (callables J → d; ``weights(G)`` from the Gramian);
* :mod:`.weighting` — :class:`EqualWeighting`, :class:`UncertaintyWeighting`, :class:`DWA`;
  :mod:`.gradnorm` — :class:`GradNorm`;
* :mod:`.bloop` — :class:`Bloop` (auxiliary gradient projected against the EMA of the main gradient);
* :mod:`.fish` — :class:`Fish` (meta step around any base optimizer).

Stateful pieces (DWA, GradNorm, Bloop, Fish) keep their state in tensors and round-trip through
``state_dict()`` / ``torch.load(weights_only=True)`` bit-exactly.
"""

from .aggregators import IMTLG, MGDA, Aggregator, CAGrad, Mean, PCGrad, Sum, UPGrad, gramian_of
from .bloop import Bloop
from .fish import Fish
from .gradnorm import GradNorm
from .jacobian import gramian, jacobian, jacobian_backward
from .weighting import DWA, EqualWeighting, UncertaintyWeighting

__all__ = [
    "DWA",
    "IMTLG",
    "MGDA",
    "Aggregator",
    "Bloop",
    "CAGrad",
    "EqualWeighting",
    "Fish",
    "GradNorm",
    "Mean",
    "PCGrad",
    "Sum",
    "UPGrad",
    "UncertaintyWeighting",
    "gramian",
    "gramian_of",
    "jacobian",
    "jacobian_backward",
]
