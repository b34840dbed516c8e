"""AdEMAMix: Adam with a mixture of a fast and a slow gradient EMA.

Pagliardini, Ablin & Grangier (2024), *The AdEMAMix Optimizer: Better, Faster, Older*, arXiv:2409.03137,
Algorithm 1:

    m1 ← β1·m1 + (1 − β1)·g;   m2 ← β3(t)·m2 + (1 − β3(t))·g;   ν ← β2·ν + (1 − β2)·g²
    θ ← θ − η·[ (m1/(1 − β1ᵗ) + α(t)·m2) / (√(ν/(1 − β2ᵗ)) + ε) + λ·θ ]

(the slow EMA m2 is not bias-corrected). Optional warm-up schedulers over T = ``t_alpha_beta3`` steps (the paper
usually sets T to the total number of steps; ``None`` = no warm-up, α(t) = α and β3(t) = β3):

    α(t)  = min(t·α/T, α)
    β3(t) = min(exp(ln(β_start)·ln(β3) / ((1 − t/T)·ln(β3) + (t/T)·ln(β_start))), β3),  β_start = β1

The β3 scheduler is linear in the EMA's half-life: with h(β) = ln(½)/ln(β), h(β3(t)) = (1 − t/T)·h(β1) + (t/T)·h(β3)
for t ≤ T, which is the form of the authors' code (apple/ml-ademamix, ``linear_hl_warmup_scheduler``; their
code adds 1e-8 inside the log). It is computed here as exp(1/((1 − a)/ln β1 + a/ln β3)) with a = min(t/T, 1),
algebraically the same and well defined for β1 = 0 (ln 0 = −∞) without branching on tensor values, so the same
code runs on Python numbers (eager) and on 0-d tensors (``compile=True``).

α convention. Libraries disagree on the default α: the authors' PyTorch code (apple/ml-ademamix) defaults to
α = 2 while their README example uses α = 8 with T = total steps; bitsandbytes uses 5 (optax's contrib
``scale_by_ademamix`` documents 6); the seed sheet reads α ∈ [4, 10] from the paper (not re-checked). The
default here is α = 5 with β3 = 0.9999 and no warm-up; for the paper's recipe set ``t_alpha_beta3`` to the run
length (Algorithm 1: "we usually set it to T"). Weight decay is decoupled (θ ← θ − ηλθ), as in the paper and
the authors' code.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from . import _kernels as K
from ._base import Optimizer
from ._rules import BETA, Range, Tuple


def _log(x: K.Scalar) -> K.Scalar:
    if isinstance(x, Tensor):
        return torch.log(x)
    return math.log(x) if x > 0 else -math.inf


def _min(x: K.Scalar, y: K.Scalar) -> K.Scalar:
    if isinstance(x, Tensor) or isinstance(y, Tensor):
        return torch.minimum(torch.as_tensor(x), torch.as_tensor(y))
    return min(x, y)


def alpha_schedule(step: K.Scalar, alpha: K.Scalar, warmup: K.Scalar) -> K.Scalar:
    """α(t) = min(t·α/T, α), the linear warm-up of the slow-EMA weight."""
    return _min(step * alpha / warmup, alpha)


def beta3_schedule(step: K.Scalar, beta_start: K.Scalar, beta3: K.Scalar, warmup: K.Scalar) -> K.Scalar:
    """β3(t) = min(exp(ln β_start·ln β3 / ((1 − t/T) ln β3 + (t/T) ln β_start)), β3): half-life linear in t."""
    a = _min(step / warmup, 1.0)
    # 1/ln β is −0.0 for β = 0; the sum is ≤ 0 and is 0 only when the schedule must give 0
    s = (1 - a) / _log(beta_start) + a / _log(beta3)
    if isinstance(s, Tensor):
        return _min(torch.exp(s.reciprocal()), beta3)
    return _min(math.exp(1 / s) if s != 0 else 0.0, beta3)


def ademamix_update_(
    p: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_slow: Tensor,
    exp_avg_sq: Tensor,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    beta1: K.Scalar,
    beta2: K.Scalar,
    beta3: K.Scalar,
    alpha: K.Scalar,
    t_alpha_beta3: K.Scalar | None,
    eps: K.Scalar,
    weight_decay: K.Scalar,
) -> None:
    """One AdEMAMix step on one tensor (Algorithm 1 of the paper; see the module docstring)."""
    if t_alpha_beta3 is not None:  # a hyperparameter being set, not a tensor value: no data-dependent branch
        alpha = alpha_schedule(step, alpha, t_alpha_beta3)
        beta3 = beta3_schedule(step, beta1, beta3, t_alpha_beta3)
    K.decoupled_decay_(p, lr, weight_decay)
    K.ema_(exp_avg, grad, beta1)
    K.ema_(exp_avg_slow, grad, beta3)
    K.ema_sq_(exp_avg_sq, grad, beta2)
    denom = (exp_avg_sq.sqrt() / K.sqrt(K.bias_correction(beta2, step))).add_(eps)
    numer = K.add_scaled_(exp_avg / K.bias_correction(beta1, step), exp_avg_slow, alpha)
    K.addcdiv_scaled_(p, numer, denom, -lr)


class AdEMAMix(Optimizer):
    """AdEMAMix (Pagliardini, Ablin & Grangier, 2024): Adam whose numerator adds α × a slow EMA (β3).

    Three state tensors (``exp_avg``, ``exp_avg_slow``, ``exp_avg_sq``). ``betas=(β1, β2, β3)``;
    ``t_alpha_beta3`` turns on the paper's α and β3 warm-up over that many steps (None = off).
    """

    hyperparameters = {
        "lr": Range(0.0),
        "betas": Tuple(3, BETA),
        "alpha": Range(0.0),
        "t_alpha_beta3": Range(1, integer=True, optional=True),
        "eps": Range(0.0),
        "weight_decay": Range(0.0),
    }
    state_names = ("exp_avg", "exp_avg_slow", "exp_avg_sq")

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
        alpha: float = 5.0,
        t_alpha_beta3: int | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            alpha=alpha,
            t_alpha_beta3=t_alpha_beta3,
            eps=eps,
            weight_decay=weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    update = staticmethod(ademamix_update_)


R.register(
    R.AlgorithmSpec(
        name="ademamix",
        cls=AdEMAMix,
        family="adam",
        paper=R.Paper(
            "The AdEMAMix Optimizer: Better, Faster, Older", "Pagliardini, Ablin, Grangier", 2024, "2409.03137", "#165"
        ),
        summary="Adam whose numerator mixes the fast EMA with α × a slow EMA (β3 ≈ 0.9999); α, β3 warm-ups",
        hparams="lr betas alpha t_alpha_beta3 eps weight_decay",
        search_space={
            "lr": R.LogUniform(1e-5, 1e-1),
            "beta1": R.OneMinusLogUniform(0.5, 0.99),
            "beta2": R.OneMinusLogUniform(0.9, 0.9999),
            "beta3": R.OneMinusLogUniform(0.99, 0.99999),
            "alpha": R.Uniform(1.0, 10.0),
            "weight_decay": R.LogUniform(1e-6, 1.0),
        },
        state_tensors=3,
        notes=(
            "α default differs across libraries: authors' PyTorch code 2 (README example 8), bitsandbytes 5, "
            "optax contrib 6; α ∈ [4, 10] per the seed sheet. Default here α=5, β3=0.9999, no warm-up (t_alpha_beta3="
            "None); the paper sets t_alpha_beta3 to the total steps. β3 warm-up is linear in half-life from β1 "
            "(equal to the authors' linear_hl_warmup_scheduler, without its 1e-8 inside the log). m2 is not "
            "bias-corrected; decay is decoupled (θ ← θ − lr·λ·θ)."
        ),
        conventions=(
            R.Convention(
                point="default α (weight of the slow EMA)",
                paper="an input of Algorithm 1",
                elsewhere="bitsandbytes AdEMAMix: `alpha=5.0` (its docs); the authors' PyTorch code: 2 (their README "
                "example: 8); optax contrib documents 6",
                switch="alpha",
                choices=(
                    (5.0, "bitsandbytes"),
                    (2.0, "the authors' code"),
                    (8.0, "the authors' README example"),
                    (6.0, "optax contrib"),
                ),
            ),
            R.Convention(
                point="α and β3 warm-up",
                paper="Algorithm 1: α and β3 warm up over T_α,β3 steps, 'usually' the total number of steps",
                elsewhere="bitsandbytes AdEMAMix: `t_alpha=None`, `t_beta3=None` (no warm-up) by default",
                switch="t_alpha_beta3",
                choices=(
                    (None, "no warm-up (bitsandbytes' default)"),
                    (100_000, "warm-up over that many steps; the paper's recipe is the run length"),
                ),
            ),
        ),
    )
)
