"""Grams: Gradient Descent with Adaptive Momentum Scaling.

Cao, Li & Song (2024/25), *Grams: Gradient Descent with Adaptive Momentum Scaling*, arXiv:2412.17107.
The direction comes from the current gradient, Adam's moments give only the per-coordinate magnitude:

    m ← β1·m + (1 − β1)·g;   v ← β2·v + (1 − β2)·g²;   m̂ = m/(1 − β1ᵗ);   v̂ = v/(1 − β2ᵗ)
    u = m̂/(√v̂ + ε);   θ ← θ − η·(sign(g) ⊙ |u| + λ·θ)

Conventions: the first moment is the standard EMA (the authors' package ``grams-pytorch`` 0.0.2 also uses
``exp_avg.mul_(β1).add_(g, alpha=1 − β1)``; the ``lerp_(grad, weight=β1)`` form the seed sheet reports in
another library puts weight β1 on the *new* gradient and is not Grams). ε is added to √v̂ (Adam's form of u, as
above); the authors' package adds it to √v and folds √(1 − β2ᵗ) into the step size (the two agree for
ε → 0). Weight decay is decoupled, θ ← θ(1 − ηλ), as in both. Unlike the authors' package, ``p.grad`` is
never modified.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .. import registry as R
from . import _kernels as K
from ._base import Optimizer
from ._rules import BETA, Range, Tuple


def grams_update_(
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
) -> None:
    """One Grams step on one tensor: θ ← θ − lr·(sign(g)·|m̂|/(√v̂ + eps) + λθ)."""
    K.decoupled_decay_(p, lr, weight_decay)
    K.ema_(exp_avg, grad, beta1)
    K.ema_sq_(exp_avg_sq, grad, beta2)
    denom = (exp_avg_sq.sqrt() / K.sqrt(K.bias_correction(beta2, step))).add_(eps)
    magnitude_with_sign = exp_avg.abs().mul_(grad.sign())  # |m| carrying the sign of the current gradient
    K.addcdiv_scaled_(p, magnitude_with_sign, denom, -lr / K.bias_correction(beta1, step))


class Grams(Optimizer):
    """Grams (Cao, Li & Song, 2024): Adam's magnitude |m̂|/(√v̂ + ε), the current gradient's sign.

    Two state tensors (``exp_avg``, ``exp_avg_sq``); decoupled weight decay. Defaults are the authors'
    package's (lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0).
    """

    hyperparameters = {
        "lr": Range(0.0),
        "betas": Tuple(2, BETA),
        "eps": Range(0.0),
        "weight_decay": Range(0.0),
    }
    state_names = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, **options)

    update = staticmethod(grams_update_)


R.register(
    R.AlgorithmSpec(
        name="grams",
        cls=Grams,
        family="adam",
        paper=R.Paper(
            "Grams: Gradient Descent with Adaptive Momentum Scaling", "Cao, Li, Song", 2024, "2412.17107", "#121"
        ),
        summary="Adam magnitude |m̂|/(√v̂ + ε) with the sign of the current gradient; decoupled decay",
        hparams="lr betas eps weight_decay",
        search_space={
            "lr": R.LogUniform(1e-5, 1e-1),
            "beta1": R.OneMinusLogUniform(0.5, 0.99),
            "beta2": R.OneMinusLogUniform(0.9, 0.9999),
            "weight_decay": R.LogUniform(1e-6, 1.0),
        },
        state_tensors=2,
        notes=(
            "Standard EMA for m (not lerp toward g with weight β1). ε is added to √v̂ (paper); the authors' "
            "grams-pytorch adds ε to √v and scales the step by √(1−β2ᵗ)/(1−β1ᵗ) — identical for ε → 0. "
            "Defaults from grams-pytorch 0.0.2 (eps=1e-6)."
        ),
        conventions=(
            R.Convention(
                point="where eps enters the denominator",
                paper="ε added to √v̂",
                elsewhere="the authors' grams-pytorch 0.0.2: ε added to √v, √(1 − β2ᵗ)/(1 − β1ᵗ) folded into the step",
                fixed="the paper's √v̂ + ε (the same as the package for ε → 0)",
            ),
        ),
    )
)
