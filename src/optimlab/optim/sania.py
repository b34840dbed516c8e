"""SANIA: a preconditioned Polyak-type step size, scale invariant with the AdaGrad-SQR / Adam-SQR preconditioners.

Abdukhakimov, Xiang, Kamzolov, Gower & Takáč (2023), *SANIA: Polyak-type Optimization Framework Leads to Scale
Invariant Stochastic Algorithms*, arXiv:2312.17369. Authors' code: github.com/fxrshed/SANIA
(``SANIA/sania_adagrad_sqr.py``, ``SANIA/sania_adam_sqr.py``, ``experiments/methods.py``).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .. import registry as R
from . import _kernels as K
from ._base import full_value
from ._rules import BETA, OneOf, Range
from ._second_order import PROBE_RULES, SecondOrderOptimizer

PRECONDITIONERS = ("adagrad_sqr", "adam_sqr", "identity")
_STATE = {"adagrad_sqr": ("sum_sq",), "adam_sqr": ("exp_avg_sq",), "hutchinson": ("hessian_diag",), "identity": ()}


def sania_preconditioner(kind: str, state, step: K.Scalar, beta: K.Scalar, eps: K.Scalar):
    """B̂_t, the diagonal of the preconditioner truncated below at eps (None for the identity):
    AdaGrad-SQR Σ g²; Adam-SQR v/(1 − βᵗ) (v the EMA of g²); Hutchinson |D/(1 − βᵗ)| (D the EMA of z ⊙ Hz)."""
    if kind == "identity":
        return None
    (b,) = state
    if kind == "adagrad_sqr":
        return b.clamp(min=eps)
    b = b / K.bias_correction(beta, step)
    return (b.abs_() if kind == "hutchinson" else b).clamp_(min=eps)


def sania_update_(
    p,
    grad,
    *state,
    step: K.Scalar,
    lr: K.Scalar,
    scale: K.Scalar,
    preconditioner: str,
    beta: K.Scalar,
    eps: K.Scalar,
) -> None:
    """p ← p − lr·λ_t · B̂_t⁻¹ g (λ_t, the SANIA step size, was computed from the loss and the global
    ‖g‖²_{B̂⁻¹} before; the preconditioner state was already updated with this step's g)."""
    b_hat = sania_preconditioner(preconditioner, state, step, beta, eps)
    if b_hat is None:
        K.add_scaled_(p, grad, -lr * scale)
    else:
        K.addcdiv_scaled_(p, grad, b_hat, -lr * scale)


def sania_step_size(excess_loss: float, norm_sq: float) -> float:
    """λ = 1 − √(1 − 2c) with c = (f − f*)/‖g‖²_{B⁻¹}, and λ = 1 when 1 − 2c ≤ 0 (no root: the full
    preconditioned step); 0 when f ≤ f* or g = 0. λ solves f + λ·(−‖g‖²) + ½λ²‖g‖² = f* (the second-order Taylor
    model in the metric B along −B⁻¹g); for small c it is the Polyak step c (+ O(c²))."""
    if not excess_loss > 0 or not norm_sq > 0:
        return 0.0
    c = excess_loss / norm_sq
    return 1.0 - math.sqrt(max(1.0 - 2.0 * c, 0.0))


class SANIA(SecondOrderOptimizer):
    """SANIA (Abdukhakimov et al., 2023): the step B̂_t⁻¹∇f(w_t) scaled by a parameter-free Polyak-type step size.

        w_{t+1} = w_t − lr · λ_t · B̂_t⁻¹ ∇f(w_t),   λ_t = 1 − √(max(1 − 2(f(w_t) − f*)/‖∇f(w_t)‖²_{B̂_t⁻¹}, 0))

    (λ_t = 1 when the square root's argument is ≤ 0; the authors' code). The closure must return the loss; f* is
    ``f_star`` (0 for interpolating models, else a lower bound); λ = 0 while f ≤ f*. ``lr`` multiplies λ (1 = the
    paper; lets schedulers act). The norm and λ are global over every parameter with a gradient.

    Preconditioners (``preconditioner``): ``"adagrad_sqr"`` (default) B_t = Σ_{s≤t} g_s ⊙ g_s; ``"adam_sqr"``
    B_t = v_t/(1 − βᵗ), v the EMA of g ⊙ g with ``beta``; ``"identity"``. No square root ("SQR"): B scales like
    the Hessian, which makes the method invariant to a diagonal rescaling of the features (in exact arithmetic,
    while the ``eps`` truncation B̂ = max(B, eps) is inactive). For the Hutchinson preconditioner see
    :class:`SANIAHutchinson`.
    """

    hyperparameters = {
        "lr": Range(0.0),
        "preconditioner": OneOf(PRECONDITIONERS),
        "beta": BETA,
        "eps": Range(0.0, low_open=True),
        "f_star": Range(),
    }

    def __init__(
        self,
        params,
        lr: float = 1.0,
        preconditioner: str = "adagrad_sqr",
        beta: float = 0.999,
        eps: float = 0.1,
        f_star: float = 0.0,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(lr=lr, preconditioner=preconditioner, beta=beta, eps=eps, f_star=f_star, maximize=maximize)
        self._init(params, defaults, options)

    def _init(self, params, defaults, options) -> None:
        super().__init__(params, defaults, **options)
        self._scale = 0.0

    def state_keys(self, group):
        return _STATE[group["preconditioner"]]

    def __setstate__(self, state):
        super().__setstate__(state)
        self._scale = 0.0

    def _update_preconditioners(self, entries) -> None:
        for e in entries:
            kind = e.group["preconditioner"]
            if kind == "adagrad_sqr":
                e.state["sum_sq"].addcmul_(e.grad, e.grad)
            elif kind == "adam_sqr":
                K.ema_sq_(e.state["exp_avg_sq"], e.grad, e.group["beta"])

    def prepare(self, entries, loss, extras, closure):
        groups = self.param_groups
        if len({g["maximize"] for g in groups}) > 1 or len({g["f_star"] for g in groups}) > 1:
            raise ValueError(f"{type(self).__name__}: maximize and f_star must be the same in every param group")
        loss_t = loss.detach() if isinstance(loss, torch.Tensor) else torch.tensor(float(loss))
        entries = self._screen(entries, [loss_t] * len(entries), "loss")  # the step size needs a finite loss
        if not entries:
            return entries
        self._update_preconditioners(entries)
        device = entries[0].p.device
        parts = []
        for e in entries:
            g = e.group
            b_hat = sania_preconditioner(
                g["preconditioner"], [e.state[k] for k in self.state_keys(g)], e.t, g["beta"], g["eps"]
            )
            sq = e.grad * e.grad if b_hat is None else e.grad * e.grad / b_hat
            parts.append(full_value(sq.sum()).to(device=device, dtype=torch.float64))  # FSDP2: over all shards
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        value = -value if groups[0]["maximize"] else value
        norm_sq = float(torch.stack(parts).sum())
        self._scale = sania_step_size(value - groups[0]["f_star"], norm_sq)
        return entries

    update = staticmethod(sania_update_)

    def hyper(self, group):
        return dict(
            lr=group["lr"],
            scale=self._scale,
            preconditioner=group["preconditioner"],
            beta=group["beta"],
            eps=group["eps"],
        )


class SANIAHutchinson(SANIA):
    """SANIA with the Hutchinson preconditioner (Abdukhakimov et al., 2023): B_t = D_t/(1 − βᵗ), D_t the EMA
    (``beta``) of z ⊙ ∇²f(w_t) z, truncated as B̂ = max(|B|, eps). The closure must call
    ``loss.backward(create_graph=True)``. Invariant to feature scaling only in expectation (the estimate of a
    non-diagonal Hessian is not)."""

    hyperparameters = {**SANIA.hyperparameters, "preconditioner": OneOf(("hutchinson",)), **PROBE_RULES}
    requires_hvp = True

    def __init__(
        self,
        params,
        lr: float = 1.0,
        preconditioner: str = "hutchinson",
        beta: float = 0.999,
        eps: float = 0.1,
        f_star: float = 0.0,
        hessian_samples: int = 1,
        hessian_distribution: str = "rademacher",
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            preconditioner=preconditioner,
            beta=beta,
            eps=eps,
            f_star=f_star,
            hessian_samples=hessian_samples,
            hessian_distribution=hessian_distribution,
            maximize=maximize,
        )
        self._init(params, defaults, options)

    def _update_preconditioners(self, entries) -> None:
        for e, estimate in self._hessian_diagonals(entries):
            K.ema_(e.state["hessian_diag"], estimate, e.group["beta"])


_SANIA_PAPER = R.Paper(
    "SANIA: Polyak-type Optimization Framework Leads to Scale Invariant Stochastic Algorithms",
    "Abdukhakimov, Xiang, Kamzolov, Gower, Takáč",
    2023,
    "2312.17369",
    "#35",
)
_SANIA_NOTES = (
    "Step size as in the authors' code (github.com/fxrshed/SANIA): λ = 1 − √(1 − 2c), c = f/‖g‖²_{B⁻¹}, λ = 1 "
    "when 1 − 2c ≤ 0. Truncation B̂ = max(B, eps) with eps = 0.1 as in their PyTorch package (their NumPy "
    "experiments add eps = 1e-8 instead); it breaks exact scale invariance wherever it is active. Deviations: "
    "lr multiplies λ (their AdaGrad-SQR class overwrote lr with λ); λ = 0 when f ≤ f* (no ascent step); the norm "
    "and λ are global over all param groups (their classes computed one λ per group with the full loss)."
)


def _sania_state_bytes(shape, dtype, hp) -> int:
    return R.dense_state_bytes(shape, dtype, len(_STATE[hp.get("preconditioner", "adagrad_sqr")]))


_SANIA_CONVENTIONS = (
    R.Convention(
        point="how eps guards the preconditioner",
        paper="—",
        elsewhere="the authors' PyTorch package: B̂ = max(B, 0.1); their NumPy experiments add 1e-8 to B instead",
        fixed="the package's max(B, eps), eps = 0.1",
    ),
)

R.register(
    R.AlgorithmSpec(
        name="sania",
        cls=SANIA,
        family="second_order",
        paper=_SANIA_PAPER,
        summary="Polyak-type step size on an AdaGrad-SQR/Adam-SQR-preconditioned gradient (scale invariant)",
        hparams="lr preconditioner beta eps f_star",
        search_space={"lr": R.LogUniform(0.1, 2.0), "eps": R.LogUniform(1e-8, 1.0)},
        state_tensors=1,
        state_formula=_sania_state_bytes,
        notes=_SANIA_NOTES,
        conventions=_SANIA_CONVENTIONS,
    )
)

R.register(
    R.AlgorithmSpec(
        name="sania_hutchinson",
        cls=SANIAHutchinson,
        family="second_order",
        paper=_SANIA_PAPER,
        summary="SANIA's Polyak-type step on a Hutchinson-Hessian-diagonal-preconditioned gradient",
        hparams="lr preconditioner beta eps f_star hessian_samples hessian_distribution",
        search_space={"lr": R.LogUniform(0.1, 2.0), "beta": R.OneMinusLogUniform(0.9, 0.9999)},
        state_tensors=1,
        notes=_SANIA_NOTES + " Hutchinson: D is a zero-initialized EMA debiased by 1 − βᵗ (as Adam-SQR's v).",
        conventions=_SANIA_CONVENTIONS,
    )
)
