"""RAdam: Adam with a rectified adaptive learning rate.

Liu, Jiang, He, Chen, Liu, Gao & Han (2020), *On the Variance of the Adaptive Learning Rate and Beyond*, ICLR 2020,
arXiv:1908.03265 (Algorithm 2).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from . import _kernels as K
from ._base import Optimizer
from ._rules import BETA, OneOf, Range, Tuple
from .adam import TORCH_DECAY_SWITCH


def sma_length(beta2: K.Scalar, step: K.Scalar) -> tuple[K.Scalar, K.Scalar]:
    """(ρ_∞, ρ_t): the maximum and the current length of the simple moving average that approximates the EMA,
    ρ_∞ = 2/(1 − β2) − 1 and ρ_t = ρ_∞ − 2t·β2ᵗ/(1 − β2ᵗ)."""
    rho_inf = 2 / (1 - beta2) - 1
    beta2_t = beta2**step
    return rho_inf, rho_inf - 2 * step * beta2_t / (1 - beta2_t)


def rectification(rho_inf: K.Scalar, rho_t: K.Scalar) -> K.Scalar:
    """r_t = √[(ρ_t − 4)(ρ_t − 2)ρ_∞ / ((ρ_∞ − 4)(ρ_∞ − 2)ρ_t)] (defined for ρ_t > 4)."""
    return K.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))


def radam_update_(
    p: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    beta1: K.Scalar,
    beta2: K.Scalar,
    eps: K.Scalar,
    weight_decay: K.Scalar,
    decoupled_weight_decay: bool,
    rho_threshold: K.Scalar,
) -> None:
    """One RAdam step on one tensor.

    While ρ_t ≤ ``rho_threshold`` (the variance of the adaptive rate is intractable) the step is momentum SGD,
    p ← p − lr·m̂; afterwards p ← p − lr·r_t·m̂·√(1 − β2ᵗ)/(√v + eps) (torch.optim.RAdam's eps placement).
    Eagerly the branch is a Python ``if``; compiled (``step`` a 0-d tensor) both are computed and chosen with
    ``torch.where``, so the step number never enters a guard and nothing recompiles.
    """
    if decoupled_weight_decay:
        K.decoupled_decay_(p, lr, weight_decay)
    else:
        grad = K.coupled_decay(grad, p, weight_decay)
    K.ema_(exp_avg, grad, beta1)
    K.ema_sq_(exp_avg_sq, grad, beta2)
    bias_correction1 = K.bias_correction(beta1, step)
    bias_correction2 = K.bias_correction(beta2, step)
    rho_inf, rho_t = sma_length(beta2, step)
    if isinstance(step, Tensor):
        tractable = rho_t > rho_threshold
        # the untaken branch may hold nan (r_t of ρ_t < 4, 0/0 when eps = 0); where() drops it
        rect_size = lr * rectification(rho_inf, rho_t) * K.sqrt(bias_correction2) / bias_correction1
        adaptive = exp_avg / exp_avg_sq.sqrt().add_(eps) * rect_size
        p.sub_(torch.where(tractable, adaptive, exp_avg * (lr / bias_correction1)))
    elif rho_t > rho_threshold:
        step_size = lr * rectification(rho_inf, rho_t) * K.sqrt(bias_correction2) / bias_correction1
        K.addcdiv_scaled_(p, exp_avg, exp_avg_sq.sqrt().add_(eps), -step_size)
    else:
        K.add_scaled_(p, exp_avg, -lr / bias_correction1)


class RAdam(Optimizer):
    """RAdam (Liu et al., 2020): Adam whose adaptive learning rate is multiplied by the variance rectification
    term r_t once the approximated SMA length ρ_t exceeds ``rho_threshold``, and momentum SGD before that.

    Same arguments, defaults and state as ``torch.optim.RAdam`` (``decoupled_weight_decay=True`` gives AdamW-style
    decay), plus ``rho_threshold``: 5 as in torch and the authors' code (default); the paper's Algorithm 2 says 4.
    """

    hyperparameters = {
        "lr": Range(0.0),
        "betas": Tuple(2, BETA),
        "eps": Range(0.0),
        "weight_decay": Range(0.0),
        "decoupled_weight_decay": OneOf((True, False)),
        "rho_threshold": Range(4.0),
    }
    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        *,
        rho_threshold: float = 5.0,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            rho_threshold=rho_threshold,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    update = staticmethod(radam_update_)


R.register(
    R.AlgorithmSpec(
        name="radam",
        cls=RAdam,
        family="adam",
        paper=R.Paper(
            "On the Variance of the Adaptive Learning Rate and Beyond",
            "Liu, Jiang, He, Chen, Liu, Gao, Han",
            2020,
            "1908.03265",
        ),
        summary="Adam with the variance rectification r_t; momentum SGD while ρ_t ≤ 5 (replaces warmup)",
        hparams="lr betas eps weight_decay decoupled_weight_decay rho_threshold",
        search_space={
            "lr": R.LogUniform(1e-5, 1e-1),
            "beta1": R.OneMinusLogUniform(0.5, 0.99),
            "beta2": R.OneMinusLogUniform(0.9, 0.9999),
            "weight_decay": R.LogUniform(1e-6, 1.0),
        },
        state_tensors=2,
        notes=(
            "Threshold: the paper's Algorithm 2 rectifies when ρ_t > 4; the authors' code (N_sma >= 5) and "
            "torch.optim.RAdam (ρ_t > 5) use 5, our default (rho_threshold=4.0 gives the paper's). Below it the step "
            "is lr·m̂ (the paper's and torch's SGD fallback; the authors' code by default skips the update). "
            "eps as in torch: lr·r_t·m̂·√(1 − β2ᵗ)/(√v + eps). Compiled mode picks the branch with torch.where."
        ),
        conventions=(
            R.Convention(
                point="when the rectified step starts",
                paper="Algorithm 2: when ρ_t > 4",
                elsewhere="torch.optim.RAdam: ρ_t > 5; the authors' code: N_sma ≥ 5",
                switch="rho_threshold",
                choices=((5.0, "torch.optim.RAdam (ρ_t > 5)"), (4.0, "the paper (ρ_t > 4)")),
            ),
            R.Convention(
                point="the step before rectification starts",
                paper="Algorithm 2: θ ← θ − α_t·m̂_t (momentum SGD)",
                elsewhere="torch.optim.RAdam: the same; the authors' code skips the update by default",
                fixed="lr·m̂ (the paper, torch)",
            ),
            R.Convention(
                point="eps in the adaptive learning rate",
                paper="Algorithm 2: l_t = √((1 − β2ᵗ)/v_t), no eps",
                elsewhere="torch.optim.RAdam: √(1 − β2ᵗ)/(√v + eps)",
                fixed="torch's √(1 − β2ᵗ)/(√v + eps)",
            ),
            TORCH_DECAY_SWITCH,
        ),
    )
)
