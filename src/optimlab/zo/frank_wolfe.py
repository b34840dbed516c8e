"""Zeroth-order stochastic Frank–Wolfe with linear minimization oracles (LMOs) for norm balls and the simplex.

Sahu, Zaheer & Kar (2019), *Towards Gradient Free and Projection Free Stochastic Optimization*, AISTATS,
arXiv:1810.03233 (seed #203), the RDSA variant: per step t = 0, 1, …, one Gaussian direction z and two function
values on the same sample ξ,

    g_t = (F(x_t + c_t z; ξ) − F(x_t; ξ)) / c_t · z,      d_t = (1 − ρ_t) d_{t−1} + ρ_t g_t   (d_{−1} = 0),
    v_t = argmin_{v ∈ C} ⟨d_t, v⟩ (the LMO),              x_{t+1} = (1 − γ_t) x_t + γ_t v_t,

with γ_t = 2/(t+8), ρ_t = 4/(d^{1/3}(t+8)^{2/3}), c_t = 2/(d^{3/2}(t+8)^{1/3}) (d the dimension): primal gap
O(d^{1/3} / T^{1/3}) for convex F. No projection and no gradient: the iterates are convex combinations of
feasible points, so they stay feasible when x_0 is. Each parameter tensor is constrained to its own set
(a ball of ``radius`` centred at 0, or the scaled simplex {v ≥ 0, Σ v = radius}).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from ._common import (
    ZOOptimizer,
    check_choice,
    check_range,
    directions,
    draw_seeds,
    global_state,
    group_params,
    new_stream,
)

__all__ = ["LMOS", "ZOFrankWolfe", "in_set", "lmo_l1", "lmo_l2", "lmo_linf", "lmo_simplex"]


def lmo_l1(g: Tensor, radius: float) -> Tensor:
    """argmin_{‖v‖₁ ≤ r} ⟨g, v⟩ = −r sign(g_i) e_i at i = argmax |g_i| (a vertex of the ℓ1 ball)."""
    flat = g.reshape(-1)
    i = int(flat.abs().argmax())
    v = torch.zeros_like(flat)
    v[i] = -radius * torch.sign(flat[i])
    return v.reshape(g.shape)


def lmo_l2(g: Tensor, radius: float) -> Tensor:
    """argmin_{‖v‖₂ ≤ r} ⟨g, v⟩ = −r g / ‖g‖₂ (0 when g = 0)."""
    norm = torch.linalg.vector_norm(g)
    return torch.zeros_like(g) if float(norm) == 0 else g * (-radius / norm)


def lmo_linf(g: Tensor, radius: float) -> Tensor:
    """argmin_{‖v‖∞ ≤ r} ⟨g, v⟩ = −r sign(g)."""
    return torch.sign(g) * -radius


def lmo_simplex(g: Tensor, radius: float) -> Tensor:
    """argmin over {v ≥ 0, Σ v = r} of ⟨g, v⟩ = r e_i at i = argmin g_i."""
    flat = g.reshape(-1)
    v = torch.zeros_like(flat)
    v[int(flat.argmin())] = radius
    return v.reshape(g.shape)


LMOS: dict[str, Callable[[Tensor, float], Tensor]] = {
    "l1": lmo_l1,
    "l2": lmo_l2,
    "linf": lmo_linf,
    "simplex": lmo_simplex,
}


def in_set(x: Tensor, constraint: str, radius: float, tol: float = 1e-6) -> bool:
    """Whether ``x`` lies in the constraint set (up to ``tol``, relative to the radius)."""
    x = x.detach().double().reshape(-1)
    slack = tol * max(radius, 1.0)
    if constraint == "simplex":
        return bool((x >= -slack).all()) and abs(float(x.sum()) - radius) <= slack * max(1, x.numel())
    order = {"l1": 1, "l2": 2, "linf": float("inf")}[check_choice("constraint", constraint, tuple(LMOS))]
    return float(torch.linalg.vector_norm(x, ord=order)) <= radius + slack


class ZOFrankWolfe(ZOOptimizer):
    """Zeroth-order stochastic Frank–Wolfe (Sahu, Zaheer & Kar, 2019, arXiv:1810.03233), RDSA estimator.

    Args: ``constraint`` ∈ {"l1", "l2", "linf", "simplex"} and ``radius`` (> 0), per group; ``gamma_scale``,
    ``rho_scale``, ``smoothing_scale`` and ``offset`` are the constants of the schedules γ_t = a/(t+o),
    ρ_t = b/(d^{1/3}(t+o)^{2/3}), c_t = c/(d^{3/2}(t+o)^{1/3}) (paper: a = 2, b = 4, c = 2, o = 8; d = the total
    number of coordinates); ``seed`` of the direction stream (state, for exact resume). ``step(closure)``: the
    closure evaluates F(·; ξ) on one sample ξ and is called twice per step; resample ξ between steps."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        constraint: str = "l1",
        radius: float = 1.0,
        *,
        gamma_scale: float = 2.0,
        rho_scale: float = 4.0,
        smoothing_scale: float = 2.0,
        offset: float = 8.0,
        seed: int = 0,
    ) -> None:
        super().__init__(params, dict(constraint=constraint, radius=radius))
        for group in self.param_groups:
            check_choice("constraint", group["constraint"], tuple(LMOS))
            check_range("radius", group["radius"], 0.0, low_open=True)
        self.gamma_scale = check_range("gamma_scale", gamma_scale, 0.0, low_open=True)
        self.rho_scale = check_range("rho_scale", rho_scale, 0.0, low_open=True)
        self.smoothing_scale = check_range("smoothing_scale", smoothing_scale, 0.0, low_open=True)
        self.offset = check_range("offset", offset, 0.0, low_open=True)
        if self.gamma_scale / self.offset > 1:
            raise ValueError(
                f"gamma_scale / offset must be <= 1 (γ_0 ≤ 1 keeps x feasible), got {gamma_scale}/{offset}"
            )
        for group in self.param_groups:
            for p in group["params"]:
                if not in_set(p, group["constraint"], group["radius"]):
                    raise ValueError(
                        f"params: the initial point is outside the {group['constraint']} set of radius "
                        f"{group['radius']} (Frank–Wolfe needs a feasible start)"
                    )
        self.dim = sum(p.numel() for p in group_params(self.param_groups))
        state = global_state(self)
        state["step"] = torch.zeros((), dtype=torch.int64)
        state["seed_stream"] = new_stream(seed)

    def schedules(self, t: int) -> tuple[float, float, float]:
        """(γ_t, ρ_t, c_t) at step t (0-based)."""
        s = t + self.offset
        gamma = self.gamma_scale / s
        rho = min(1.0, self.rho_scale / (self.dim ** (1 / 3) * s ** (2 / 3)))
        c = self.smoothing_scale / (self.dim**1.5 * s ** (1 / 3))
        return gamma, rho, c

    @torch.no_grad()
    def step(self, closure: Callable[[], Tensor | float] | None = None) -> Tensor:  # type: ignore[override]
        if closure is None:
            raise RuntimeError("ZOFrankWolfe.step needs a closure that evaluates the loss")
        state = global_state(self)
        t = int(state["step"])
        gamma, rho, c = self.schedules(t)
        (seed,), state["seed_stream"] = draw_seeds(state["seed_stream"], 1)
        params = group_params(self.param_groups)
        f0 = float(closure())
        for p, z in zip(params, directions(params, seed)):
            p.add_(z, alpha=c)
        f1 = float(closure())
        coef = (f1 - f0) / c
        lmos = [(LMOS[g["constraint"]], g["radius"]) for g in self.param_groups for _ in g["params"]]
        for p, z, (lmo, radius) in zip(params, directions(params, seed), lmos):
            p.sub_(z, alpha=c)
            pstate = self.state[p]
            if "momentum" not in pstate:
                pstate["momentum"] = torch.zeros_like(p)
            d = pstate["momentum"]
            d.mul_(1 - rho).add_(z, alpha=rho * coef)
            p.mul_(1 - gamma).add_(lmo(d, radius), alpha=gamma)
        state["step"] += 1
        return torch.tensor(f0)
