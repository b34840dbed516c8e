"""Adam, AdamW, AMSGrad and AdaMax.

Kingma & Ba (2015), *Adam: A Method for Stochastic Optimization*, arXiv:1412.6980 (AdaMax: §7.1, Algorithm 2);
Loshchilov & Hutter (2019), *Decoupled Weight Decay Regularization*, arXiv:1711.05101;
Reddi, Kale & Kumar (2018), *On the Convergence of Adam and Beyond*, arXiv:1904.09237.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from . import _kernels as K
from ._base import Optimizer
from ._rules import BETA, OneOf, Range, Tuple

ADAM_PAPER = R.Paper("Adam: A Method for Stochastic Optimization", "Kingma, Ba", 2015, "1412.6980", "#51")


def adam_update_(
    p: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Tensor | None = None,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    beta1: K.Scalar,
    beta2: K.Scalar,
    eps: K.Scalar,
    weight_decay: K.Scalar,
    decoupled: bool,
    bias_correction: bool = True,
) -> None:
    """One Adam step on one tensor. m, v are EMAs of g and g²; the step is lr·m̂/(√v̂ + eps).

    ``decoupled`` selects AdamW's decay (p ← p(1 − lr·λ)) over L2 decay folded into g. With
    ``max_exp_avg_sq`` the denominator uses the running maximum of v (AMSGrad).
    """
    if decoupled:
        K.decoupled_decay_(p, lr, weight_decay)
    else:
        grad = K.coupled_decay(grad, p, weight_decay)
    K.ema_(exp_avg, grad, beta1)
    K.ema_sq_(exp_avg_sq, grad, beta2)
    second = exp_avg_sq
    if max_exp_avg_sq is not None:
        second = max_exp_avg_sq.copy_(max_exp_avg_sq.maximum(exp_avg_sq))
    if bias_correction:
        step_size = lr / K.bias_correction(beta1, step)
        denom = (second.sqrt() / K.sqrt(K.bias_correction(beta2, step))).add_(eps)
    else:
        step_size = lr
        denom = second.sqrt().add_(eps)
    K.addcdiv_scaled_(p, exp_avg, denom, -step_size)


ADAM_RULES = {
    "lr": Range(0.0),
    "betas": Tuple(2, BETA),
    "eps": Range(0.0),
    "weight_decay": Range(0.0),
    "amsgrad": OneOf((True, False)),
}


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with L2 weight decay; ``amsgrad=True`` adds Reddi et al.'s max of v.

    Same arguments and defaults as ``torch.optim.Adam``; eps is added to √v̂ (outside the root).
    """

    hyperparameters = ADAM_RULES
    decoupled = False

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
        super().__init__(params, defaults, **options)

    def state_keys(self, group):
        return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if group["amsgrad"] else ("exp_avg", "exp_avg_sq")

    update = staticmethod(adam_update_)

    def hyper(self, group):
        hyper = super().hyper(group)
        hyper.setdefault("decoupled", self.decoupled)  # a class fact (Adam / AdamW) unless the group sets it
        return hyper


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay p ← p(1 − lr·λ).

    Same arguments and defaults as ``torch.optim.AdamW`` (weight_decay=1e-2).
    """

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, **kw):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, **kw)


class AMSGrad(Adam):
    """AMSGrad (Reddi, Kale & Kumar, 2018): Adam whose denominator uses the running maximum of v.

    ``bias_correction=False`` (default) is the paper's Algorithm 2 (no debiasing);
    ``bias_correction=True`` is torch.optim's ``Adam(amsgrad=True)``. ``decoupled=True`` gives AdamW-style decay.
    """

    hyperparameters = {**ADAM_RULES, "bias_correction": OneOf((True, False)), "decoupled": OneOf((True, False))}

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=0.0,
        *,
        bias_correction: bool = False,
        decoupled: bool = False,
        maximize: bool = False,
        **options,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=True,
            bias_correction=bias_correction,
            decoupled=decoupled,
            maximize=maximize,
        )
        Optimizer.__init__(self, params, defaults, **options)


def adamax_update_(
    p: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_inf: Tensor,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    beta1: K.Scalar,
    beta2: K.Scalar,
    eps: K.Scalar,
    weight_decay: K.Scalar,
) -> None:
    """One AdaMax step on one tensor: m ← EMA of g, u ← max(β2·u, |g| + eps), p ← p − lr/(1 − β1ᵗ)·m/u.

    u is the exponentially weighted infinity norm of past gradients (Kingma & Ba 2015, §7.1); it needs no bias
    correction. eps sits inside the max (torch.optim.Adamax's convention), so u > 0 from the first step on;
    ``eps=0`` is the paper's rule exactly. L2 decay is folded into g.
    """
    grad = K.coupled_decay(grad, p, weight_decay)
    K.ema_(exp_avg, grad, beta1)
    exp_inf.copy_(torch.maximum(exp_inf.mul_(beta2), grad.abs().add_(eps)))
    K.addcdiv_scaled_(p, exp_avg, exp_inf, -(lr / K.bias_correction(beta1, step)))


class Adamax(Optimizer):
    """AdaMax (Kingma & Ba, 2015, §7.1): Adam with the second moment replaced by an exponentially weighted
    infinity norm u ← max(β2·u, |g|).

    Same arguments, defaults (lr=2e-3) and state (``exp_avg``, ``exp_inf``) as ``torch.optim.Adamax``; eps is
    added to |g| inside the max (``eps=0`` gives the paper's rule, which divides by zero on an all-zero history).
    """

    hyperparameters = {
        "lr": Range(0.0),
        "betas": Tuple(2, BETA),
        "eps": Range(0.0),
        "weight_decay": Range(0.0),
    }
    state_names = ("exp_avg", "exp_inf")

    def __init__(
        self,
        params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, **options)

    update = staticmethod(adamax_update_)


_ADAM_SPACE = {
    "lr": R.LogUniform(1e-5, 1e-1),
    "beta1": R.OneMinusLogUniform(0.5, 0.99),
    "beta2": R.OneMinusLogUniform(0.9, 0.9999),
    "weight_decay": R.LogUniform(1e-6, 1.0),
}


def _adam_state_bytes(shape, dtype, hp) -> int:
    return R.dense_state_bytes(shape, dtype, 3 if hp.get("amsgrad") else 2)


# ----------------------------------------------------------------------------- conventions (docs/conventions.md)
EPS_PLACEMENT = R.Convention(
    point="where eps enters the denominator",
    paper="Algorithm 1: m̂/(√v̂ + ε); §2 also gives a faster form m/(√v + ε̂) with both bias corrections folded "
    "into the step size",
    elsewhere="torch.optim.Adam/AdamW: (√v / √(1 − β2ᵗ)) + eps, i.e. √v̂ + eps; Keras/TF: `epsilon` is the paper's ε̂ "
    "(Keras docs), default 1e-7",
    fixed="eps added to √v̂ (Algorithm 1, torch.optim)",
)

#: L2 or decoupled decay in the Adam variants that torch.optim also has with ``decoupled_weight_decay``
TORCH_DECAY_SWITCH = R.Convention(
    point="weight decay: L2 in the gradient or decoupled",
    paper="—",
    elsewhere="torch.optim.NAdam / RAdam: `decoupled_weight_decay=False` by default (λθ added to g); `True` "
    "multiplies p by (1 − lr·λ) instead",
    switch="decoupled_weight_decay",
    choices=(
        (False, "L2, λθ added to g (torch's default)"),
        (True, "decoupled, p ← p(1 − lr·λ) (torch's `True`)"),
    ),
)

R.register(
    R.AlgorithmSpec(
        name="adam",
        cls=Adam,
        family="adam",
        paper=ADAM_PAPER,
        summary="EMA of g over √(EMA of g²), bias-corrected; L2 decay folded into g",
        hparams="lr betas eps weight_decay",
        search_space=_ADAM_SPACE,
        state_tensors=2,
        state_formula=_adam_state_bytes,
        conventions=(EPS_PLACEMENT,),
    )
)

R.register(
    R.AlgorithmSpec(
        name="adamw",
        cls=AdamW,
        family="adam",
        paper=R.Paper("Decoupled Weight Decay Regularization", "Loshchilov, Hutter", 2019, "1711.05101"),
        summary="Adam with decoupled weight decay p ← p(1 − lr·λ)",
        hparams="lr betas eps weight_decay",
        search_space=_ADAM_SPACE,
        state_tensors=2,
        state_formula=_adam_state_bytes,
        conventions=(
            EPS_PLACEMENT,
            R.Convention(
                point="what scales the decoupled weight decay",
                paper="Algorithm 2, line 12: θ ← θ − η_t·(α·m̂/(√v̂ + ε) + λθ): λ times the schedule multiplier η_t, "
                "not times the learning rate α",
                elsewhere="torch.optim.AdamW: p ← p(1 − lr·λ), lr = α·η_t",
                fixed="p ← p(1 − lr·λ) as torch; the paper's λ is `weight_decay=λ/α`",
            ),
        ),
    )
)

R.register(
    R.AlgorithmSpec(
        name="amsgrad",
        cls=AMSGrad,
        family="adam",
        paper=R.Paper("On the Convergence of Adam and Beyond", "Reddi, Kale, Kumar", 2018, "1904.09237", "#28"),
        summary="Adam whose denominator uses max over time of v (non-increasing effective step)",
        hparams="lr betas eps weight_decay bias_correction",
        search_space=_ADAM_SPACE,
        state_tensors=3,
        notes="Default is the paper's undebiased form; bias_correction=True equals torch.optim.Adam(amsgrad=True).",
        conventions=(
            R.Convention(
                point="bias correction",
                paper="Algorithm 2: none, the step is m/√v̂ with v̂ the running max of v",
                elsewhere="torch.optim.Adam(amsgrad=True): m debiased by 1 − β1ᵗ, the running max of v divided by "
                "1 − β2ᵗ, as in Adam",
                switch="bias_correction",
                choices=((False, "the paper"), (True, "torch.optim.Adam(amsgrad=True)")),
            ),
        ),
    )
)

R.register(
    R.AlgorithmSpec(
        name="adamax",
        cls=Adamax,
        family="adam",
        paper=ADAM_PAPER,
        summary="Adam with the infinity norm: u ← max(β2·u, |g|), step lr/(1 − β1ᵗ)·m/u",
        hparams="lr betas eps weight_decay",
        search_space=_ADAM_SPACE,
        state_tensors=2,
        notes=(
            "Paper defaults (§7.1): lr=2e-3, betas=(0.9, 0.999). The paper's rule has no eps; like torch.optim.Adamax "
            "eps is added to |g| inside the max (u ← max(β2·u, |g| + eps)), so eps=0 recovers the paper exactly."
        ),
        conventions=(
            R.Convention(
                point="eps in the infinity norm",
                paper="§7.1: u ← max(β2·u, |g|), step lr/(1 − β1ᵗ)·m/u, no eps",
                elsewhere="torch.optim.Adamax: u ← max(β2·u, |g| + eps), eps=1e-8",
                switch="eps",
                choices=(
                    (1e-8, "torch.optim.Adamax"),
                    (0.0, "the paper (divides by 0 where a coordinate has only seen zero gradients)"),
                ),
            ),
        ),
    )
)
