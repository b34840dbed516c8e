"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner, refreshed every few steps.

Vyas, Morwani, Zhao, Kwun, Shapira, Brandfonbrener, Janson, Kakade (2024), *SOAP: Improving and Stabilizing
Shampoo using Adam*, arXiv:2409.11321 (Algorithm 3); authors' code github.com/nikhilvyas/SOAP ``soap.py``
(defaults ``SOAP(lr=3e-3, betas=(0.95, 0.95), weight_decay=0.01, precondition_frequency=10)``, eps 1e-8,
``shampoo_beta`` = β₂, ``max_precond_dim`` 10000, no 1-D preconditioning, bias correction on).

A parameter is viewed as a matrix G (``(shape[0], prod(shape[1:]))``; vectors as (1, numel) with no left side).
Each side no longer than ``max_precond_dim`` keeps Shampoo's statistic and an orthonormal basis of it
(vectors: the right side only with ``precondition_1d=True``; otherwise, and for longer sides, the basis is the
identity). With s = t − 1 Adam steps::

    step 1:   L ← (1 − β_s)·G Gᵀ,  R ← (1 − β_s)·Gᵀ G,  Q_L, Q_R = eigenvectors (descending eigenvalues);
              no parameter update ("we never use the current gradients in the projection", authors' code)
    step t:   G' = Q_Lᵀ G Q_R;   M ← β₁M + (1 − β₁)G;   M' = Q_Lᵀ M Q_R
              V ← β₂V + (1 − β₂)·G'⊙G'                                (V lives in the rotated basis)
              N = Q_L (M' / (√V + ε)) Q_Rᵀ          (÷ RMS(N) with normalize_grads)
              p ← p − lr·√(1 − β₂ˢ)/(1 − β₁ˢ)·N;   then p ← p − lr·λ·p   (decay after the step, as the code)
              L ← β_s L + (1 − β_s) G Gᵀ,  R likewise
              if s % precondition_frequency == 0:  for each side, sort the columns of Q by the estimated
                  eigenvalues diag(Qᵀ L Q) (descending), Q ← qr(L Q) (one power-iteration step), and permute
                  V's rows/columns the same way

M is kept in the original space (Algorithm 3); the authors' code keeps it rotated and re-rotates it when Q
changes, which is the same in exact arithmetic. QR factors are sign-normalized (diag R ≥ 0); column signs of
Q cancel in N, so this only makes the state deterministic.

Null space: a statistic built from few gradients is rank-deficient (L of a 32×16 weight after one batch of 8 has
rank ≤ 8), and any orthonormal basis of its null space is an eigenbasis. Adam's diagonal V is not invariant to
that choice, and the next gradients do have components there, so the update depended on whichever basis
rounding made ``eigh``/QR return: a 2-process DDP/FSDP run (the all-reduced gradient differs from one process's
by ~1e-8) moved the weights by ~2.5e-2 at lr 1e-2 from step 2 on (issue 13). Directions with eigenvalue (or
estimate diag(QᵀLQ)) at or below ``NULL_TOL``·eps·λ_max get a canonical basis of that space instead
(:func:`complete`), a continuous function of the statistic, so the run no longer depends on rounding. This is a
choice the paper leaves open (in exact arithmetic every basis is an eigenbasis); the authors' code keeps eigh's.

Statistics are exactly symmetric (symmetrized outer products), positive semi-definite, and Q stays orthonormal
(tests/test_soap.py). Under ``compile=True`` the
update runs eagerly (``torch._dynamo.disable``): it branches on the step for the first step and the refreshes.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from ._base import Optimizer
from ._rules import BETA, OneOf, Range, Tuple
from .shampoo import symmetric_outer


def matrix_view(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) >= 2:
        return shape[0], math.prod(shape[1:])
    return 1, math.prod(shape)


def sides(shape: tuple[int, ...], max_precond_dim: float, precondition_1d: bool) -> tuple[bool, bool]:
    """Whether the (left, right) side is preconditioned (rotated)."""
    rows, cols = matrix_view(shape)
    if len(shape) < 2:
        return False, precondition_1d and cols <= max_precond_dim
    return rows <= max_precond_dim, cols <= max_precond_dim


#: eigenvalues of a statistic at or below ``NULL_TOL · eps(dtype) · λ_max`` are rounding noise (measured ~1·eps)
NULL_TOL = 100


def numerical_rank(values: Tensor) -> int:
    """How many of the (descending) eigenvalue estimates are above the rounding level of the largest."""
    top = values[0].clamp_min(0) if values.numel() else values.new_zeros(())
    return int((values > NULL_TOL * torch.finfo(values.dtype).eps * top).sum())


def complete(Q: Tensor, rank: int) -> Tensor:
    """Q's first ``rank`` columns, then the canonical orthonormal basis of their complement: the eigenvectors of
    P·diag(1, …, n)·P, P = I − Q_r Q_rᵀ, with nonzero eigenvalue (they lie in [1, n]; the kept span's are 0),
    descending. It depends on the complement only (not on how rounding rotated it) and continuously so."""
    n = Q.shape[0]
    if rank >= n:
        return Q
    U = Q[:, :rank]
    P = torch.eye(n, dtype=Q.dtype, device=Q.device) - U @ U.T
    C = (P * torch.arange(1, n + 1, dtype=Q.dtype, device=Q.device)) @ P
    fill = torch.linalg.eigh((C + C.T) * 0.5)[1][:, rank:]
    return torch.cat([U, torch.flip(fill, [1])], dim=1)


def eigenbasis(S: Tensor) -> Tensor:
    """Eigenvectors of the symmetric S, columns in descending order of eigenvalue; the null space (eigenvalues
    at rounding level) gets the canonical basis of :func:`complete`."""
    values, vectors = torch.linalg.eigh(S)
    values, vectors = torch.flip(values, [0]), torch.flip(vectors, [1])
    return complete(vectors, numerical_rank(values))


def power_qr(S: Tensor, Q: Tensor) -> tuple[Tensor, Tensor]:
    """One power-iteration step for the eigenbasis of S from Q: columns sorted by diag(Qᵀ S Q) (descending),
    then QR of S Q (sign-normalized so diag R ≥ 0); columns whose estimate is at rounding level (S q ≈ 0, so QR
    would return noise) get the canonical basis of :func:`complete`. Returns the new basis and the sort order."""
    SQ = S @ Q
    estimates = (Q * SQ).sum(dim=0)
    order = torch.argsort(estimates, descending=True)
    q, r = torch.linalg.qr(SQ[:, order])
    signs = torch.where(torch.diagonal(r) < 0, -1.0, 1.0).to(q.dtype)
    return complete(q * signs, numerical_rank(estimates[order])), order


def _rotate(X: Tensor, QL: Tensor, QR: Tensor) -> Tensor:
    """Q_Lᵀ X Q_R (identity on a side without a basis)."""
    if QL.numel():
        X = QL.T @ X
    return X @ QR if QR.numel() else X


def _unrotate(X: Tensor, QL: Tensor, QR: Tensor) -> Tensor:
    """Q_L X Q_Rᵀ."""
    if QL.numel():
        X = QL @ X
    return X @ QR.T if QR.numel() else X


@torch._dynamo.disable
def soap_update_(
    p: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    L: Tensor,
    R: Tensor,
    QL: Tensor,
    QR: Tensor,
    *,
    step: Any,
    lr: Any,
    beta1: Any,
    beta2: Any,
    shampoo_beta: Any,
    eps: Any,
    weight_decay: Any,
    precondition_frequency: Any,
    normalize_grads: bool,
    correct_bias: bool,
) -> None:
    """One SOAP step on one tensor (module docstring). Runs eagerly, also under ``compile=True``."""
    t = int(step)
    lr, beta1, beta2, eps, weight_decay = float(lr), float(beta1), float(beta2), float(eps), float(weight_decay)
    shampoo_beta = beta2 if shampoo_beta is None else float(shampoo_beta)
    rows, cols = matrix_view(tuple(p.shape))
    G = grad.reshape(rows, cols)
    if t > 1:
        s = t - 1
        exp_avg.lerp_(grad, 1 - beta1)
        M_rot = _rotate(exp_avg.reshape(rows, cols), QL, QR)
        V = exp_avg_sq.view(rows, cols)
        G_rot = _rotate(G, QL, QR)
        V.mul_(beta2).addcmul_(G_rot, G_rot, value=1 - beta2)
        N = _unrotate(M_rot / (V.sqrt() + eps), QL, QR)
        if normalize_grads:
            N = N / (1e-30 + N.square().mean().sqrt())
        step_size = lr * math.sqrt(1 - beta2**s) / (1 - beta1**s) if correct_bias else lr
        p.add_(N.reshape(p.shape), alpha=-step_size)
        if weight_decay > 0:
            p.add_(p, alpha=-lr * weight_decay)
    if QL.numel():
        L.lerp_(symmetric_outer(G), 1 - shampoo_beta)
    if QR.numel():
        R.lerp_(symmetric_outer(G.T), 1 - shampoo_beta)
    if t == 1:
        if QL.numel():
            QL.copy_(eigenbasis(L))
        if QR.numel():
            QR.copy_(eigenbasis(R))
    elif (t - 1) % int(precondition_frequency) == 0:
        V = exp_avg_sq.view(rows, cols)
        if QL.numel():
            q, order = power_qr(L, QL)
            QL.copy_(q)
            V.copy_(V[order, :])
        if QR.numel():
            q, order = power_qr(R, QR)
            QR.copy_(q)
            V.copy_(V[:, order])


class SOAP(Optimizer):
    """SOAP (Vyas et al. 2024): Adam run in the slowly refreshed eigenbasis of Shampoo's statistics.

    Args (the authors' names and defaults): lr 3e-3, betas (0.95, 0.95), shampoo_beta ``None`` (= β₂),
    eps 1e-8, weight_decay 0.01 (decoupled, applied after the step), precondition_frequency 10,
    max_precond_dim 10000, precondition_1d False, normalize_grads False, correct_bias True.
    """

    shard_local = False  # sharded parameters: gather, update the full tensor, keep the shard
    guard_every_update = True  # its linear algebra can fail: snapshot, check, restore (Optimizer._apply)

    supports_complex = False
    hyperparameters = {
        "lr": Range(0.0),
        "betas": Tuple(2, BETA),
        "shampoo_beta": Range(0.0, 1.0, high_open=True, optional=True),
        "eps": Range(0.0),
        "weight_decay": Range(0.0),
        "precondition_frequency": Range(1, math.inf, integer=True),
        "max_precond_dim": Range(0, math.inf, integer=True),
        "precondition_1d": OneOf((True, False)),
        "normalize_grads": OneOf((True, False)),
        "correct_bias": OneOf((True, False)),
    }
    state_names = ("exp_avg", "exp_avg_sq", "L", "R", "QL", "QR")

    def __init__(
        self,
        params,
        lr: float = 3e-3,
        betas: tuple[float, float] = (0.95, 0.95),
        shampoo_beta: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.01,
        precondition_frequency: int = 10,
        max_precond_dim: int = 10000,
        *,
        precondition_1d: bool = False,
        normalize_grads: bool = False,
        correct_bias: bool = True,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            shampoo_beta=shampoo_beta,
            eps=eps,
            weight_decay=weight_decay,
            precondition_frequency=precondition_frequency,
            max_precond_dim=max_precond_dim,
            precondition_1d=precondition_1d,
            normalize_grads=normalize_grads,
            correct_bias=correct_bias,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    def init_state(self, p: Tensor, group: dict[str, Any]) -> list[Tensor]:
        rows, cols = matrix_view(tuple(p.shape))
        left, right = sides(tuple(p.shape), group["max_precond_dim"], group["precondition_1d"])

        def square(n: int, on: bool) -> Tensor:
            return p.new_zeros(n, n) if on else p.new_empty(0)

        return [
            torch.zeros_like(p, memory_format=torch.contiguous_format),
            torch.zeros_like(p, memory_format=torch.contiguous_format),
            square(rows, left),
            square(cols, right),
            square(rows, left),
            square(cols, right),
        ]

    update = staticmethod(soap_update_)


def _soap_state_bytes(shape, dtype, hp) -> int:
    rows, cols = matrix_view(tuple(shape))
    left, right = sides(tuple(shape), hp.get("max_precond_dim", 10000), hp.get("precondition_1d", False))
    factors = 2 * ((rows * rows if left else 0) + (cols * cols if right else 0))  # statistics and bases
    return R.dense_state_bytes(shape, dtype, 2) + factors * R.compute_dtype(dtype).itemsize


R.register(
    R.AlgorithmSpec(
        name="soap",
        cls=SOAP,
        family="second_order",
        paper=R.Paper(
            "SOAP: Improving and Stabilizing Shampoo using Adam",
            "Vyas, Morwani, Zhao, Kwun, Shapira, Brandfonbrener, Janson, Kakade",
            2024,
            "2409.11321",
        ),
        summary="Adam in the eigenbasis of Shampoo's L, R (refreshed by one power-iteration + QR every f steps)",
        hparams="lr betas eps weight_decay precondition_frequency",
        search_space={
            "lr": R.LogUniform(1e-4, 3e-2),
            "beta1": R.OneMinusLogUniform(0.8, 0.99),
            "beta2": R.OneMinusLogUniform(0.9, 0.999),
            "weight_decay": R.LogUniform(1e-5, 0.3),
        },
        state_tensors=2,
        state_formula=_soap_state_bytes,
        notes=(
            "Authors' defaults (lr 3e-3, betas (0.95, 0.95), eps 1e-8, decay 0.01, refresh every 10 steps, "
            "max_precond_dim 10000). As the authors' code: the first step only initializes L, R and the "
            "eigenbases (no update); eps is added to √V (not bias-corrected V); weight decay p ← p − lr·λ·p is "
            "applied after the step. ≥3-D tensors are rotated as the (shape[0], prod(rest)) matrix (the code's "
            "default rotates every dimension); 1-D parameters are plain Adam unless precondition_1d=True."
        ),
        conventions=(
            R.Convention(
                point="1-D parameters",
                paper="—",
                elsewhere="the authors' soap.py: `precondition_1d=False` (plain Adam on vectors) by default",
                switch="precondition_1d",
                choices=((False, "the authors' default"), (True, "the authors' `precondition_1d=True`")),
            ),
            R.Convention(
                point="tensors of 3 or more dims",
                paper="—",
                elsewhere="the authors' soap.py: one rotation per dimension by default",
                fixed="one rotation per side of the (shape[0], prod(rest)) matrix",
            ),
            R.Convention(
                point="null space of a rank-deficient statistic (few gradients so far)",
                paper="— (every orthonormal basis of it is an eigenbasis)",
                elsewhere="the authors' soap.py: the basis eigh / QR return, which rounding rotates",
                fixed="a canonical basis (eigenvectors of P·diag(1..n)·P on it), so data-parallel runs match",
            ),
        ),
    )
)
