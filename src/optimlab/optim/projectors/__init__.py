"""Low-rank gradient projectors for the GaLore family (:mod:`optimlab.optim.projected`) and Subspace-Momentum
(:mod:`optimlab.optim.subset_norm`).

Conventions shared by every projector:

* A parameter with ``ndim >= 2`` is seen as the matrix ``M = grad.reshape(shape[0], -1)`` (m × n; conv kernels
  become out_channels × rest). Like GaLore, the *shorter* side is projected: for m < n the rows ("left",
  ``R = Pᵀ M``), otherwise the columns ("right", ``R = M P``). Internally both cases use the frame
  ``X = M`` (left) or ``X = Mᵀ`` (right), a d × k matrix with d = min(m, n) ≤ k, so a projector is always a d × r
  matrix ``P`` with (near-)orthonormal columns, the projected gradient is ``R = Pᵀ X`` (r × k) and a low-rank
  direction ``N`` goes back as ``P N``. Low-rank moments are stored in this frame (r × k), i.e. transposed relative
  to GaLore's m × r for the "right" case; the numbers are the same.
* Every projector keeps all it needs as tensors in the optimizer state (projector matrix, DCT indices, the
  projector's own Adam moments), so ``state_dict()`` loads with ``torch.load(weights_only=True)`` and a resumed run
  is bit-identical, including between two refreshes.
* Refreshes are scheduled by the parameter's step counter ``t`` (counting from 1): a projector refreshed "every T
  steps" is recomputed at t = 1, T + 1, 2T + 1, ... (GaLore's ``iter % T == 0`` with a 0-based iter).

Moment re-projection on refresh (``reproject``), with C = P_newᵀ P_old (r × r):

* ``"none"``: moments are kept as they are, now read in the new basis (GaLore, Online Subspace Descent, COAP's
  default ``restore_state=False``);
* ``"rotate"``: m ← C m, v ← |C v| (the DCT paper's rotation, Modoranu et al. 2025);
* ``"rotate_sqrt"``: m ← C m, v ← (C √v)² (COAP's ``restore_state=True``: the moments are projected back to full
  size with P_old and down again with P_new, v through its square root);
* ``"reset"``: m ← 0, v ← 0 (Subspace-Momentum's rule for its momentum).
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

REPROJECT = ("none", "rotate", "rotate_sqrt", "reset")


@dataclass
class Frame:
    """The matrix view of one gradient: ``M`` (m × n), whether the rows are projected, and ``X`` (d × k)."""

    M: Tensor
    left: bool

    @property
    def X(self) -> Tensor:
        return self.M if self.left else self.M.t()

    @staticmethod
    def of(grad: Tensor) -> Frame:
        M = grad.reshape(grad.shape[0], -1)
        return Frame(M, M.shape[0] < M.shape[1])

    def to_param(self, low: Tensor, P: Tensor) -> Tensor:
        """``P low`` (d × k) back in the parameter's orientation (m × n)."""
        full = P @ low
        return full if self.left else full.t()


def frame_dims(shape: tuple[int, ...]) -> tuple[int, int]:
    """(d, k): the projected (shorter) and the other side of a parameter shape seen as a matrix."""
    m = shape[0]
    n = 1
    for s in shape[1:]:
        n *= s
    return (m, n) if m < n else (n, m)


def reprojected(mode: str, P_old: Tensor, P_new: Tensor, m: Tensor, v: Tensor | None) -> tuple[Tensor, ...]:
    """New (m, v) after a basis change (see the module docstring); ``v`` may be None (momentum only)."""
    if mode == "reset":
        out = (m.new_zeros(m.shape),) if v is None else (m.new_zeros(m.shape), v.new_zeros(v.shape))
        return out
    C = P_new.t() @ P_old
    m_new = C @ m
    if v is None:
        return (m_new,)
    if mode == "rotate":
        return m_new, (C @ v).abs()
    if mode == "rotate_sqrt":
        return m_new, (C @ v.sqrt()).square()
    raise ValueError(f"reproject must be one of {list(REPROJECT)}, got {mode!r}")


def projector(kind: str):
    """The projector for a kind name: "svd", "dct", "online_pca" or "coap"."""
    if kind not in _KINDS:
        raise ValueError(f"projector must be one of {list(KINDS)}, got {kind!r}")
    return _KINDS[kind]


KINDS = ("svd", "dct", "online_pca", "coap")

from .coap import COAP  # noqa: E402  (the projector modules import Frame and reprojected from here)
from .dct import DCT  # noqa: E402
from .online_pca import OnlinePCA  # noqa: E402
from .svd import SVD  # noqa: E402

_KINDS = {"svd": SVD, "dct": DCT, "online_pca": OnlinePCA, "coap": COAP}

__all__ = ["COAP", "DCT", "SVD", "Frame", "KINDS", "REPROJECT", "OnlinePCA", "frame_dims", "projector", "reprojected"]
