"""Schedule-free SGD and AdamW: no learning-rate schedule, the iterate average is the model to evaluate.

Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky (2024), *The Road Less Scheduled*, arXiv:2405.15682 (authors'
package ``schedulefree``; the AlgoPerf 2024 self-tuning track winner). With the base sequence z, the average x and the
gradient point y (the parameters hold y in train mode, x in eval mode):

    y_t = (1 − β) z_t + β x_t,      z_{t+1} = z_t − γ_t ∇f(y_t) (SGD) or − γ_t (∇f(y_t)/(√v̂_t + ε) + λ y_t) (AdamW)
    x_{t+1} = (1 − c_{t+1}) x_t + c_{t+1} z_{t+1},   c_{t+1} = w_t / Σ_{i≤t} w_i,   w_t = t^r · (max_{i≤t} γ_i)^p

with γ_t = lr·min(1, t/warmup_steps) and p = ``weight_lr_power``. Only z (and v) are stored, as in the package's
default classes: y is the parameter and x = (y − (1 − β) z)/β is recovered when switching to eval mode
(``optimizer.eval()``: p ← lerp(p, z, 1 − 1/β)) and back (``optimizer.train()``: p ← lerp(p, z, 1 − β)).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from . import _kernels as K
from ._base import Optimizer
from ._group_scalars import state_bytes
from ._rules import BETA, Range, Tuple

SF_PAPER = R.Paper(
    "The Road Less Scheduled",
    "Defazio, Yang, Mehta, Mishchenko, Khaled, Cutkosky",
    2024,
    "2405.15682",
)


def averaging_weight_(
    weight_sum: Tensor, lr_max: Tensor, *, step: K.Scalar, lr: K.Scalar, warmup_steps: int, r: K.Scalar, power: K.Scalar
) -> tuple[K.Scalar, K.Scalar]:
    """The warmed-up γ_t and the averaging coefficient c_{t+1} = w_t/Σw (0 while Σw = 0); updates the running
    max of γ and Σw (one-element state tensors) in place. Eager: Python floats, as the package computes them."""
    if isinstance(step, Tensor):  # compiled: tensors throughout, no data-dependent branch
        gamma = lr * torch.clamp(step / warmup_steps, max=1.0) if warmup_steps > 0 else lr
        lr_max.copy_(torch.maximum(lr_max, gamma))
        weight = step**r * lr_max**power
        weight_sum.add_(weight)
        return gamma, torch.where(weight_sum > 0, weight / weight_sum, 0.0)
    gamma = lr * min(step / warmup_steps, 1.0) if warmup_steps > 0 else lr
    top = max(float(lr_max), gamma)
    weight = step**r * top**power
    total = float(weight_sum) + weight
    lr_max.fill_(top)
    weight_sum.fill_(total)
    return gamma, (weight / total if total > 0 else 0.0)


def sf_step_(p: Tensor, z: Tensor, direction: Tensor, gamma: K.Scalar, ckp1: K.Scalar, beta: K.Scalar) -> None:
    """y ← lerp(y, z, c);  y ← y + γ(β(1 − c) − 1)·d;  z ← z − γ d  (the package's update of y = p and z)."""
    p.lerp_(z, ckp1)
    K.add_scaled_(p, direction, gamma * (beta * (1 - ckp1) - 1))
    K.add_scaled_(z, direction, -gamma)


def sf_sgd_update_(
    p: Tensor,
    grad: Tensor,
    z: Tensor,
    weight_sum: Tensor,
    lr_max: Tensor,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    momentum: K.Scalar,
    weight_decay: K.Scalar,
    warmup_steps: int,
    r: K.Scalar,
    weight_lr_power: K.Scalar,
) -> None:
    """Schedule-free SGD on one tensor: d = g + λy."""
    gamma, ckp1 = averaging_weight_(
        weight_sum, lr_max, step=step, lr=lr, warmup_steps=warmup_steps, r=r, power=weight_lr_power
    )
    sf_step_(p, z, K.coupled_decay(grad, p, weight_decay), gamma, ckp1, momentum)


def sf_adamw_update_(
    p: Tensor,
    grad: Tensor,
    z: Tensor,
    exp_avg_sq: Tensor,
    weight_sum: Tensor,
    lr_max: Tensor,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    beta1: K.Scalar,
    beta2: K.Scalar,
    eps: K.Scalar,
    weight_decay: K.Scalar,
    warmup_steps: int,
    r: K.Scalar,
    weight_lr_power: K.Scalar,
) -> None:
    """Schedule-free AdamW on one tensor: v ← β₂v + (1 − β₂)g², d = g/(√(v/(1 − β₂ᵗ)) + ε) + λy."""
    gamma, ckp1 = averaging_weight_(
        weight_sum, lr_max, step=step, lr=lr, warmup_steps=warmup_steps, r=r, power=weight_lr_power
    )
    K.ema_sq_(exp_avg_sq, grad, beta2)
    denom = (exp_avg_sq / K.bias_correction(beta2, step)).sqrt_().add_(eps)
    sf_step_(p, z, K.coupled_decay(grad / denom, p, weight_decay), gamma, ckp1, beta1)


class _ScheduleFree(Optimizer):
    """train()/eval() switching shared by the schedule-free optimizers (``train_mode`` is a group entry, saved with
    the param groups). Unlike the package, a new optimizer starts in train mode (y = x = z then, so nothing
    differs); ``step`` in eval mode raises as the package does."""

    #: the interpolation β between z and x (``momentum`` or ``betas[0]``)
    def _beta(self, group: dict[str, Any]) -> float:
        raise NotImplementedError

    def init_state(self, p: Tensor, group: dict[str, Any]) -> list[Tensor]:
        keys = self.state_keys(group)
        out = []
        for name in keys:
            if name == "z":
                out.append(p.detach().clone(memory_format=torch.preserve_format))
            elif name in ("weight_sum", "lr_max"):
                out.append(torch.zeros(1, dtype=p.dtype, device=p.device))
            else:
                out.append(torch.zeros_like(p, memory_format=torch.preserve_format))
        return out

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self.param_groups[-1].setdefault("train_mode", True)

    @torch.no_grad()
    def _switch(self, to_train: bool) -> None:
        for group in self.param_groups:
            if group["train_mode"] == to_train:
                continue
            beta = self._beta(group)
            weight = 1 - beta if to_train else 1 - 1 / beta
            for p in group["params"]:
                state = self.state.get(p)
                if state and "z" in state:
                    work = torch.view_as_real(p) if p.is_complex() else p
                    z = state["z"]
                    if work.dtype != z.dtype:  # low precision: lerp in fp32, write back
                        work.copy_(work.float().lerp_(z, weight))
                    else:
                        work.lerp_(z, weight)
            group["train_mode"] = to_train

    def train(self, mode: bool = True) -> None:
        """Parameters ← y (the gradient point), for training."""
        self._switch(bool(mode))

    def eval(self) -> None:
        """Parameters ← x (the average), for evaluation and checkpoints of the model."""
        self._switch(False)

    def step(self, closure=None):
        if not all(g["train_mode"] for g in self.param_groups):
            raise RuntimeError(f"{type(self).__name__}.step() called in eval mode: call optimizer.train() first")
        return super().step(closure)


_SF_RULES = {"warmup_steps": Range(0, integer=True), "r": Range(0.0), "weight_lr_power": Range(0.0)}


class SGDScheduleFree(_ScheduleFree):
    """Schedule-free SGD (Defazio et al., 2024). Arguments and defaults as ``schedulefree.SGDScheduleFree``
    (``momentum`` is the interpolation β; ``weight_decay`` is added to the gradient at y)."""

    hyperparameters = {"lr": Range(0.0), "momentum": Range(0.0, 1.0, low_open=True, high_open=True),
                       "weight_decay": Range(0.0), **_SF_RULES}  # fmt: skip
    state_names = ("z", "weight_sum", "lr_max")
    update = staticmethod(sf_sgd_update_)

    def __init__(
        self,
        params,
        lr: float = 1.0,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        hp = dict(lr=lr, momentum=momentum, weight_decay=weight_decay, warmup_steps=warmup_steps, r=r)
        super().__init__(params, {**hp, "weight_lr_power": weight_lr_power, "maximize": maximize}, **options)

    def _beta(self, group):
        return group["momentum"]


class AdamWScheduleFree(_ScheduleFree):
    """Schedule-free AdamW (Defazio et al., 2024). Arguments and defaults as ``schedulefree.AdamWScheduleFree``
    (``betas[0]`` is the interpolation β; decay λy is added to the normalised gradient)."""

    hyperparameters = {"lr": Range(0.0), "betas": Tuple(2, BETA), "eps": Range(0.0), "weight_decay": Range(0.0),
                       **_SF_RULES}  # fmt: skip
    state_names = ("z", "exp_avg_sq", "weight_sum", "lr_max")
    update = staticmethod(sf_adamw_update_)

    def __init__(
        self,
        params,
        lr: float = 0.0025,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        warmup_steps: int = 0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        hp = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, warmup_steps=warmup_steps, r=r)
        super().__init__(params, {**hp, "weight_lr_power": weight_lr_power, "maximize": maximize}, **options)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        if self.param_groups[-1]["betas"][0] == 0:
            raise ValueError("betas[0] must be in (0, 1) for schedule-free AdamW (eval mode divides by it)")

    def _beta(self, group):
        return group["betas"][0]


_SF_NOTES = (
    "Arguments, defaults and math of the authors' schedulefree 1.4 package (SGDScheduleFree / AdamWScheduleFree, "
    "float64 parity over 60 steps in train and eval mode in tests/test_schedule_free.py). Deviations: a new "
    "optimizer starts in train mode (the package requires .train() before the first step; at that point y = x = z, "
    "so nothing differs); γ's running max and Σw are per-parameter one-element state (the package keeps them per "
    "group: the same values while every parameter gets a gradient every step). Evaluate (and save the model) "
    "after optimizer.eval(); BatchNorm statistics must then be recomputed at x."
)
_SF_CONVENTIONS = (
    R.Convention(
        point="what the parameters hold",
        paper="the gradient is taken at y; x (the average) is the output",
        elsewhere="schedulefree: p holds y in train mode and x after .eval(); x is recovered from y and z",
        fixed="as schedulefree: optimizer.train() / optimizer.eval() switch p between y and x",
    ),
)

R.register(
    R.AlgorithmSpec(
        name="sf_sgd",
        cls=SGDScheduleFree,
        family="schedule_free",
        paper=SF_PAPER,
        summary="schedule-free SGD: gradient at an interpolation of the SGD iterate z and its running average x",
        hparams="lr momentum weight_decay warmup_steps r weight_lr_power",
        search_space={"lr": R.LogUniform(1e-3, 10.0), "momentum": R.OneMinusLogUniform(0.5, 0.99)},
        state_formula=state_bytes(1, 2),
        state_tensors=1,
        notes=_SF_NOTES,
        conventions=_SF_CONVENTIONS,
        tuning_free="schedule",
    )
)

R.register(
    R.AlgorithmSpec(
        name="sf_adamw",
        cls=AdamWScheduleFree,
        family="schedule_free",
        paper=SF_PAPER,
        summary="schedule-free AdamW: Adam-normalised steps on z, gradient at an interpolation of z and its average",
        hparams="lr betas eps weight_decay warmup_steps r weight_lr_power",
        search_space={"lr": R.LogUniform(1e-4, 1e-1), "weight_decay": R.LogUniform(1e-6, 1.0)},
        state_formula=state_bytes(2, 2),
        state_tensors=2,
        notes=_SF_NOTES,
        conventions=_SF_CONVENTIONS,
        tuning_free="schedule",
    )
)
