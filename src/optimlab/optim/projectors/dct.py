"""SVD-free projector: r columns of a fixed orthonormal DCT basis, chosen by their alignment with the gradient.

Modoranu, Safaryan, Schultheis, (Ryabinin, Chumachenko,) & Alistarh (2025), *SVD-Free Low-Rank Adaptive Gradient
Optimization for Large Language Models* (v1; later versions: *FFT-based Dynamic Subspace Selection for Low-Rank
Adaptive Optimization of Large Language Models*), arXiv:2505.17967. Authors' code: ISTA-DASLab-Optimizers
(``DCTAdamW``, ``FFTLowRankProjector``).

Q is the orthonormal DCT-II basis of size d (columns q_i(j) = c_i cos(π (2j + 1) i / (2d)), c_0 = √(1/d),
c_i = √(2/d)), the same for every layer with that d. On a refresh the scores s_i = ‖q_iᵀ X‖ (ℓ1 norm by default, as
the authors' code; ℓ2 optional) rank the d basis vectors and the r best are kept, in descending score order; the
state is only those r indices (int32). The selected columns are rebuilt from the indices when needed (d·r cosines,
computed from exact integer phases so they stay accurate for large d), so no d × d matrix is kept between steps.
On a refresh the paper rotates the moments into the new basis with R = Q_newᵀ Q_old (``reproject="rotate"``:
m ← R m, v ← |R v|). The paper's optional error feedback (a full-size buffer of the discarded gradient) is not
provided.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .._layout import every, when
from . import Frame, reprojected


def dct_columns(d: int, indices: Tensor, dtype: torch.dtype) -> Tensor:
    """Columns ``indices`` of the d × d orthonormal DCT-II basis (each column a basis vector), as a d × r matrix."""
    j = torch.arange(d, device=indices.device, dtype=torch.int64)
    idx = indices.to(torch.int64)
    phase = ((2 * j[:, None] + 1) * idx[None, :]) % (4 * d)  # exact: cos(π·phase/(2d)) has period 4d in phase
    cols = torch.cos(phase.to(dtype) * (math.pi / (2 * d)))
    first = (idx == 0).to(dtype)
    return cols * (first * math.sqrt(1.0 / d) + (1 - first) * math.sqrt(2.0 / d))


def select_columns(X: Tensor, rank: int, norm: str) -> Tensor:
    """Indices (int32, best first) of the ``rank`` DCT basis vectors q_i with the largest ‖q_iᵀ X‖."""
    d = X.shape[0]
    Q = dct_columns(d, torch.arange(d, device=X.device), X.dtype)
    S = Q.t() @ X
    scores = S.abs().sum(dim=1) if norm == "l1" else torch.linalg.vector_norm(S, dim=1)
    return torch.topk(scores, rank, sorted=True).indices.to(torch.int32)


class DCT:
    state_names = ("indices",)

    @staticmethod
    def init(d: int, k: int, r: int, like: Tensor) -> list[Tensor]:
        return [torch.zeros(r, dtype=torch.int32, device=like.device)]

    @staticmethod
    def basis(d: int, pstate: list[Tensor], dtype: torch.dtype) -> Tensor:
        return dct_columns(d, pstate[0], dtype)

    @staticmethod
    def refresh_(frame: Frame, m: Tensor, v: Tensor | None, pstate: list[Tensor], *, step: Any, hp: dict) -> None:
        (indices,) = pstate
        mode = hp["reproject"]
        rank = indices.shape[0]
        norm = hp["dct_norm"]
        moments = [] if mode == "none" else [m] + ([] if v is None else [v])

        def fn(idx_old: Tensor, *rest: Tensor) -> list[Tensor]:
            *mv, X = rest
            idx_new = select_columns(X, rank, norm)
            if not mv:
                return [idx_new]
            d = X.shape[0]
            P_old, P_new = dct_columns(d, idx_old, X.dtype), dct_columns(d, idx_new, X.dtype)
            return [idx_new, *reprojected(mode, P_old, P_new, mv[0], mv[1] if len(mv) > 1 else None)]

        when(every(step, hp["update_proj_gap"]), fn, [indices, *moments], [frame.X])

    @staticmethod
    def after_step_(frame: Frame, pstate: list[Tensor], *, step: Any, hp: dict) -> None:
        pass
