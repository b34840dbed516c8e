"""EXAdam: Adam with cross-moment debiasing and gradient acceleration.

Adly (2024), *EXAdam: The Power of Adaptive Cross-Moments*, arXiv:2412.20302. With Adam's biased moments m, v:

    d1 = 1 + v/(v + ε)·β2ᵗ;   d2 = 1 + m²/(m² + ε)·β1ᵗ
    m̃ = m/(1 − β1ᵗ)·d1;   ṽ = v/(1 − β2ᵗ)·d2;   g̃ = g/(1 − β1ᵗ)·d1
    θ ← θ − αₜ·(m̃ + g̃)/(√ṽ + ε)

Which form, and why. The paper exists in two versions. Version 1 (Dec 2024) lists three enhancements, the third
a dynamic step size "that allows for continuous growth of the learning rate"; the first commit of the author's
code (AhmedMostafa16/EXAdam, exadam.py) computes it as αₜ = α·ln(√2·√(t + 1)). Version 2 of the paper lists
only the first two enhancements (its abstract reports 38.46% faster convergence instead of 48.07%), and the
current official exadam.py has no dynamic step size (αₜ = α). The default here is therefore the current form,
``dynamic_step_size=False``; ``dynamic_step_size=True`` gives the version-1 / first-commit αₜ. In that mode the
step grows without bound (ln t/2), so pair it with a decaying learning-rate schedule.

Weight decay follows the official code: decoupled, θ ← θ − α·λ·θ before the update (with the base α, not αₜ);
it is not part of the paper's algorithm. The same ε appears in d1, d2 and the denominator, as in the code.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from . import _kernels as K
from ._base import Optimizer
from ._rules import BETA, OneOf, Range, Tuple


def dynamic_step_factor(step: K.Scalar) -> K.Scalar:
    """ln(√2·√(t + 1)) = ½·ln(2(t + 1)), the version-1 EXAdam step-size multiplier (Python number or tensor)."""
    if isinstance(step, Tensor):
        return 0.5 * torch.log(2 * (step + 1))
    return 0.5 * math.log(2 * (step + 1))


def exadam_update_(
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
    dynamic_step_size: bool = False,
) -> None:
    """One EXAdam step on one tensor (see the module docstring for the rule)."""
    K.decoupled_decay_(p, lr, weight_decay)
    K.ema_(exp_avg, grad, beta1)
    K.ema_sq_(exp_avg_sq, grad, beta2)
    beta1_t, beta2_t = beta1**step, beta2**step
    d1 = (exp_avg_sq / (exp_avg_sq + eps)).mul_(beta2_t).add_(1)
    m_sq = exp_avg * exp_avg
    d2 = (m_sq / (m_sq + eps)).mul_(beta1_t).add_(1)
    numer = (exp_avg + grad).mul_(d1)  # (m̃ + g̃)·(1 − β1ᵗ)
    denom = (exp_avg_sq * d2 / (1 - beta2_t)).sqrt_().add_(eps)  # √ṽ + ε
    step_size = lr / (1 - beta1_t)
    if dynamic_step_size:
        step_size = step_size * dynamic_step_factor(step)
    K.addcdiv_scaled_(p, numer, denom, -step_size)


class EXAdam(Optimizer):
    """EXAdam (Adly, 2024): cross-moment debiasing d1, d2 and the bias-corrected gradient added to m̃.

    Two state tensors (``exp_avg``, ``exp_avg_sq``). Defaults are the official code's (lr=1e-3,
    betas=(0.9, 0.999), eps=1e-8, weight_decay=0); ``dynamic_step_size=True`` multiplies the step by
    ln(√2·√(t + 1)) (paper version 1 / first official commit; off in the current version).
    """

    hyperparameters = {
        "lr": Range(0.0),
        "betas": Tuple(2, BETA),
        "eps": Range(0.0),
        "weight_decay": Range(0.0),
        "dynamic_step_size": OneOf((True, False)),
    }
    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        dynamic_step_size: bool = False,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            dynamic_step_size=dynamic_step_size,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    update = staticmethod(exadam_update_)


R.register(
    R.AlgorithmSpec(
        name="exadam",
        cls=EXAdam,
        family="adam",
        paper=R.Paper("EXAdam: The Power of Adaptive Cross-Moments", "Adly", 2024, "2412.20302", "#235"),
        summary="Adam with cross-moment debiasing (d1, d2) and the bias-corrected gradient added to the momentum",
        hparams="lr betas eps weight_decay dynamic_step_size",
        search_space={
            "lr": R.LogUniform(1e-5, 1e-1),
            "beta1": R.OneMinusLogUniform(0.5, 0.99),
            "beta2": R.OneMinusLogUniform(0.9, 0.9999),
            "weight_decay": R.LogUniform(1e-6, 1.0),
        },
        state_tensors=2,
        notes=(
            "Default is the current official code / paper v2: no dynamic step size. dynamic_step_size=True is "
            "paper v1 / the first official commit: step × ln(√2·√(t+1)). Decoupled decay θ ← θ − lr·λ·θ as in "
            "the official code (not in the paper); one ε in d1, d2 and the denominator."
        ),
        conventions=(
            R.Convention(
                point="dynamic step size",
                paper="version 1 (Dec 2024): a step size that keeps growing; version 2: none",
                elsewhere="the author's exadam.py: αₜ = α·ln(√2·√(t + 1)) in the first commit, αₜ = α in the "
                "current code",
                switch="dynamic_step_size",
                choices=(
                    (False, "paper v2, current official code"),
                    (True, "paper v1, first official commit"),
                ),
            ),
        ),
    )
)
