"""OASIS: a diagonally preconditioned gradient method with a step size from local Lipschitz estimates.

Jahani, Rusakov, Shi, Richtárik, Mahoney & Takáč (2022), *Doubly Adaptive Scaled Algorithm for Machine Learning
Using Second-Order Information*, arXiv:2109.05198 (Algorithm 1, Eqs. 7–9, adaptive learning rate).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from .. import registry as R
from . import _kernels as K
from ._rules import BETA, OneOf, Range
from ._second_order import PROBE_RULES, SecondOrderOptimizer

LIPSCHITZ_MODES = ("same_batch", "previous_gradient")


def oasis_update_(
    p,
    grad,
    hessian_diag,
    prev_param,
    prev_grad=None,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    eta: K.Scalar,
    alpha: K.Scalar,
) -> None:
    """w_{k+1} = w_k − lr·η_k · D̂_k⁻¹ ∇F(w_k) with D̂_k = max(|D_k|, α) (Eq. 9); w_k (and ∇F(w_k)) are kept for
    the next step's Lipschitz estimate. D_k and η_k were computed before, over the whole param group."""
    prev_param.copy_(p)
    if prev_grad is not None:
        prev_grad.copy_(grad)
    K.addcdiv_scaled_(p, grad, hessian_diag.abs().clamp_(min=alpha), -lr * eta)


class OASIS(SecondOrderOptimizer):
    """OASIS (Jahani et al., 2022) with the adaptive learning rate.

    D_k = β D_{k−1} + (1 − β) z ⊙ ∇²F(w_k) z (Eq. 7, Rademacher z), D̂_k = max(|D_k|, α) (Eq. 9), and

        η_k = min{ √(1 + θ_{k−1}) η_{k−1},  ‖w_k − w_{k−1}‖_{D̂_k} / (2 ‖∇F(w_k) − ∇F(w_{k−1})‖*_{D̂_k}) },
        w_{k+1} = w_k − η_k D̂_k⁻¹ ∇F(w_k),   θ_k = η_k / η_{k−1},   θ_0 = +∞,

    with ‖x‖²_D = xᵀDx and ‖x‖*²_D = xᵀD⁻¹x. The first step is w_1 = w_0 − η_0 D̂_0⁻¹∇F(w_0), D_0 the mean of
    ``init_samples`` Hutchinson estimates at w_0. The closure must call ``loss.backward(create_graph=True)``.

    ``lipschitz="same_batch"`` (default, the paper's stochastic setting) evaluates ∇F at w_{k−1} on the current
    mini-batch by calling the closure a second time at w_{k−1} (parameters restored exactly afterwards);
    ``"previous_gradient"`` reuses the gradient stored at the previous step (exact for a deterministic objective,
    one closure call per step, one more state tensor).

    ``lr`` multiplies η_k (1.0 = the paper; it lets LR schedulers act). Each param group runs its own step-size
    sequence (norms over the group's parameters); with one group this is Algorithm 1. If the Lipschitz ratio is
    undefined (w or ∇F did not change) only the growth bound √(1 + θ)·η applies, and η is kept if that is infinite.
    That bound grows η geometrically (×1.618 per step) while the gradient stays zero (a dead ReLU network): η stops
    at the largest finite value of its dtype (fp32: after ~190 such steps) instead of overflowing it.
    η and θ are stored as 0-d tensors (compute dtype, CPU) in the state of every parameter of the group.
    """

    hyperparameters = {
        "lr": Range(0.0),
        "eta0": Range(0.0, low_open=True),
        "beta": BETA,
        "alpha": Range(0.0, low_open=True),
        "lipschitz": OneOf(LIPSCHITZ_MODES),
        "init_samples": Range(1, integer=True),
        **PROBE_RULES,
    }
    lazy_state_names = ("eta", "theta")  # not from init_state (older checkpoints lack them)
    requires_hvp = True

    def __init__(
        self,
        params,
        lr: float = 1.0,
        eta0: float = 0.1,
        beta: float = 0.99,
        alpha: float = 1e-5,
        lipschitz: str = "same_batch",
        init_samples: int = 10,
        hessian_samples: int = 1,
        hessian_distribution: str = "rademacher",
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            eta0=eta0,
            beta=beta,
            alpha=alpha,
            lipschitz=lipschitz,
            init_samples=init_samples,
            hessian_samples=hessian_samples,
            hessian_distribution=hessian_distribution,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)
        self._eta: dict[int, float] = {}

    def state_keys(self, group):
        keys = ("hessian_diag", "prev_param")
        return keys + ("prev_grad",) if group["lipschitz"] == "previous_gradient" else keys

    def __setstate__(self, state):
        super().__setstate__(state)
        self._eta = {}

    def _gather(self):
        slots = super()._gather()
        for e in slots:  # η and θ with the rest of the state (a checkpoint of a fresh optimizer has them too)
            if "eta" not in e.state:  # 0-d, in the compute dtype (fp32 for bf16 params), on the CPU
                e.state["eta"] = torch.tensor(float(e.group["eta0"]), dtype=e.work.dtype)
                e.state["theta"] = torch.tensor(math.inf, dtype=e.work.dtype)
        return slots

    # ----------------------------------------------------------------- the whole-model part
    def prepare(self, entries, loss, extras, closure):
        def probes(e):
            samples = e.group["init_samples"] if e.t == 1 else e.group["hessian_samples"]
            return samples, e.group["hessian_distribution"]

        for e, estimate in self._hessian_diagonals(entries, probes):
            if e.t == 1:
                e.state["hessian_diag"].copy_(estimate)
            else:
                K.ema_(e.state["hessian_diag"], estimate, e.group["beta"])
        previous = self._previous_gradients([e for e in entries if e.t > 1], closure)
        self._eta = {}
        for group in self.param_groups:
            members = [e for e in entries if e.group is group]
            if members:
                self._eta[id(group)] = self._step_size(group, members, previous)
        return entries

    def _previous_gradients(self, entries, closure) -> dict[int, torch.Tensor]:
        """∇F(w_{k−1}) per entry: stored, or (same_batch) from the closure evaluated at w_{k−1}."""
        out = {id(e): e.state["prev_grad"] for e in entries if e.group["lipschitz"] == "previous_gradient"}
        again = [e for e in entries if e.group["lipschitz"] == "same_batch"]
        if not again:
            return out
        saved_grads = [(p, p.grad) for group in self.param_groups for p in group["params"]]
        current = [e.p.detach().clone() for e in again]
        for e in again:
            e.p.copy_(e.state["prev_param"])
        try:
            with torch.enable_grad():
                closure()
            for e in again:
                if e.p.grad is None:
                    out[id(e)] = torch.zeros_like(e.grad)
                else:
                    out[id(e)] = self._working_views(e.p, e.p.grad, e.group["maximize"])[1].detach()
        finally:
            for e, w in zip(again, current):
                e.p.copy_(w)
            for p, g in saved_grads:
                p.grad = g
        return out

    def _step_size(self, group, members, previous) -> float:
        history = [e for e in members if e.t > 1]
        if not history:
            eta, theta = float(group["eta0"]), math.inf
        else:
            eta_prev = float(history[0].state["eta"])
            theta_prev = float(history[0].state["theta"])
            device = history[0].p.device
            num, den = [], []
            for e in history:
                # in float64: squared differences of fp32 values overflow (or underflow) fp32 when the iterates or
                # gradients jump, which would make η exactly 0 (and θ = η/η_prev divide by zero next step)
                d_hat = e.state["hessian_diag"].abs().clamp(min=group["alpha"]).double()
                dw = (e.work - e.state["prev_param"]).double()
                dg = (e.grad - previous[id(e)]).double()
                num.append((dw * dw * d_hat).sum().to(device=device))
                den.append((dg * dg / d_hat).sum().to(device=device))
            a, b = torch.stack([torch.stack(num).sum(), torch.stack(den).sum()]).tolist()
            grow = math.sqrt(1 + theta_prev) * eta_prev
            lipschitz = 0.5 * math.sqrt(a / b) if a > 0 and b > 0 else math.inf
            eta = min(grow, lipschitz)
            if not (math.isfinite(eta) and eta > 0):  # no usable estimate (non-finite or vanishing): keep η
                eta = eta_prev
            eta = min(eta, torch.finfo(history[0].state["eta"].dtype).max)  # see the class docstring
            theta = eta / eta_prev
        for e in members:
            e.state["eta"].fill_(eta)
            e.state["theta"].fill_(theta)
        return eta

    update = staticmethod(oasis_update_)

    def hyper(self, group):
        # (a group whose every gradient was skipped as non-finite has no η this step and takes no step)
        return dict(lr=group["lr"], eta=self._eta.get(id(group), 0.0), alpha=group["alpha"])


