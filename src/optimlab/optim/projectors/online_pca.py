"""Online Subspace Descent's projector: P follows the gradient's principal subspace by online PCA, one optimizer
step per training step, instead of a periodic SVD.

Liang, Liu, Chen & Liu (2024), *Memory-Efficient LLM Training with Online Subspace Descent*, arXiv:2408.12857
(NeurIPS 2024); authors' code: github.com/kyleliang919/Online-Subspace-Descent (``proj_type="continuous"``).

P is initialised at the first step by the top-r singular vectors of G_1 (as GaLore). From the second step on, after
the weight update that used P_t, P takes one AdamW step on the online-PCA loss of the normalised gradient
Ĝ = G/‖G‖_F (in the frame X of :mod:`optimlab.optim.projectors`)

    L(P) = ‖P Pᵀ X̂ − X̂‖²_F + λ ‖PᵀP − I‖²_F,
    ∇L   = 2 (E X̂ᵀ P + X̂ Eᵀ P) + 4λ P (PᵀP − I),   E = P Pᵀ X̂ − X̂,

with the projector's own AdamW state (``proj_exp_avg``, ``proj_exp_avg_sq``; β = (0.9, 0.999), eps = 1e-8, i.e.
``torch.optim.AdamW``'s defaults, which the authors' code uses), step size ``proj_lr_ratio · lr`` (the code uses
lr_P = (1/T)·lr_t/lr_0, i.e. a fixed ratio to the scheduled lr; ratio 0.5 is its value for lr_0 = 0.01, T = 200) and
decoupled weight decay ``proj_weight_decay`` (torch's AdamW default 0.01 in the code). The orthogonality penalty λ
(``proj_ortho``) is the paper's; the authors' code leaves it out (λ = 0, the default here). Moments are not
transformed when P moves. A zero gradient gives X̂ = 0 (no NaN).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._layout import when
from ..adam import adam_update_
from . import Frame
from .svd import top_singular_vectors

#: the projector's AdamW constants (torch.optim.AdamW defaults, as in the authors' code)
PROJ_BETAS = (0.9, 0.999)
PROJ_EPS = 1e-8


def pca_loss_grad(P: Tensor, X: Tensor, ortho: Any) -> Tensor:
    """∇_P of ‖P Pᵀ X̂ − X̂‖² + λ‖PᵀP − I‖² with X̂ = X/‖X‖ (0 for X = 0)."""
    norm = torch.linalg.vector_norm(X)
    Xh = X * torch.where(norm > 0, 1 / norm, torch.zeros_like(norm))
    E = P @ (P.t() @ Xh) - Xh
    grad = 2 * (E @ (Xh.t() @ P) + Xh @ (E.t() @ P))
    if isinstance(ortho, Tensor) or ortho != 0:
        gram = P.t() @ P - torch.eye(P.shape[1], dtype=P.dtype, device=P.device)
        grad = grad + 4 * ortho * (P @ gram)
    return grad


class OnlinePCA:
    state_names = ("projector", "proj_exp_avg", "proj_exp_avg_sq")

    @staticmethod
    def init(d: int, k: int, r: int, like: Tensor) -> list[Tensor]:
        return [like.new_zeros((d, r)) for _ in range(3)]

    @staticmethod
    def basis(d: int, pstate: list[Tensor], dtype: torch.dtype) -> Tensor:
        return pstate[0]

    @staticmethod
    def refresh_(frame: Frame, m: Tensor, v: Tensor | None, pstate: list[Tensor], *, step: Any, hp: dict) -> None:
        P = pstate[0]
        rank = P.shape[1]

        def fn(P_old: Tensor, M: Tensor) -> list[Tensor]:
            return [top_singular_vectors(M, frame.left, rank)]

        when(step == 1, fn, [P], [frame.M])

    @staticmethod
    def after_step_(frame: Frame, pstate: list[Tensor], *, step: Any, hp: dict) -> None:
        lr, ratio, wd, ortho = hp["lr"], hp["proj_lr_ratio"], hp["proj_weight_decay"], hp["proj_ortho"]

        def fn(P: Tensor, m: Tensor, v: Tensor, X: Tensor) -> list[Tensor]:
            P, m, v = P.clone(), m.clone(), v.clone()
            grad = pca_loss_grad(P, X, ortho)
            adam_update_(
                P,
                grad,
                m,
                v,
                step=step - 1,
                lr=lr * ratio,
                beta1=PROJ_BETAS[0],
                beta2=PROJ_BETAS[1],
                eps=PROJ_EPS,
                weight_decay=wd,
                decoupled=True,
            )
            return [P, m, v]

        when(step > 1, fn, pstate, [frame.X])
