"""NAdam: Adam with Nesterov momentum.

Dozat (2016), *Incorporating Nesterov Momentum into Adam*, ICLR 2016 workshop track (Algorithm 2).
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


def momentum_schedule(beta1: K.Scalar, step: K.Scalar, momentum_decay: K.Scalar) -> K.Scalar:
    """μ_t = β1·(1 − ½·0.96^(t·ψ)) (Dozat's warming momentum schedule; ψ = 0.004 is his t/250)."""
    return beta1 * (1 - 0.5 * 0.96 ** (step * momentum_decay))


def nadam_update_(
    p: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    mu_product: Tensor,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    beta1: K.Scalar,
    beta2: K.Scalar,
    eps: K.Scalar,
    weight_decay: K.Scalar,
    momentum_decay: K.Scalar,
    decoupled_weight_decay: bool,
) -> None:
    """One NAdam step on one tensor.

    m, v are Adam's EMAs (β1, β2); the step mixes the current gradient and m with the scheduled momenta μ_t,
    μ_{t+1}, each debiased by the running product Π μ_i (kept in the 0-d fp32 state ``mu_product``, as
    torch.optim.NAdam does):  p ← p − lr·[(1 − μ_t)/(1 − Π_{i≤t} μ_i)·g + μ_{t+1}/(1 − Π_{i≤t+1} μ_i)·m]/(√v̂ + eps).
    """
    if decoupled_weight_decay:
        K.decoupled_decay_(p, lr, weight_decay)
    else:
        grad = K.coupled_decay(grad, p, weight_decay)
    mu = momentum_schedule(beta1, step, momentum_decay)
    mu_next = momentum_schedule(beta1, step + 1, momentum_decay)
    mu_product.mul_(mu)
    # eager: a Python float read from the (CPU) 0-d state; compiled: the tensor itself, no graph break
    product = mu_product if isinstance(step, Tensor) else mu_product.item()
    K.ema_(exp_avg, grad, beta1)
    K.ema_sq_(exp_avg_sq, grad, beta2)
    denom = (exp_avg_sq / K.bias_correction(beta2, step)).sqrt_().add_(eps)
    K.addcdiv_scaled_(p, grad, denom, -lr * (1 - mu) / (1 - product))
    K.addcdiv_scaled_(p, exp_avg, denom, -lr * mu_next / (1 - product * mu_next))


class NAdam(Optimizer):
    """NAdam (Dozat, 2016): Adam whose first moment takes a Nesterov look-ahead step under the momentum schedule
    μ_t = β1·(1 − ½·0.96^(t·ψ)).

    Same arguments, defaults and state as ``torch.optim.NAdam`` (lr=2e-3, ``momentum_decay`` = ψ = 4e-3,
    ``decoupled_weight_decay=True`` gives NAdamW-style decay p ← p(1 − lr·λ); state ``mu_product`` = Π μ_i is a
    0-d fp32 tensor on the CPU, like the step counter).
    """

    hyperparameters = {
        "lr": Range(0.0),
        "betas": Tuple(2, BETA),
        "eps": Range(0.0),
        "weight_decay": Range(0.0),
        "momentum_decay": Range(0.0),
        "decoupled_weight_decay": OneOf((True, False)),
    }
    state_names = ("exp_avg", "exp_avg_sq", "mu_product")

    def __init__(
        self,
        params,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    def init_state(self, p, group):
        zeros = [torch.zeros_like(p, memory_format=torch.preserve_format) for _ in range(2)]
        return [*zeros, torch.ones((), dtype=torch.float32)]

    update = staticmethod(nadam_update_)


def _nadam_state_bytes(shape, dtype, hp) -> int:
    """m and v, plus the 0-d fp32 running product of the momentum schedule."""
    return R.dense_state_bytes(shape, dtype, 2) + 4


R.register(
    R.AlgorithmSpec(
        name="nadam",
        cls=NAdam,
        family="adam",
        paper=R.Paper("Incorporating Nesterov Momentum into Adam", "Dozat", 2016),
        summary="Adam with a Nesterov look-ahead first moment under the schedule μ_t = β1(1 − ½·0.96^(tψ))",
        hparams="lr betas eps weight_decay momentum_decay decoupled_weight_decay",
        search_space={
            "lr": R.LogUniform(1e-5, 1e-1),
            "beta1": R.OneMinusLogUniform(0.5, 0.99),
            "beta2": R.OneMinusLogUniform(0.9, 0.9999),
            "weight_decay": R.LogUniform(1e-6, 1.0),
        },
        state_tensors=2,
        state_formula=_nadam_state_bytes,
        notes=(
            "Paper: μ_t = β1(1 − ½·0.96^(t/250)); ψ = momentum_decay = 4e-3 is 1/250. m and v are plain EMAs with "
            "β1, β2 (the schedule only enters the Nesterov mix), as in Dozat's Algorithm 2, Keras and torch. "
            "Π μ_i is kept as a 0-d fp32 state tensor 'mu_product' (torch.optim.NAdam's layout), so state and "
            "trajectory match torch; decoupled_weight_decay=True is NAdamW."
        ),
        conventions=(TORCH_DECAY_SWITCH,),
    )
)