def _oasis_state_bytes(shape, dtype, hp) -> int:
    """D and w_{k−1} (and ∇F(w_{k−1}) for lipschitz='previous_gradient'), plus η and θ as 0-d scalars, all in
    the compute dtype."""
    tensors = 3 if hp.get("lipschitz", "same_batch") == "previous_gradient" else 2
    return R.dense_state_bytes(shape, dtype, tensors) + 2 * R.compute_dtype(dtype).itemsize


R.register(
    R.AlgorithmSpec(
        name="oasis",
        cls=OASIS,
        family="second_order",
        paper=R.Paper(
            "Doubly Adaptive Scaled Algorithm for Machine Learning Using Second-Order Information",
            "Jahani, Rusakov, Shi, Richtárik, Mahoney, Takáč",
            2022,
            "2109.05198",
            "#32",
        ),
        summary="Hutchinson-diagonal preconditioner truncated at α and a step size from local Lipschitz estimates",
        hparams="lr eta0 beta alpha lipschitz init_samples hessian_samples hessian_distribution",
        search_space={
            "beta": R.OneMinusLogUniform(0.9, 0.9999),
            "alpha": R.LogUniform(1e-7, 1e-1),
            "eta0": R.LogUniform(1e-3, 1.0),
        },
        state_tensors=2,
        state_formula=_oasis_state_bytes,
        notes=(
            "Algorithm 1 with the adaptive learning rate. Not fixed by the paper (inputs of Algorithm 1): η0 = 0.1, "
            "D0 = mean of 10 Hutchinson estimates at w0; β = 0.99 and α = 1e-5 are typical values of the paper's "
            "experiments. Stochastic setting: both gradients of the Lipschitz estimate on the same mini-batch (a "
            "second closure call at w_{k−1}); lipschitz='previous_gradient' stores the previous gradient instead. "
            "lr is a multiplier of η_k (1 = paper). One step-size sequence per param group."
        ),
    )
)
