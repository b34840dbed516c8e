"""Optimizer families; each module holds its classes, its update functions and its registry records.

Public building blocks for code outside this package (wrappers, new families): the base class :class:`Optimizer`
(its step pipeline and hooks), the non-finite test :func:`finite_mask`, the global value of a
reduction over sharded (DTensor) tensors :func:`full_value`, torch.distributed.checkpoint's state-creating step
:func:`is_checkpoint_init`, and the hyperparameter rules
(:class:`Range`, :class:`OneOf`, :class:`Tuple`, ``BETA``) that raise ``ValueError`` naming the field.
"""

from ._base import LAYOUT, NONFINITE_POLICIES, Optimizer, Slot, full_value
from ._compat import is_checkpoint_init
from ._nonfinite import finite_mask
from ._rules import BETA, OneOf, Range, Rule, Tuple

__all__ = [
    "BETA",
    "LAYOUT",
    "NONFINITE_POLICIES",
    "OneOf",
    "Optimizer",
    "Range",
    "Rule",
    "Slot",
    "Tuple",
    "finite_mask",
    "full_value",
    "is_checkpoint_init",
]
