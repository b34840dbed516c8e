"""Stochastic gradient descent with heavy-ball or Nesterov momentum.

Robbins & Monro (1951), *A Stochastic Approximation Method*; Polyak (1964) heavy ball;
Sutskever, Martens, Dahl & Hinton (2013), *On the importance of initialization and momentum in deep learning*
(the Nesterov form used by deep-learning libraries).
"""

from __future__ import annotations

from torch import Tensor

from .. import registry as R
from . import _kernels as K
from ._base import Optimizer
from ._rules import BETA, OneOf, Range


def momentum_buffer_(buf: Tensor, grad: Tensor, momentum: K.Scalar, dampening: K.Scalar, step: K.Scalar) -> None:
    """b ← g on the first step, then b ← μ·b + (1 − τ)·g (torch.optim's heavy-ball convention)."""
    if isinstance(step, Tensor):  # compiled: no data-dependent branch
        later = (step > 1).to(buf.dtype)
        buf.mul_(momentum * later).add_(grad * (1 - dampening * later))
    elif step == 1:
        buf.copy_(grad)
    else:
        K.add_scaled_(buf.mul_(momentum), grad, 1 - dampening)


def sgd_update_(
    p: Tensor,
    grad: Tensor,
    momentum_buffer: Tensor | None = None,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    momentum: K.Scalar,
    dampening: K.Scalar,
    weight_decay: K.Scalar,
    nesterov: bool,
) -> None:
    """p ← p − lr·d with d = g (plain), b (heavy ball) or g + μ·b (Nesterov); L2 decay folded into g.

    A sparse gradient stays sparse for the plain step (p ← p − lr·g touches only its rows, as torch's); with
    momentum or weight decay, whose state and decay are dense anyway, it is made dense first."""
    if grad.is_sparse and (momentum_buffer is not None or not K.is_zero(weight_decay)):
        grad = grad.to_dense()
    grad = K.coupled_decay(grad, p, weight_decay)
    if momentum_buffer is not None:
        momentum_buffer_(momentum_buffer, grad, momentum, dampening, step)
        grad = K.add_scaled_(grad.clone(), momentum_buffer, momentum) if nesterov else momentum_buffer
    K.add_scaled_(p, grad, -lr)


class SGD(Optimizer):
    """SGD with optional heavy-ball/Nesterov momentum, dampening and L2 decay.

    Same arguments and defaults as ``torch.optim.SGD``; no state is kept when ``momentum == 0``. Takes sparse
    gradients as torch's does (its momentum buffer is dense, where torch's follows the gradient's layout).
    """

    supports_sparse = True

    hyperparameters = {
        "lr": Range(0.0),
        "momentum": BETA,
        "dampening": Range(0.0, 1.0),
        "weight_decay": Range(0.0),
        "nesterov": OneOf((True, False)),
    }

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        **options,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    def _check_hyperparameters(self, group):
        super()._check_hyperparameters(group)
        if group.get("nesterov") and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("nesterov requires momentum > 0 and dampening == 0")

    def state_keys(self, group):
        return ("momentum_buffer",) if group["momentum"] != 0 else ()

    update = staticmethod(sgd_update_)


def _sgd_state_bytes(shape, dtype, hp) -> int:
    return R.dense_state_bytes(shape, dtype, 1 if hp.get("momentum", 0) != 0 else 0)


MOMENTUM_FORM = R.Convention(
    point="where lr enters the momentum",
    paper="v ← μv + lr·g, p ← p − v (torch's docs' rendering of Sutskever et al.)",
    elsewhere="torch.optim.SGD: b ← μb + g (b = g on the first step), p ← p − lr·b; its docs note the difference",
    fixed="torch.optim.SGD's form (the two differ when lr changes during training)",
)

R.register(
    R.AlgorithmSpec(
        name="sgd",
        cls=SGD,
        family="sgd",
        paper=R.Paper(
            "On the importance of initialization and momentum in deep learning",
            "Sutskever, Martens, Dahl, Hinton",
            2013,
            None,
            "#79",
        ),
        summary="heavy-ball momentum b ← μb + g, p ← p − lr·b",
        hparams="lr momentum dampening weight_decay nesterov",
        paper_defaults=dict(lr=1e-2, momentum=0.9),
        search_space={
            "lr": R.LogUniform(1e-4, 1.0),
            "momentum": R.OneMinusLogUniform(0.5, 0.999),
            "weight_decay": R.LogUniform(1e-6, 1e-2),
        },
        state_tensors=1,
        state_formula=_sgd_state_bytes,
        conventions=(MOMENTUM_FORM,),
    )
)

R.register(
    R.AlgorithmSpec(
        name="sgd_nesterov",
        cls=SGD,
        family="sgd",
        paper=R.Paper(
            "On the importance of initialization and momentum in deep learning",
            "Sutskever, Martens, Dahl, Hinton",
            2013,
            None,
            "#90",
        ),
        summary="Nesterov momentum: step along g + μb",
        hparams="lr momentum dampening weight_decay nesterov",
        paper_defaults=dict(lr=1e-2, momentum=0.9, nesterov=True),
        search_space={
            "lr": R.LogUniform(1e-4, 1.0),
            "momentum": R.OneMinusLogUniform(0.5, 0.999),
            "weight_decay": R.LogUniform(1e-6, 1e-2),
        },
        state_tensors=1,
        state_formula=_sgd_state_bytes,
        conventions=(MOMENTUM_FORM,),
    )
)
