"""GaLore's projector: the top-r singular vectors of the current gradient, recomputed every T steps.

Zhao, Zhang, Chen, Wang, Anandkumar & Tian (2024), *GaLore: Memory-Efficient LLM Training by Gradient Low-Rank
Projection*, arXiv:2403.03507, Algorithm 2 (GaLore for Adam): at t mod T = 0, U, S, V ← SVD(G_t) and P_t ← U[:, :r]
(the side with fewer rows/columns is projected); otherwise P_t ← P_{t−1}. The moments are not transformed when P
changes. The SVD is taken of the gradient in its own orientation (as the authors' code does), so the signs of the
singular vectors are LAPACK's for that matrix.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._layout import every, when
from . import Frame, reprojected


def top_singular_vectors(M: Tensor, left: bool, rank: int) -> Tensor:
    """The d × r orthonormal basis of the top-r left (``left``) or right singular vectors of ``M``."""
    U, _, Vh = torch.linalg.svd(M, full_matrices=False)
    return U[:, :rank] if left else Vh[:rank].t()


class SVD:
    state_names = ("projector",)

    @staticmethod
    def init(d: int, k: int, r: int, like: Tensor) -> list[Tensor]:
        return [like.new_zeros((d, r))]

    @staticmethod
    def basis(d: int, pstate: list[Tensor], dtype: torch.dtype) -> Tensor:
        return pstate[0]

    @staticmethod
    def refresh_(frame: Frame, m: Tensor, v: Tensor | None, pstate: list[Tensor], *, step: Any, hp: dict) -> None:
        (P,) = pstate
        mode = hp["reproject"]
        rank = P.shape[1]
        moments = [] if mode == "none" else [m] + ([] if v is None else [v])

        def fn(P_old: Tensor, *rest: Tensor) -> list[Tensor]:
            *mv, M = rest
            P_new = top_singular_vectors(M, frame.left, rank)
            if not mv:
                return [P_new]
            return [P_new, *reprojected(mode, P_old, P_new, mv[0], mv[1] if len(mv) > 1 else None)]

        when(every(step, hp["update_proj_gap"]), fn, [P, *moments], [frame.M])

    @staticmethod
    def after_step_(frame: Frame, pstate: list[Tensor], *, step: Any, hp: dict) -> None:
        pass
