"""Prodigy and D-Adaptation Adam: Adam whose step size d·lr estimates the distance to the solution.

Mishchenko & Defazio (2024), *Prodigy: An Expeditiously Adaptive Parameter-Free Learner*, arXiv:2306.06101 (authors'
package ``prodigyopt``); Defazio & Mishchenko (2023), *Learning-Rate-Free Learning by D-Adaptation*,
arXiv:2301.07733 (authors' package ``dadaptation``, class ``DAdaptAdam``). Both keep one global estimate d (over all
param groups) computed before the per-tensor Adam update, from inner products of the gradients with the distance
travelled (Prodigy: ⟨g, x₀ − x⟩; D-Adapt: ⟨g, s⟩ with s the weighted gradient sum) over the ℓ1 norm of s.

Prodigy (dlr = d·lr·bc, bc = √(1 − β₂ᵏ⁺¹)/(1 − β₁ᵏ⁺¹) with ``use_bias_correction``, else 1):

    r ← β₃ r + (d/d₀)·dlr·Σ⟨g, x₀ − x⟩;   s ← β₃ s + (d/d₀)·dlr·g   (·d instead of ·dlr with ``safeguard_warmup``)
    d̂ = d_coef · r / ‖s‖₁;   d_max ← max(d_max, d̂);   d ← min(d_max, d·growth_rate)
    m ← β₁m + d(1 − β₁)g;  v ← β₂v + d²(1 − β₂)g²;  x ← x − dlr·λx (decoupled) − dlr·m/(√v + d_new·ε)

D-Adapt Adam (r_g = the group's ``layer_scale``):

    r ← √β₂ r + (1 − √β₂)·Σ r_g·dlr·⟨g, s/(√v + ε)⟩;   s ← √β₂ s + dlr(1 − √β₂) g;   d̂ = r/((1 − √β₂)‖s‖₁)
    d ← max(d, min(d̂, d·growth_rate));   m ← β₁m + r_g·dlr(1 − β₁)g;  v ← β₂v + (1 − β₂)g²;  x ← x − m/(√v + ε)

m and v use the d of before the update, as in the packages.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from . import _kernels as K
from ._group_scalars import GroupScalarOptimizer, dot, read_scalars, scalar, state_bytes, write_scalars
from ._rules import BETA, OneOf, Range, Tuple

_PRODIGY_SCALARS = ("d", "d_max", "d_numerator")
_DADAPT_SCALARS = ("d", "numerator_weighted")


def prodigy_update_(
    p: Tensor,
    grad: Tensor,
    p0: Tensor,
    s: Tensor,
    exp_avg_sq: Tensor,
    *state: Tensor,
    step: K.Scalar,
    dlr: K.Scalar,
    d: K.Scalar,
    d_new: K.Scalar,
    beta1: K.Scalar,
    beta2: K.Scalar,
    eps: K.Scalar,
    weight_decay: K.Scalar,
    decouple: bool,
    active: bool = True,
) -> None:
    """Prodigy's Adam step on one tensor (``state`` ends with ``exp_avg`` when β₁ > 0); nothing when not
    ``active`` (‖s‖₁ = 0: the package returns before updating)."""
    if not active:
        return
    if not decouple:
        grad = K.coupled_decay(grad, p, weight_decay)
    K.addcmul_scaled_(exp_avg_sq.mul_(beta2), grad, grad, d * d * (1 - beta2))
    denom = exp_avg_sq.sqrt().add_(d_new * eps)
    if decouple:
        K.add_scaled_(p, p, -weight_decay * dlr)
    if len(state) == 4:  # (d, d_max, d_numerator, exp_avg)
        exp_avg = state[3]
        K.add_scaled_(exp_avg.mul_(beta1), grad, d * (1 - beta1))
        K.addcdiv_scaled_(p, exp_avg, denom, -dlr)
    else:
        K.addcdiv_scaled_(p, grad, denom, -dlr * d_new)


class Prodigy(GroupScalarOptimizer):
    """Prodigy (Mishchenko & Defazio, 2024): Adam with a learned step size d (keep ``lr`` = 1; use it for a
    schedule). Arguments and defaults as ``prodigyopt.Prodigy``, except ``fsdp_in_use`` and ``slice_p`` (the
    estimate uses every coordinate). Param groups may have different ``lr``: each group's dlr uses its own (the
    package requires one lr, or 0)."""

    hyperparameters = {
        "lr": Range(0.0),
        "betas": Tuple(2, BETA),
        "beta3": Range(0.0, 1.0, high_open=True, optional=True),
        "eps": Range(0.0, low_open=True),
        "weight_decay": Range(0.0),
        "decouple": OneOf((True, False)),
        "use_bias_correction": OneOf((True, False)),
        "safeguard_warmup": OneOf((True, False)),
        "d0": Range(0.0, low_open=True),
        "d_coef": Range(0.0, low_open=True),
        "growth_rate": Range(1.0, infinite=True),
    }
    update = staticmethod(prodigy_update_)

    def __init__(
        self,
        params,
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        beta3: float | None = None,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decouple: bool = True,
        use_bias_correction: bool = False,
        safeguard_warmup: bool = False,
        d0: float = 1e-6,
        d_coef: float = 1.0,
        growth_rate: float = math.inf,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, beta3=beta3, eps=eps, weight_decay=weight_decay, decouple=decouple)
        defaults.update(use_bias_correction=use_bias_correction, safeguard_warmup=safeguard_warmup, d0=d0)
        defaults.update(d_coef=d_coef, growth_rate=growth_rate, maximize=maximize)
        super().__init__(params, defaults, **options)
        self._hyper: dict[str, Any] = {}

    def __setstate__(self, state):
        super().__setstate__(state)
        self._hyper = {}

    def state_keys(self, group):
        return ("p0", "s", "exp_avg_sq", *_PRODIGY_SCALARS) + (("exp_avg",) if group["betas"][0] > 0 else ())

    def init_state(self, p: Tensor, group: dict[str, Any]) -> list[Tensor]:
        out = []
        for name in self.state_keys(group):
            out.append(
                p.detach().clone() if name == "p0" else scalar(p) if name in _PRODIGY_SCALARS else torch.zeros_like(p)
            )
        return out

    @staticmethod
    def _beta3(group) -> float:
        return group["beta3"] if group["beta3"] is not None else math.sqrt(group["betas"][1])

    def _dlr(self, group, d: float, k: int) -> float:
        beta1, beta2 = group["betas"]
        bc = math.sqrt(1 - beta2 ** (k + 1)) / (1 - beta1 ** (k + 1)) if group["use_bias_correction"] else 1.0
        return d * group["lr"] * bc

    def prepare(self, entries, loss, extras, closure):
        first = self.param_groups[0]
        all_params = [p for g in self.param_groups for p in g["params"]]
        prior = read_scalars(self, all_params, _PRODIGY_SCALARS)
        d0 = first["d0"]
        d, d_max, numerator = (d0, d0, 0.0) if prior is None else (prior["d"], prior["d_max"], prior["d_numerator"])
        delta, denom = 0.0, 0.0
        for e in entries:
            group = e.group
            if group["lr"] == 0:
                continue
            g = e.grad if group["decouple"] else K.coupled_decay(e.grad, e.work, group["weight_decay"])
            dlr = self._dlr(group, d, e.t - 1)
            delta += (d / d0) * dlr * dot(g, e.state["p0"] - e.work)
            scale = (d / d0) * (d if group["safeguard_warmup"] else dlr)
            K.add_scaled_(e.state["s"].mul_(self._beta3(group)), g, scale)
            denom += float(e.state["s"].abs().sum())
        d_old = d
        if denom > 0:
            numerator = numerator * self._beta3(first) + delta
            d_hat = first["d_coef"] * numerator / denom
            if d == d0:
                d = max(d, d_hat)
            d_max = max(d_max, d_hat)
            d = min(d_max, d * first["growth_rate"])
        write_scalars(self, all_params, {"d": d, "d_max": d_max, "d_numerator": numerator})
        # a zero ‖s‖₁ (e.g. all-zero gradients) leaves the parameters where they are, as the package's early return
        self._hyper = {"d": d_old, "d_new": d, "active": denom > 0}
        return entries

    def hyper(self, group):
        beta1, beta2 = group["betas"]
        t = int(self.state[next(p for p in group["params"] if p.grad is not None and p.numel())]["step"])
        return dict(
            dlr=self._dlr(group, self._hyper["d"], t),
            active=self._hyper["active"],
            d=self._hyper["d"],
            d_new=self._hyper["d_new"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            decouple=group["decouple"],
        )


def dadapt_adam_update_(
    p: Tensor,
    grad: Tensor,
    s: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    d: Tensor,
    numerator_weighted: Tensor,
    *,
    step: K.Scalar,
    dlr: K.Scalar,
    layer_scale: K.Scalar,
    beta1: K.Scalar,
    beta2: K.Scalar,
    eps: K.Scalar,
    weight_decay: K.Scalar,
    decouple: bool,
    active: bool = True,
) -> None:
    """D-Adapt Adam's step on one tensor (s and the global d were updated before the loop); nothing when not
    ``active`` (‖s‖₁ = 0: the package returns before updating)."""
    if not active:
        return
    if not decouple:
        grad = K.coupled_decay(grad, p, weight_decay)
    K.add_scaled_(exp_avg.mul_(beta1), grad, layer_scale * dlr * (1 - beta1))
    K.addcmul_scaled_(exp_avg_sq.mul_(beta2), grad, grad, 1 - beta2)
    denom = exp_avg_sq.sqrt().add_(eps)
    if decouple:
        K.add_scaled_(p, p, -weight_decay * dlr)
    K.addcdiv_scaled_(p, exp_avg, denom, -1.0)


class DAdaptAdam(GroupScalarOptimizer):
    """D-Adaptation Adam (Defazio & Mishchenko, 2023): Adam with a learned step size d (keep ``lr`` = 1).
    Arguments and defaults as ``dadaptation.DAdaptAdam`` (without ``log_every`` and ``fsdp_in_use``); a group's
    ``layer_scale`` (default 1) scales its step as in the package. Groups may have different ``lr``."""

    hyperparameters = {
        "lr": Range(0.0),
        "betas": Tuple(2, BETA),
        "eps": Range(0.0, low_open=True),
        "weight_decay": Range(0.0),
        "decouple": OneOf((True, False)),
        "use_bias_correction": OneOf((True, False)),
        "d0": Range(0.0, low_open=True),
        "growth_rate": Range(1.0, infinite=True),
        "layer_scale": Range(0.0),
    }
    state_names = ("s", "exp_avg", "exp_avg_sq", *_DADAPT_SCALARS)
    update = staticmethod(dadapt_adam_update_)

    def __init__(
        self,
        params,
        lr: float = 1.0,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decouple: bool = False,
        use_bias_correction: bool = False,
        d0: float = 1e-6,
        growth_rate: float = math.inf,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, decouple=decouple)
        defaults.update(use_bias_correction=use_bias_correction, d0=d0, growth_rate=growth_rate, layer_scale=1.0)
        super().__init__(params, {**defaults, "maximize": maximize}, **options)
        self._d, self._active = 0.0, False

    def __setstate__(self, state):
        super().__setstate__(state)
        self._d, self._active = 0.0, False

    def init_state(self, p: Tensor, group: dict[str, Any]) -> list[Tensor]:
        return [torch.zeros_like(p), torch.zeros_like(p), torch.zeros_like(p), scalar(p), scalar(p)]

    _dlr = Prodigy._dlr

    def prepare(self, entries, loss, extras, closure):
        first = self.param_groups[0]
        all_params = [p for g in self.param_groups for p in g["params"]]
        prior = read_scalars(self, all_params, _DADAPT_SCALARS)
        d, numerator = (first["d0"], 0.0) if prior is None else (prior["d"], prior["numerator_weighted"])
        sqrt_beta2 = math.sqrt(first["betas"][1])
        acc, sk_l1 = 0.0, 0.0
        for e in entries:
            group = e.group
            if group["lr"] == 0:
                continue
            g = e.grad if group["decouple"] else K.coupled_decay(e.grad, e.work, group["weight_decay"])
            dlr, r = self._dlr(group, d, e.t - 1), group["layer_scale"]
            s, v = e.state["s"], e.state["exp_avg_sq"]
            acc += r * dlr * dot(g, s / v.sqrt().add_(group["eps"]))
            K.add_scaled_(s.mul_(sqrt_beta2), g, dlr * (1 - sqrt_beta2))
            sk_l1 += r * float(s.abs().sum())
        self._d = d
        self._active = sk_l1 > 0
        if sk_l1 > 0:
            numerator = sqrt_beta2 * numerator + (1 - sqrt_beta2) * acc
            d_hat = numerator / ((1 - sqrt_beta2) * sk_l1)
            d = max(d, min(d_hat, d * first["growth_rate"]))
        write_scalars(self, all_params, {"d": d, "numerator_weighted": numerator})
        return entries

    def hyper(self, group):
        beta1, beta2 = group["betas"]
        t = int(self.state[next(p for p in group["params"] if p.grad is not None and p.numel())]["step"])
        return dict(
            dlr=self._dlr(group, self._d, t),
            active=self._active,
            layer_scale=group["layer_scale"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            decouple=group["decouple"],
        )


_PRODIGY_NOTES = (
    "Arguments, defaults and math of the authors' prodigyopt 1.1 (float64 parity in tests/test_prodigy.py), with "
    "slice_p = 1 and without fsdp_in_use. Deviations: groups may have different lr (each group's dlr uses its own; "
    "the package raises), p.grad is left alone under coupled decay. d, d_max and the numerator are one-element "
    "state tensors (the package keeps Python floats in the param groups). pytorch_optimizer's Prodigy (read at "
    "kozistr/pytorch_optimizer@5baa713, not run) renames decouple/use_bias_correction to weight_decouple/"
    "bias_correction, applies coupled decay after the d estimate (so g, m, v exclude λx) and decays the numerator "
    "also on steps it skips."
)
_DADAPT_NOTES = (
    "Arguments, defaults and math of the authors' dadaptation 3.2 DAdaptAdam (float64 parity in "
    "tests/test_prodigy.py), without log_every / fsdp_in_use; layer_scale is a group entry as in the package. "
    "Deviations: groups may have different lr; p.grad is left alone under coupled decay (decouple=False, the "
    "package default, adds λx to the gradient before every use). pytorch_optimizer's DAdaptAdam as read at "
    "kozistr/pytorch_optimizer@4a282e3 (not run) differs: d̂ = r/(1 − √β₂)·‖s‖₁ (multiplies by ‖s‖₁), state is "
    "re-created every step (its 'step' key is never written), the group step never advances, coupled decay acts "
    "on x instead of the gradient."
)

R.register(
    R.AlgorithmSpec(
        name="prodigy",
        cls=Prodigy,
        family="parameter_free",
        paper=R.Paper(
            "Prodigy: An Expeditiously Adaptive Parameter-Free Learner", "Mishchenko, Defazio", 2024, "2306.06101"
        ),
        summary="Adam with a learned step size d from ⟨g, x₀ − x⟩ over ‖s‖₁ (D-Adaptation, faster growth)",
        # beta3 (None: √β₂) is left out: the registry's create() reads beta3= as betas[2]
        hparams="lr betas eps weight_decay decouple use_bias_correction safeguard_warmup d0 d_coef growth_rate",
        search_space={"d_coef": R.LogUniform(0.1, 10.0), "weight_decay": R.LogUniform(1e-6, 1.0)},
        state_tensors=4,
        state_formula=lambda shape, dtype, hp: state_bytes(4 if hp["betas"][0] > 0 else 3, 3)(shape, dtype, hp),
        notes=_PRODIGY_NOTES,
        tuning_free="lr",
    )
)

R.register(
    R.AlgorithmSpec(
        name="dadapt_adam",
        cls=DAdaptAdam,
        family="parameter_free",
        paper=R.Paper("Learning-Rate-Free Learning by D-Adaptation", "Defazio, Mishchenko", 2023, "2301.07733"),
        summary="D-Adaptation Adam: Adam whose step size d is a lower bound on the distance to the solution",
        hparams="lr betas eps weight_decay decouple use_bias_correction d0 growth_rate",
        search_space={"lr": R.LogUniform(0.1, 10.0), "weight_decay": R.LogUniform(1e-6, 1.0)},
        state_tensors=3,
        state_formula=state_bytes(3, 2),
        notes=_DADAPT_NOTES,
        tuning_free="lr",
    )
)
