"""Consensus-based optimization (CBO): derivative-free global optimization by a drifting, diffusing swarm.

Pinnau, Totzeck, Tse & Martin (2017), *A consensus-based model for global optimization and its mean-field limit*,
arXiv:1604.06218; anisotropic noise and random particle batches: Carrillo, Jin, Li & Zhu (2021), *A
consensus-based global optimization method for high dimensional machine learning problems*, arXiv:1909.09249;
CBO as a stochastic relaxation of gradient descent: Riedl, Klock, Geldhauser & Fornasier (2023), *Gradient is All
You Need?*, arXiv:2306.09778 (seed #82). The step (Euler–Maruyama, the convention of CBXpy, Bailo et al. 2024):

    v_α = Σ_i ω_i X_i / Σ_i ω_i,   ω_i = exp(−α f(X_i))   (softmax of −α f, stable for any α),
    X_i ← X_i − λ dt (X_i − v_α) + σ √dt ‖X_i − v_α‖₂ ξ_i     (isotropic), or
    X_i ← X_i − λ dt (X_i − v_α) + σ √dt (X_i − v_α) ⊙ ξ_i    (anisotropic),   ξ_i ~ N(0, I),

the norm taken over all of particle i's coordinates (all parameters). With ``batch_size`` M < N the consensus is
computed on M particles drawn without replacement each step, and only those move (``batch_partial``) or all
do. α is annealed as α ← min(α · ``alpha_factor``, ``alpha_max``) after each step.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import Tensor

from ._common import check_choice, check_int, check_range, global_state
from .population import PopulationClosure, PopulationOptimizer

__all__ = ["CBO", "consensus"]


def consensus(population: list[Tensor], losses: Tensor, alpha: float) -> list[Tensor]:
    """The weighted mean v_α of a population (one (N, *shape) tensor per parameter) with weights softmax(−α f)."""
    weights = torch.softmax(-alpha * losses.to(torch.float64), dim=0)
    return [torch.tensordot(weights.to(x.dtype).to(x.device), x, dims=1) for x in population]


class CBO(PopulationOptimizer):
    """Consensus-based optimization over the parameters (see the module docstring for the update).

    Args: ``population_size`` N (≥ 2); ``dt`` > 0; ``lamda`` (λ ≥ 0, drift); ``sigma`` (σ ≥ 0, noise); ``alpha``
    (> 0) with ``alpha_factor`` (≥ 1) and ``alpha_max``; ``noise`` ∈ {"isotropic", "anisotropic"};
    ``batch_size`` (None: all N) and ``batch_partial``; the initial particles ``init`` ∈ {"normal", "uniform"}:
    the current parameters plus ``init_scale`` · N(0, 1) or U(−1, 1) noise (or :meth:`set_population`); ``seed``.
    After a step the parameters hold v_α; ``step`` returns the lowest loss evaluated in it."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        population_size: int = 100,
        *,
        dt: float = 0.1,
        lamda: float = 1.0,
        sigma: float = 1.0,
        alpha: float = 1.0,
        alpha_factor: float = 1.0,
        alpha_max: float = 1e15,
        noise: str = "isotropic",
        batch_size: int | None = None,
        batch_partial: bool = True,
        init: str = "normal",
        init_scale: float = 1.0,
        seed: int = 0,
    ) -> None:
        super().__init__(params, {}, population_size, seed)
        self.dt = check_range("dt", dt, 0.0, low_open=True)
        self.lamda = check_range("lamda", lamda, 0.0)
        self.sigma = check_range("sigma", sigma, 0.0)
        check_range("alpha", alpha, 0.0, low_open=True)
        self.alpha_factor = check_range("alpha_factor", alpha_factor, 1.0)
        self.alpha_max = check_range("alpha_max", alpha_max, alpha)
        self.noise = check_choice("noise", noise, ("isotropic", "anisotropic"))
        if batch_size is not None:
            check_int("batch_size", batch_size, 1)
            if batch_size > population_size:
                raise ValueError(f"batch_size must be <= population_size ({population_size}), got {batch_size}")
        self.batch_size = batch_size
        self.batch_partial = bool(batch_partial)
        self.init = check_choice("init", init, ("normal", "uniform"))
        self.init_scale = check_range("init_scale", init_scale, 0.0)
        global_state(self)["alpha"] = torch.tensor(float(alpha), dtype=torch.float64)

    @property
    def alpha(self) -> float:
        return float(global_state(self)["alpha"])

    @torch.no_grad()
    def _initialise(self, g: torch.Generator) -> None:
        n = self.population_size
        for p in self._params():
            if self.init == "normal":
                noise = self._randn(p, n, g)
            else:
                noise = (torch.rand((n, *p.shape), generator=g, dtype=p.dtype) * 2 - 1).to(p.device)
            self.state[p]["population"] = p.detach().unsqueeze(0) + self.init_scale * noise

    @torch.no_grad()
    def step(self, closure: PopulationClosure | None = None) -> Tensor:  # type: ignore[override]
        closure = self._require(closure)
        g = self._generator()
        if self.population() is None:
            self._initialise(g)
        x = self.population()
        n = self.population_size
        if self.batch_size is not None and self.batch_size < n:
            idx = torch.randperm(n, generator=g)[: self.batch_size]
            chosen = [xj[idx.to(xj.device)] for xj in x]
        else:
            idx, chosen = None, x
        losses = self._evaluate(closure, chosen)
        v = consensus(chosen, losses, self.alpha)
        moving = idx if (idx is not None and self.batch_partial) else None
        current = [xj[moving.to(xj.device)] if moving is not None else xj for xj in x]
        drift = [xj - vj.unsqueeze(0) for xj, vj in zip(current, v)]
        xi = [self._randn(vj, d.shape[0], g) for vj, d in zip(v, drift)]
        if self.noise == "isotropic":
            norms = torch.sqrt(sum(d.reshape(d.shape[0], -1).square().sum(1) for d in drift))
            noise = [z * norms.reshape(-1, *([1] * (z.dim() - 1))) for z in xi]
        else:
            noise = [z * d for z, d in zip(xi, drift)]
        scale = self.sigma * math.sqrt(self.dt)
        for xj, d, e in zip(x, drift, noise):
            new = xj[moving.to(xj.device)] if moving is not None else xj.clone()
            new.add_(d, alpha=-self.lamda * self.dt).add_(e, alpha=scale)
            if moving is not None:
                xj[moving.to(xj.device)] = new
            else:
                xj.copy_(new)
        self._write_params(v)
        state = global_state(self)
        state["alpha"] = torch.clamp(state["alpha"] * self.alpha_factor, max=self.alpha_max)
        state["step"] += 1
        self._save_generator(g)
        return losses.min()
