"""νPI: a proportional–integral controller for the Lagrange multipliers, as a torch optimizer.

Sohrabi, Ramirez, Zhang, Lacoste-Julien & Gallego-Posada (2024), "On PI Controllers for Updating Lagrange
Multipliers in Constrained Optimization", ICML 2024, arXiv:2406.04558. With the error ``e_t`` = the gradient
(for multipliers: the constraint violation ``∂L/∂λ``) and its EMA ``ξ_t = ν ξ_{t−1} + (1 − ν) e_t``::

    θ_{t+1} = θ_t ± lr · (κ_I e_t + κ_P (ξ_t − ξ_{t−1}))          (+ with maximize=True)

``κ_P = 0`` is gradient descent/ascent; ``κ_P = κ_I = 1, ν = 0`` is the optimistic gradient (extrapolation from the
past). ``init`` chooses ``ξ_{−1}``: ``"zeros"`` (the paper's; the first step is ``lr (κ_I + (1 − ν) κ_P) e_0``) or
``"sgd"`` (``ξ_{−1} = e_0``: the first step is plain gradient ascent). Cooper 1.0.1's ``SGD`` init sets
``ξ_0 = 0`` instead of ``e_0`` after the first step, so the two agree only with ``init="zeros"``.

Stateful like any optimizer: for per-sample multipliers, an example not in the batch has error 0 this step, so
with ``κ_P ≠ 0`` its ξ decays and its multiplier moves; use ``κ_P = 0`` there or accept it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

__all__ = ["NuPI"]

NUPI_INITS = ("zeros", "sgd")


class NuPI(torch.optim.Optimizer):
    """The νPI controller (see the module docstring). Defaults: ``kp=0, ki=1, ema_nu=0``: plain gradient steps."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-2,
        *,
        kp: float = 0.0,
        ki: float = 1.0,
        ema_nu: float = 0.0,
        init: str = "zeros",
        maximize: bool = False,
    ) -> None:
        if not (math.isfinite(lr) and lr >= 0):
            raise ValueError(f"lr must be a finite number >= 0, got {lr!r}")
        if not (math.isfinite(kp) and kp >= 0):
            raise ValueError(f"kp must be a finite number >= 0, got {kp!r}")
        if not (math.isfinite(ki) and ki >= 0):
            raise ValueError(f"ki must be a finite number >= 0, got {ki!r}")
        if not 0 <= ema_nu < 1:
            raise ValueError(f"ema_nu must be in [0, 1), got {ema_nu!r}")
        if init not in NUPI_INITS:
            raise ValueError(f"init must be one of {NUPI_INITS}, got {init!r}")
        super().__init__(params, dict(lr=lr, kp=kp, ki=ki, ema_nu=ema_nu, init=init, maximize=maximize))

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor] | None = None) -> Tensor | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, kp, ki, nu = group["lr"], group["kp"], group["ki"], group["ema_nu"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                e = p.grad
                state = self.state[p]
                if "xi" not in state:
                    state["xi"] = e.clone() if group["init"] == "sgd" else torch.zeros_like(p)
                    state["step"] = torch.zeros((), dtype=torch.float64)
                nupi_update_(p, e, state["xi"], lr=lr, kp=kp, ki=ki, ema_nu=nu, maximize=group["maximize"])
                state["step"] += 1
        return loss


def nupi_update_(
    p: Tensor, e: Tensor, xi: Tensor, *, lr: float, kp: float, ki: float, ema_nu: float, maximize: bool
) -> None:
    """One νPI step in place: ``ξ ← ν ξ + (1 − ν) e``; ``p ← p ± lr (κ_I e + κ_P (ξ_new − ξ_old))``."""
    delta = (1 - ema_nu) * (e - xi)  # ξ_t − ξ_{t−1}
    update = ki * e + kp * delta
    xi.add_(delta)
    p.add_(update, alpha=lr if maximize else -lr)
