"""Lion and the Lion-κ family.

Chen, Liang, Huang, Real, Wang, Liu, Pham, Dong, Luong, Hsieh, Lu & Le (2023), *Symbolic Discovery of
Optimization Algorithms*, arXiv:2302.06675 (Lion, Algorithm 2):

    c ← β1·m + (1 − β1)·g;   θ ← θ − η·(sign(c) + λ·θ);   m ← β2·m + (1 − β2)·g

Chen, Liu, Liang & Liu (2023), *Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts*,
arXiv:2310.05898 (Lion-κ): sign(·) is replaced by a (sub)gradient ∇κ of a convex function κ; with decoupled
weight decay λ the iterates solve  min_x f(x) + κ*(λx)/λ, i.e. Lion (κ = ‖·‖₁, κ* = indicator of the ℓ∞ unit
ball) minimizes f subject to ‖x‖∞ ≤ 1/λ. The paper writes the update on −∇f, x ← x + ε(∇κ(β1 m − (1 − β1)∇f)
− λx); for the odd maps below this is the Lion form above with ∇κ in place of sign.

``kappa`` choices (∇κ of the direction c, and the resulting κ*):

* ``"l1"``: κ(c) = ‖c‖₁, ∇κ(c) = sign(c) (Lion itself); κ* = indicator{‖y‖∞ ≤ 1} → box ‖θ‖∞ ≤ 1/λ.
* ``"l2"``: κ(c) = ‖c‖₂ over the whole tensor, ∇κ(c) = c/‖c‖₂ (the subgradient 0 is used at c = 0);
  κ* = indicator{‖y‖₂ ≤ 1} → per-tensor ball ‖θ‖₂ ≤ 1/λ. Each step moves a tensor by lr in ℓ2 norm.
* ``"huber"``: κ(c) = Σᵢ H_δ(cᵢ) with the Huber function H_δ(u) = u²/(2δ) for |u| ≤ δ, |u| − δ/2 otherwise,
  so ∇κ(c) = clamp(c/δ, −1, 1) (a smoothed sign: δ → 0 gives Lion); κ*(y) = (δ/2)‖y‖² + indicator{‖y‖∞ ≤ 1}
  → the same box ‖θ‖∞ ≤ 1/λ plus a quadratic penalty δλ/2·‖θ‖² inside it. ``huber_delta`` is δ (default 1,
  i.e. ∇κ(c) = clamp(c, −1, 1), the "clipped c" of the seed sheet).

The ℓ1 and ℓ2 rows follow from the paper's result for κ = a norm (κ* = indicator of the dual-norm unit ball).
The ∇κ and κ* of the Huber row are derived here from the stated κ; its normalisation (threshold δ, slope 1
outside) was not checked against the paper's own Huber-type example, and was chosen so that κ* keeps Lion's box
constraint. tests/test_lion.py checks all three constrained problems numerically (iterates end at the
projected-gradient solutions of the box, ball and box-plus-ridge problems).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from . import _kernels as K
from ._base import Optimizer
from ._rules import BETA, OneOf, Range, Tuple

KAPPAS = ("l1", "l2", "huber")


def grad_kappa(c: Tensor, kappa: str, huber_delta: K.Scalar = 1.0) -> Tensor:
    """∇κ(c) for the supported κ (see the module docstring); returns a new tensor, ``c`` is left alone."""
    if kappa == "l1":
        return c.sign()
    if kappa == "l2":
        norm = torch.linalg.vector_norm(c)
        inv = torch.where(norm > 0, norm.reciprocal(), torch.zeros_like(norm))  # subgradient 0 at c = 0
        return c * inv
    if kappa == "huber":
        return (c / huber_delta).clamp_(-1.0, 1.0)
    raise ValueError(f"kappa must be one of {list(KAPPAS)}, got {kappa!r}")


def lion_update_(
    p: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    beta1: K.Scalar,
    beta2: K.Scalar,
    weight_decay: K.Scalar,
    kappa: str = "l1",
    huber_delta: K.Scalar = 1.0,
) -> None:
    """One Lion-κ step on one tensor: θ ← θ − lr·(∇κ(β1·m + (1 − β1)·g) + λ·θ), then m ← β2·m + (1 − β2)·g."""
    K.decoupled_decay_(p, lr, weight_decay)
    c = K.add_scaled_(exp_avg * beta1, grad, 1 - beta1)  # the interpolation, a new tensor
    K.add_scaled_(p, grad_kappa(c, kappa, huber_delta), -lr)
    K.ema_(exp_avg, grad, beta2)


LION_RULES = {
    "lr": Range(0.0),
    "betas": Tuple(2, BETA),
    "weight_decay": Range(0.0),
}


class Lion(Optimizer):
    """Lion (Chen et al., 2023): sign of an interpolated momentum plus decoupled weight decay.

    One state tensor (``exp_avg``). Defaults are the authors' reference code's (lr=1e-4, betas=(0.9, 0.99),
    weight_decay=0); the paper advises an lr 3–10× smaller and a λ 3–10× larger than AdamW's.
    """

    hyperparameters = LION_RULES
    state_names = ("exp_avg",)
    kappa = "l1"

    def __init__(
        self,
        params,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, **options)

    update = staticmethod(lion_update_)

    def hyper(self, group):
        return {**super().hyper(group), "kappa": self.kappa}


class LionKappa(Optimizer):
    """Lion-κ (Chen, Liu, Liang & Liu, 2023): Lion with sign replaced by ∇κ.

    ``kappa="l1"`` is Lion, ``"l2"`` (default) normalizes the interpolated momentum per tensor (c/‖c‖₂) and
    keeps every tensor in the ball ‖θ‖₂ ≤ 1/λ, ``"huber"`` uses clamp(c/δ, −1, 1) with δ = ``huber_delta``.
    """

    hyperparameters = {
        **LION_RULES,
        "kappa": OneOf(KAPPAS),
        "huber_delta": Range(0.0, low_open=True),
    }
    state_names = ("exp_avg",)

    def __init__(
        self,
        params,
        lr: float = 1e-4,
        betas: tuple[float, float] = (0.9, 0.99),
        weight_decay: float = 0.0,
        kappa: str = "l2",
        huber_delta: float = 1.0,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr, betas=betas, weight_decay=weight_decay, kappa=kappa, huber_delta=huber_delta, maximize=maximize
        )
        super().__init__(params, defaults, **options)

    update = staticmethod(lion_update_)


LION_PAPER = R.Paper(
    "Symbolic Discovery of Optimization Algorithms",
    "Chen, Liang, Huang, Real, Wang, Liu, Pham, Dong, Luong, Hsieh, Lu, Le",
    2023,
    "2302.06675",
    "#26",
)
LION_KAPPA_PAPER = R.Paper(
    "Lion Secretly Solves Constrained Optimization: As Lyapunov Predicts",
    "Chen, Liu, Liang, Liu",
    2023,
    "2310.05898",
    "#26",
)
_LION_SPACE = {
    "lr": R.LogUniform(1e-6, 1e-2),
    "beta1": R.OneMinusLogUniform(0.5, 0.99),
    "beta2": R.OneMinusLogUniform(0.9, 0.9999),
    "weight_decay": R.LogUniform(1e-4, 10.0),
}
_LION_HPARAMS = "lr betas weight_decay"

R.register(
    R.AlgorithmSpec(
        name="lion",
        cls=Lion,
        family="lion",
        paper=LION_PAPER,
        summary="sign of β1-interpolated momentum, decoupled decay; minimizes f subject to ‖θ‖∞ ≤ 1/λ",
        hparams=_LION_HPARAMS,
        search_space=_LION_SPACE,
        state_tensors=1,
        notes=(
            "Defaults are the authors' code (google/automl lion_pytorch.py): lr=1e-4, betas=(0.9, 0.99), "
            "weight_decay=0; the paper gives no single λ (use 3–10× AdamW's λ and 3–10× smaller lr). "
            "Decay is decoupled and uses lr·λ, as in the paper's Algorithm 2."
        ),
    )
)

_KAPPA_NOTES = (
    "∇κ: l1 → sign(c) (= Lion); l2 → c/‖c‖₂ per tensor (0 at c = 0), constraint ‖θ‖₂ ≤ 1/λ per tensor; "
    "huber → clamp(c/δ, −1, 1), κ* = (δ/2)‖y‖² + box: solves min f + (δλ/2)‖θ‖² s.t. ‖θ‖∞ ≤ 1/λ. The Huber "
    "normalisation (δ, slope 1) is this library's choice, not checked against the paper's example. Defaults "
    "copy Lion's (the paper gives none for Lion-κ)."
)

R.register(
    R.AlgorithmSpec(
        name="lion_kappa",
        cls=LionKappa,
        family="lion",
        paper=LION_KAPPA_PAPER,
        summary="Lion-κ with κ = ‖·‖₂: normalized interpolated momentum; keeps ‖θ‖₂ ≤ 1/λ per tensor",
        hparams=f"{_LION_HPARAMS} kappa huber_delta",
        search_space=_LION_SPACE,
        state_tensors=1,
        notes=_KAPPA_NOTES,
        conventions=(
            R.Convention(
                point="κ, the convex function whose gradient replaces sign",
                paper="any convex κ; κ = ‖·‖₁ gives Lion (box ‖θ‖∞ ≤ 1/λ)",
                elsewhere="—",
                switch="kappa",
                choices=(
                    ("l1", "sign(c): Lion, box ‖θ‖∞ ≤ 1/λ"),
                    ("l2", "c/‖c‖₂ per tensor: ball ‖θ‖₂ ≤ 1/λ"),
                    ("huber", "clamp(c/δ, −1, 1), δ = `huber_delta` (this library's normalisation)"),
                ),
            ),
        ),
    )
)

R.register(
    R.AlgorithmSpec(
        name="lion_kappa_huber",
        cls=LionKappa,
        family="lion",
        paper=LION_KAPPA_PAPER,
        summary="Lion-κ with a Huber κ: clamp(c/δ, −1, 1) instead of sign(c); box ‖θ‖∞ ≤ 1/λ",
        hparams=f"{_LION_HPARAMS} kappa huber_delta",
        paper_defaults=dict(kappa="huber"),
        search_space={**_LION_SPACE, "huber_delta": R.LogUniform(1e-4, 1.0)},
        state_tensors=1,
        notes=_KAPPA_NOTES,
    )
)
