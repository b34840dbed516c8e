"""Optimistic AMSGrad.

Wang, Li & Li (2019), *Optimistic Adaptive Acceleration for Optimization*, arXiv:1903.01435 (Algorithm 2,
OPTIMISTIC-AMSGRAD; published as Wang, Li, Karimi & Li (2021), *An Optimistic Acceleration of AMSGrad for
Nonconvex Optimization*, ACML). The gradient predictor is the paper's Algorithm 3, regularized approximate
minimal polynomial extrapolation (RMPE) of Scieur, d'Aspremont & Bach (2016), *Regularized Nonlinear
Acceleration*.

The algorithm keeps an auxiliary sequence w_{t+½} (AMSGrad driven by the observed gradients) and *plays* a point
w_{t+1} one optimistic step ahead of it, along a guess m_{t+1} of the next gradient:

    θ_t     = β1 θ_{t-1} + (1 - β1) g_t                      g_t: gradient at the played point w_t
    v_t     = β2 v_{t-1} + (1 - β2) (g_t - m_t)²              m_t: the guess of g_t made one step earlier
    v̂_t     = max(v̂_{t-1}, v_t)
    w_{t+½} = w_{t-½} - η θ_t / (√v̂_t + eps)
    h_{t+1} = β1 θ_{t-1} + (1 - β1) m_{t+1}                   note θ_{t-1}, not θ_t (paper and authors' code)
    w_{t+1} = w_{t+½} - η h_{t+1} / (√v̂_t + eps)

The parameters the model sees are the played points w_t (where gradients are evaluated); w_{t+½} is optimizer
state (``half_iterate``). Conventions (see the registry notes):

* ``predictor="extrapolation"`` (default, the paper's experiments): RMPE on the ``span + 1`` latest gradients
  x_0..x_r (r = span, oldest first): U = [x_1 - x_0, ..., x_r - x_{r-1}], solve (UᵀU + λ s I) z = 1 with
  s = tr(UᵀU)/r (λ relative to the mean squared difference, as Scieur et al. advise, so the predictor does not
  depend on the gradient scale), c = z / Σz, m_{t+1} = Σ_{i<r} c_i x_i. Until span + 1 gradients have been seen
  the last gradient is the guess. Per tensor: an r×r solve in float64.
  ``predictor="last"``: m_{t+1} = g_t.
* m_1 = 0 and w_½ = w_1 (the initial point); eps is added to √v̂ (the paper starts v̂ at eps instead); no bias
  correction by default (the paper's form), ``bias_correction=True`` rescales as torch's Adam (the authors' code).
* ``weight_decay`` is L2 folded into g_t (the authors' code); the predictor sees the regularized gradient.
* The learning rate of step t is used for both half-steps (the paper's η_{t+1} is not known at step t).
* Complex parameters are handled as their real view (the extrapolation's inner products are real).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from . import _kernels as K
from ._base import Optimizer
from ._rules import BETA, OneOf, Range, Tuple

PAPER = R.Paper("Optimistic Adaptive Acceleration for Optimization", "Wang, Li, Li", 2019, "1903.01435", "#28")


def rmpe_(history: Tensor, rna_lambda: K.Scalar) -> Tensor:
    """RMPE estimate from ``history`` (r + 1 points stacked along dim 0, oldest first): Σ_{i<r} c_i x_i.

    The Gram matrix of the differences is normalised by its mean diagonal before adding λ·I, and solved in
    float64; all shapes are fixed, so this compiles without graph breaks.
    """
    r = history.shape[0] - 1
    flat = history.reshape(r + 1, -1)
    diffs = flat[1:] - flat[:-1]
    gram = (diffs @ diffs.T).double()
    scale = torch.diagonal(gram).mean().clamp_min(torch.finfo(torch.float64).tiny)
    eye = torch.eye(r, dtype=torch.float64, device=history.device)
    z = torch.linalg.solve(
        gram / scale + eye * rna_lambda, torch.ones(r, 1, dtype=torch.float64, device=history.device)
    )
    c = (z / z.sum()).to(history.dtype)
    return (c.T @ flat[:-1]).reshape(history.shape[1:])


def optimistic_amsgrad_update_(
    p: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    max_exp_avg_sq: Tensor,
    half_iterate: Tensor,
    predicted_grad: Tensor,
    grad_history: Tensor | None = None,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    beta1: K.Scalar,
    beta2: K.Scalar,
    eps: K.Scalar,
    weight_decay: K.Scalar,
    rna_lambda: K.Scalar,
    bias_correction: bool,
) -> None:
    """One Optimistic-AMSGrad step on one tensor: ``p`` holds the played point w_t on entry, w_{t+1} on exit.

    ``predicted_grad`` holds m_t on entry and m_{t+1} on exit; with ``grad_history`` (span + 1 latest gradients,
    oldest first) the guess is RMPE, without it the last gradient.
    """
    grad = K.coupled_decay(grad, p, weight_decay)
    # v_t from the prediction error g_t - m_t, then the running max
    err = grad - predicted_grad
    K.ema_sq_(exp_avg_sq, err, beta2)
    max_exp_avg_sq.copy_(torch.maximum(max_exp_avg_sq, exp_avg_sq))
    # β1·θ_{t-1} is kept for h_{t+1}; θ_t = β1·θ_{t-1} + (1 - β1)·g_t
    prev_part = exp_avg * beta1
    K.add_scaled_(exp_avg.copy_(prev_part), grad, 1 - beta1)
    if bias_correction:
        step_size = lr / K.bias_correction(beta1, step)
        denom = (max_exp_avg_sq.sqrt() / K.sqrt(K.bias_correction(beta2, step))).add_(eps)
    else:
        step_size = lr
        denom = max_exp_avg_sq.sqrt().add_(eps)
    K.addcdiv_scaled_(half_iterate, exp_avg, denom, -step_size)
    # m_{t+1}
    if grad_history is None:
        predicted_grad.copy_(grad)
    else:
        grad_history.copy_(grad_history.roll(-1, 0))
        grad_history[-1].copy_(grad)
        span = grad_history.shape[0] - 1
        if isinstance(step, Tensor):  # compiled: no data-dependent branch
            predicted_grad.copy_(torch.where(step > span, rmpe_(grad_history, rna_lambda), grad))
        elif step > span:
            predicted_grad.copy_(rmpe_(grad_history, rna_lambda))
        else:  # warm-up: fewer than span + 1 gradients seen
            predicted_grad.copy_(grad)
    # w_{t+1} = w_{t+½} - η h_{t+1} / (√v̂_t + eps),  h_{t+1} = β1 θ_{t-1} + (1 - β1) m_{t+1}
    h = K.add_scaled_(prev_part, predicted_grad, 1 - beta1)
    K.addcdiv_scaled_(p.copy_(half_iterate), h, denom, -step_size)


class OptimisticAMSGrad(Optimizer):
    """Optimistic AMSGrad (Wang, Li & Li, 2019): AMSGrad plus an optimistic step along a guess of the next
    gradient (see the module docstring for the update and the conventions).

    Args:
        lr, betas, eps, weight_decay: as AMSGrad (L2 decay folded into the gradient).
        predictor: ``"extrapolation"`` (RMPE over the latest ``span + 1`` gradients, the paper's) or ``"last"``
            (the next gradient is guessed to equal the last one).
        span: number r of gradient differences the extrapolation uses (``span + 1`` gradients are stored).
            ``span`` and ``predictor`` are fixed once the state exists.
        rna_lambda: RMPE regularization λ, relative to the mean squared norm of the gradient differences.
        bias_correction: rescale by 1 - β^t as torch's Adam does (default False, the paper's form).
    """

    shard_local = False  # sharded parameters: gather, update the full tensor, keep the shard
    guard_every_update = True  # its linear algebra can fail: snapshot, check, restore (Optimizer._apply)

    hyperparameters = {
        "lr": Range(0.0),
        "betas": Tuple(2, BETA),
        "eps": Range(0.0),
        "weight_decay": Range(0.0),
        "predictor": OneOf(("extrapolation", "last")),
        "span": Range(1, integer=True),
        "rna_lambda": Range(0.0, low_open=True),
        "bias_correction": OneOf((True, False)),
    }

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.99),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        predictor: str = "extrapolation",
        span: int = 5,
        rna_lambda: float = 1e-3,
        bias_correction: bool = False,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            predictor=predictor,
            span=span,
            rna_lambda=rna_lambda,
            bias_correction=bias_correction,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    def state_keys(self, group):
        keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq", "half_iterate", "predicted_grad")
        return keys + ("grad_history",) if group["predictor"] == "extrapolation" else keys

    def init_state(self, p, group):
        state = [torch.zeros_like(p, memory_format=torch.preserve_format) for _ in range(5)]
        state[3] = p.detach().clone(memory_format=torch.preserve_format)  # w_½ = w_1
        if group["predictor"] == "extrapolation":
            state.append(p.new_zeros((group["span"] + 1, *p.shape)))
        return state

    update = staticmethod(optimistic_amsgrad_update_)


_SPACE = {
    "lr": R.LogUniform(1e-5, 1e-1),
    "beta1": R.OneMinusLogUniform(0.5, 0.99),
    "beta2": R.OneMinusLogUniform(0.9, 0.9999),
    "weight_decay": R.LogUniform(1e-6, 1.0),
}

_CONVENTIONS = (
    R.Convention(
        point="bias correction",
        paper="none",
        elsewhere="the authors' code: the step is rescaled as torch's Adam",
        switch="bias_correction",
        choices=((False, "the paper"), (True, "the authors' code")),
    ),
)

_NOTES = (
    "Plays w_{t+1} = w_{t+1/2} - lr*h_{t+1}/sqrt(vhat_t), h_{t+1} = b1*theta_{t-1} + (1-b1)*m_{t+1} (theta_{t-1} "
    "as in the paper and the authors' code); v is the EMA of the squared prediction error (g_t - m_t)^2. "
    "Predictor: RMPE over the span+1 latest gradients with lambda relative to mean ||dg||^2 (default span=5, the "
    "authors' README; last gradient during warm-up), or predictor='last'. eps outside the sqrt; no bias correction "
    "by default. Defaults lr=1e-3, betas=(0.9, 0.99): the authors' README for all experiments."
)


def _optimistic_state_bytes(shape, dtype, hp) -> int:
    """m, v, max v, w_½ and the predicted gradient, plus span + 1 past gradients for the extrapolation predictor."""
    history = hp["span"] + 1 if hp.get("predictor", "extrapolation") == "extrapolation" else 0
    return R.dense_state_bytes(shape, dtype, 5 + history)


R.register(
    R.AlgorithmSpec(
        name="optimistic_amsgrad",
        cls=OptimisticAMSGrad,
        family="adam",
        paper=PAPER,
        summary="AMSGrad on an auxiliary sequence, plus an optimistic step along a guess of the next gradient",
        hparams="lr betas eps weight_decay predictor span",
        search_space={**_SPACE, "span": R.Choice((2, 5, 10))},
        state_tensors=11,
        state_formula=_optimistic_state_bytes,
        notes=_NOTES,
        conventions=_CONVENTIONS,
    )
)

R.register(
    R.AlgorithmSpec(
        name="optimistic_amsgrad_last",
        cls=OptimisticAMSGrad,
        family="adam",
        paper=PAPER,
        summary="Optimistic AMSGrad whose guess of the next gradient is the last gradient",
        hparams="lr betas eps weight_decay predictor",
        paper_defaults=dict(predictor="last"),
        search_space=_SPACE,
        state_tensors=5,
        state_formula=_optimistic_state_bytes,
        notes=_NOTES,
        conventions=_CONVENTIONS,
    )
)
