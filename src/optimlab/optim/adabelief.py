"""AdaBelief: Adam whose second moment is the EMA of the squared deviation of g from its EMA (the "belief").

Zhuang, Tang, Ding, Tatikonda, Dvornek, Papademetris & Duncan (2020), *AdaBelief Optimizer: Adapting Stepsizes by
the Belief in Observed Gradients*, NeurIPS 2020, arXiv:2010.07468 (Algorithm 2).
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .. import registry as R
from . import _kernels as K
from ._base import Optimizer
from ._rules import BETA, OneOf, Range, Tuple


def adabelief_update_(
    p: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_var: Tensor,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    beta1: K.Scalar,
    beta2: K.Scalar,
    eps: K.Scalar,
    weight_decay: K.Scalar,
    decoupled_weight_decay: bool,
) -> None:
    """One AdaBelief step on one tensor.

    m ← β1·m + (1 − β1)·g;  s ← β2·s + (1 − β2)·(g − m)² + eps (eps enters the state, as in the paper);
    p ← p − lr·m̂/(√ŝ + eps) with m̂ = m/(1 − β1ᵗ), ŝ = s/(1 − β2ᵗ).
    """
    if decoupled_weight_decay:
        K.decoupled_decay_(p, lr, weight_decay)
    else:
        grad = K.coupled_decay(grad, p, weight_decay)
    K.ema_(exp_avg, grad, beta1)
    K.ema_sq_(exp_avg_var, grad - exp_avg, beta2).add_(eps)
    denom = (exp_avg_var.sqrt() / K.sqrt(K.bias_correction(beta2, step))).add_(eps)
    K.addcdiv_scaled_(p, exp_avg, denom, -(lr / K.bias_correction(beta1, step)))


class AdaBelief(Optimizer):
    """AdaBelief (Zhuang et al., 2020): Adam with v replaced by s, the EMA of (g − m)², so the step is large when
    the observed gradient agrees with its prediction m and small when it does not.

    Defaults follow the authors' latest ``adabelief-pytorch`` package (≥ 0.1.0): eps=1e-16 and decoupled weight
    decay; its optional RAdam-style rectification (``rectify``) and AMSGrad variant are not implemented here
    (the paper's results use neither), so this equals ``adabelief_pytorch.AdaBelief(..., rectify=False)``.
    """

    hyperparameters = {
        "lr": Range(0.0),
        "betas": Tuple(2, BETA),
        "eps": Range(0.0),
        "weight_decay": Range(0.0),
        "decoupled_weight_decay": OneOf((True, False)),
    }
    state_names = ("exp_avg", "exp_avg_var")

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-16,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = True,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    update = staticmethod(adabelief_update_)


R.register(
    R.AlgorithmSpec(
        name="adabelief",
        cls=AdaBelief,
        family="adam",
        paper=R.Paper(
            "AdaBelief Optimizer: Adapting Stepsizes by the Belief in Observed Gradients",
            "Zhuang, Tang, Ding, Tatikonda, Dvornek, Papademetris, Duncan",
            2020,
            "2010.07468",
        ),
        summary="Adam with v replaced by the EMA of (g − m)²: large steps where the gradient matches its EMA",
        hparams="lr betas eps weight_decay decoupled_weight_decay",
        search_space={
            "lr": R.LogUniform(1e-5, 1e-1),
            "beta1": R.OneMinusLogUniform(0.5, 0.99),
            "beta2": R.OneMinusLogUniform(0.9, 0.9999),
            "eps": R.LogUniform(1e-16, 1e-8),
            "weight_decay": R.LogUniform(1e-6, 1.0),
        },
        state_tensors=2,
        notes=(
            "eps changed across the authors' releases: adabelief-pytorch 0.0.5 used eps=1e-8 with L2 decay and no "
            "rectification; ≥ 0.1.0 (latest 0.2.1) uses eps=1e-16, decoupled decay and rectify=True. The paper's "
            "experiments used eps=1e-8 (CIFAR, ImageNet) and 1e-12 (GAN) and no rectification. Defaults here: "
            "eps=1e-16 and decoupled_weight_decay=True (latest package); rectification is not implemented. eps is "
            "added to s every step (it is inside the state and the square root) and again to √ŝ, as in the paper "
            "and the package; so eps=1e-16 acts like Adam's 1e-8."
        ),
        conventions=(
            R.Convention(
                point="eps",
                paper="experiments: eps 1e-8 (CIFAR, ImageNet), 1e-12 (GAN)",
                elsewhere="the authors' adabelief-pytorch: 1e-8 in 0.0.5, 1e-16 from 0.1.0 on",
                switch="eps",
                choices=(
                    (1e-16, "adabelief-pytorch ≥ 0.1.0"),
                    (1e-8, "adabelief-pytorch 0.0.5; the paper's CIFAR and ImageNet runs"),
                    (1e-12, "the paper's GAN runs"),
                ),
            ),
            R.Convention(
                point="weight decay: L2 in the gradient or decoupled",
                paper="—",
                elsewhere="adabelief-pytorch: L2 in 0.0.5, decoupled from 0.1.0 on",
                switch="decoupled_weight_decay",
                choices=(
                    (True, "decoupled, p ← p(1 − lr·λ) (adabelief-pytorch ≥ 0.1.0)"),
                    (False, "L2, λθ added to g (adabelief-pytorch 0.0.5)"),
                ),
            ),
            R.Convention(
                point="rectification (RAdam's r_t)",
                paper="none",
                elsewhere="adabelief-pytorch ≥ 0.1.0: `rectify=True` by default",
                fixed="none (not implemented)",
            ),
        ),
    )
)
