"""AdaHessian: Adam with the Hessian diagonal (a Hutchinson estimate) in place of the squared gradient.

Yao, Gholami, Shen, Mustafa, Keutzer & Mahoney (2021), *ADAHESSIAN: An Adaptive Second Order Optimizer for
Machine Learning*, AAAI 2021, arXiv:2006.00719 (Algorithm 1, Eqs. 9–11); authors' code:
github.com/amirgholami/adahessian (``image_classification/optim_adahessian.py``, ``instruction/adahessian.py``).
"""

from __future__ import annotations

from typing import Any

import optimlab.curvature as C  # absolute: `from .. import curvature` would go through optimlab.__getattr__

from .. import registry as R
from . import _kernels as K
from ._rules import BETA, OneOf, Range, Tuple
from ._second_order import PROBE_RULES, SecondOrderOptimizer, refresh_due


def adahessian_update_(
    p,
    grad,
    exp_avg,
    exp_hessian_diag_sq,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    beta1: K.Scalar,
    beta2: K.Scalar,
    eps: K.Scalar,
    weight_decay: K.Scalar,
    hessian_power: K.Scalar,
    update_period: K.Scalar,
) -> None:
    """One AdaHessian step on one tensor (the Hessian EMA ``exp_hessian_diag_sq`` = v was refreshed before).

    m ← β1 m + (1 − β1) g;  p ← p(1 − lr·λ) − lr · (m / (1 − β1ᵗ)) / ((v / (1 − β2ⁿ))^{k/2} + eps),
    where n = ⌊(t − 1)/N⌋ + 1 is the number of Hessian estimates folded into v so far (n = t when N = 1).
    """
    K.decoupled_decay_(p, lr, weight_decay)
    K.ema_(exp_avg, grad, beta1)
    estimates = (step - 1) // update_period + 1
    denom = (exp_hessian_diag_sq / K.bias_correction(beta2, estimates)).pow_(hessian_power / 2).add_(eps)
    K.addcdiv_scaled_(p, exp_avg, denom, -lr / K.bias_correction(beta1, step))


def adahessian_refresh_(exp_hessian_diag_sq, diag, *, beta2: float, spatial_average: bool) -> None:
    """v ← β2 v + (1 − β2) D⁽ˢ⁾², D⁽ˢ⁾ the Hutchinson estimate z ⊙ Hz, spatially averaged (|·| over the spatial
    dims of a conv kernel, Eq. 10 as in the authors' code) when ``spatial_average``."""
    if spatial_average:
        diag = C.spatial_average(diag)
    K.ema_sq_(exp_hessian_diag_sq, diag, beta2)


class AdaHessian(SecondOrderOptimizer):
    """AdaHessian (Yao et al., 2021): Adam whose second moment is the EMA of the squared Hutchinson estimate of the
    Hessian diagonal, with spatial averaging for convolution kernels and the Hessian power k.

    The closure must call ``loss.backward(create_graph=True)``. ``update_period=N`` refreshes the Hessian estimate
    every N steps (steps 1, N+1, 2N+1, ...); v then advances only when a new estimate arrives and its bias
    correction counts estimates (with N = 1, the default, this is exactly the paper's Eq. 11). Weight decay is the
    authors' decoupled form p ← p − lr·λ·p. ``spatial_average=True`` replaces the estimate of a tensor with three or
    more dims (a convolution kernel) by the mean of its absolute value over the kernel's spatial dims; 0/1/2-D
    tensors use |z ⊙ Hz| elementwise (authors' image-classification code). Probes: Rademacher by default,
    ``hessian_samples`` of them averaged, seeded per step (see :mod:`optimlab.optim._second_order`).
    """

    hyperparameters = {
        "lr": Range(0.0),
        "betas": Tuple(2, BETA),
        "eps": Range(0.0),
        "weight_decay": Range(0.0),
        "hessian_power": Range(0.0, 1.0, low_open=True),
        "update_period": Range(1, integer=True),
        "spatial_average": OneOf((True, False)),
        **PROBE_RULES,
    }
    state_names = ("exp_avg", "exp_hessian_diag_sq")
    requires_hvp = True

    def __init__(
        self,
        params,
        lr: float = 0.15,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-4,
        weight_decay: float = 0.0,
        hessian_power: float = 1.0,
        update_period: int = 1,
        spatial_average: bool = True,
        hessian_samples: int = 1,
        hessian_distribution: str = "rademacher",
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            hessian_power=hessian_power,
            update_period=update_period,
            spatial_average=spatial_average,
            hessian_samples=hessian_samples,
            hessian_distribution=hessian_distribution,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    def prepare(self, entries, loss, extras, closure):
        due = [e for e in entries if refresh_due(e.t, e.group["update_period"])]
        for e, diag in self._hessian_diagonals(due):
            adahessian_refresh_(
                e.state["exp_hessian_diag_sq"],
                diag,
                beta2=e.group["betas"][1],
                spatial_average=e.group["spatial_average"],
            )
        return entries

    update = staticmethod(adahessian_update_)


R.register(
    R.AlgorithmSpec(
        name="adahessian",
        cls=AdaHessian,
        family="second_order",
        paper=R.Paper(
            "ADAHESSIAN: An Adaptive Second Order Optimizer for Machine Learning",
            "Yao, Gholami, Shen, Mustafa, Keutzer, Mahoney",
            2021,
            "2006.00719",
            "#209",
        ),
        summary="Adam with the EMA of the squared Hutchinson Hessian diagonal (spatially averaged) as second moment",
        hparams=(
            "lr betas eps weight_decay hessian_power update_period spatial_average hessian_samples hessian_distribution"
        ),
        search_space={
            "lr": R.LogUniform(1e-3, 1.0),
            "beta1": R.OneMinusLogUniform(0.5, 0.99),
            "beta2": R.OneMinusLogUniform(0.9, 0.9999),
            "hessian_power": R.Uniform(0.5, 1.0),
            "weight_decay": R.LogUniform(1e-6, 1e-2),
        },
        state_tensors=2,
        notes=(
            "Authors' code conventions: eps is added after the power, (v̂)^{k/2} + eps; weight decay is decoupled "
            "(p − lr·λ·p); spatial averaging averages |z ⊙ Hz| over a conv kernel's spatial dims (paper Eq. 10 "
            "averages the signed estimate). Defaults lr=0.15, eps=1e-4 are the authors' (pytorch_optimizer uses "
            "lr=0.1, eps=1e-16). Delayed Hessian update (update_period N > 1): v advances only when a new estimate "
            "arrives and is debiased by the number of estimates (as Sophia's h_t = β2 h_{t−k} + (1 − β2) ĥ_t), "
            "rather than re-adding a stale estimate every step (davda54/ada-hessian), which needs a third tensor. "
            "Not implemented: the authors' instruction/adahessian.py option of averaging dense-layer rows / fixed "
            "blocks (curvature.spatial_average(block_size=...) would provide it)."
        ),
        conventions=(
            R.Convention(
                point="spatial averaging for conv kernels",
                paper="Eq. 10 averages the signed estimate z ⊙ Hz over a kernel's spatial dims",
                elsewhere="the authors' code averages |z ⊙ Hz|",
                fixed="the authors' |z ⊙ Hz| (with `spatial_average=True`, the default)",
            ),
            R.Convention(
                point="default eps (and lr)",
                paper="—",
                elsewhere="the authors' code: eps 1e-4, lr 0.15; pytorch_optimizer: eps 1e-16, lr 0.1",
                switch="eps",
                choices=((1e-4, "the authors' code"), (1e-16, "pytorch_optimizer")),
            ),
        ),
    )
)
