"""COAP's correlation-aware projector: cheap gradient steps on P between occasional warm-started randomized SVDs.

Xiao, Sang, Zhi, Liu, Yan, Zhang, Luo & Yuan (2025), *COAP: Memory-Efficient Training with Correlation-Aware
Gradient Projection*, arXiv:2412.00071 (CVPR 2025); authors' code: github.com/bytedance/coap
(``coap_torch/projection/coap_matrix.py``, ``coap_torch/utils/orthogonal.py``, ``optimizer/adamw.py``).

Rules (from the authors' code; the frame X of :mod:`optimlab.optim.projectors`):

* Every ``update_proj_gap`` (T_u) steps P is updated; every ``reproject_factor``-th of those updates (and at the
  first step) it is recomputed by one pass of a randomized range finder *warm-started from the current P*:
  Y = Xᵀ P (k × r), Q = qr(Y), B = Qᵀ Xᵀ (r × d), P ← top-r right singular vectors of B (d × r). The initial P is
  a Gaussian matrix from a generator seeded 3407 (the code's fixed seed), drawn when the state is created, so the
  first step is the same recomputation and no RNG state needs saving.
* The other updates take one gradient step on the correlation-aware loss
  L(P) = MSE(P Pᵀ X, X) · (1 − mean_i cos(M̂_i, G_i)), where M̂ = P m is the current first moment brought back to
  full size and i runs over the rows of the gradient G (its original orientation); the gradient is clipped to
  ℓ2 norm 1 (``clip_grad_norm_``: factor 1/(‖∇‖ + 1e-6) when ‖∇‖ > 1) and P ← P − ``proj_lr``·∇ (0.1 in the code).
  ∇L is computed in closed form here (the reference uses autograd).
* The moments are kept as they are by default (the code's ``restore_state=False``, "empirically False for
  LLaMA"); ``reproject="rotate_sqrt"`` is its ``restore_state=True`` rule.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._layout import every, when
from . import Frame, reprojected

SEED = 3407
COS_EPS = 1e-8  # torch.nn.functional.cosine_similarity's eps
CLIP_EPS = 1e-6  # torch.nn.utils.clip_grad_norm_'s


def initial_projector(d: int, r: int, like: Tensor) -> Tensor:
    g = torch.Generator().manual_seed(SEED)
    return torch.randn((d, r), generator=g, dtype=torch.float32).to(device=like.device, dtype=like.dtype)


def warm_range_finder(X: Tensor, P: Tensor) -> Tensor:
    """One randomized-SVD pass with the current P as sketch: the top-r right singular vectors of QᵀXᵀ."""
    Y = X.t() @ P
    Q, _ = torch.linalg.qr(Y, mode="reduced")
    _, _, Vh = torch.linalg.svd(Q.t() @ X.t(), full_matrices=False)
    return Vh.t()


def coap_loss_grad(P: Tensor, X: Tensor, m: Tensor, left: bool) -> Tensor:
    """∇_P of MSE(PPᵀX, X)·(1 − mean cos(Pm, X)) with cosines over the gradient's rows (X's rows if ``left``)."""
    n = X.numel()
    E = P @ (P.t() @ X) - X
    mse = (E * E).sum() / n
    d_mse = (2 / n) * (E @ (X.t() @ P) + X @ (E.t() @ P))
    dim = 1 if left else 0
    Mh = P @ m
    dot = (Mh * X).sum(dim, keepdim=True)
    nu = torch.linalg.vector_norm(Mh, dim=dim, keepdim=True)
    nx = torch.linalg.vector_norm(X, dim=dim, keepdim=True)
    den = nu.clamp_min(COS_EPS) * nx.clamp_min(COS_EPS)
    cos = dot / den
    corr = 1 - cos.mean()
    # d cos / d Mh = X/den − cos·Mh/nu² (the clamp is inactive above eps)
    nu2 = torch.where(nu > COS_EPS, nu * nu, torch.ones_like(nu))
    dcos = X / den - torch.where(nu > COS_EPS, cos / nu2, torch.zeros_like(nu)) * Mh
    d_corr = -(dcos / cos.numel()) @ m.t()
    grad = corr * d_mse + mse * d_corr
    norm = torch.linalg.vector_norm(grad)
    return grad * torch.clamp(1.0 / (norm + CLIP_EPS), max=1.0)


def _and_not(a: Any, b: Any) -> Any:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return torch.as_tensor(a) & ~torch.as_tensor(b)
    return a and not b


class COAP:
    state_names = ("projector",)

    @staticmethod
    def init(d: int, k: int, r: int, like: Tensor) -> list[Tensor]:
        return [initial_projector(d, r, like)]

    @staticmethod
    def basis(d: int, pstate: list[Tensor], dtype: torch.dtype) -> Tensor:
        return pstate[0]

    @staticmethod
    def refresh_(frame: Frame, m: Tensor, v: Tensor | None, pstate: list[Tensor], *, step: Any, hp: dict) -> None:
        (P,) = pstate
        mode = hp["reproject"]
        left = frame.left
        proj_lr = hp["proj_lr"]
        gap = hp["update_proj_gap"]
        recompute = every(step, gap * hp["reproject_factor"])
        descend = _and_not(every(step, gap), recompute)
        carried = [P] + ([] if mode == "none" else [m] + ([] if v is None else [v]))
        extra = [frame.X] + ([m] if mode == "none" else [])

        nc = len(carried)  # closures must not capture tensors (torch.cond would see them as aliased inputs)

        def finish(P_old: Tensor, P_new: Tensor, mv: list[Tensor]) -> list[Tensor]:
            if mode == "none":
                return [P_new]
            return [P_new, *reprojected(mode, P_old, P_new, mv[0], mv[1] if len(mv) > 1 else None)]

        def range_finder(P_old: Tensor, *rest: Tensor) -> list[Tensor]:
            return finish(P_old, warm_range_finder(rest[nc - 1], P_old), list(rest[: nc - 1]))

        def gradient_step(P_old: Tensor, *rest: Tensor) -> list[Tensor]:
            mv = list(rest[: nc - 1])
            X = rest[nc - 1]
            m_old = mv[0] if mode != "none" else rest[nc]
            P_new = P_old - proj_lr * coap_loss_grad(P_old, X, m_old, left)
            return finish(P_old, P_new, mv)

        when(recompute, range_finder, carried, extra)
        when(descend, gradient_step, carried, extra)

    @staticmethod
    def after_step_(frame: Frame, pstate: list[Tensor], *, step: Any, hp: dict) -> None:
        pass
