"""OpenAI-style evolution strategies with antithetic sampling and centred-rank fitness shaping.

Salimans, Ho, Chen, Sidor & Sutskever (2017), *Evolution Strategies as a Scalable Alternative to Reinforcement
Learning*, arXiv:1703.03864 (the ES baseline of seed #309, Such et al. 2017, arXiv:1712.06567). Per step, with
N/2 directions ε_k ~ N(0, I) and the population θ ± σ ε_k evaluated in one batched call,

    u_i = rank(L_i)/(N − 1) − 1/2   (centred ranks of the losses; or the raw losses with ``rank_shaping=False``),
    ĝ = 1/(N σ) Σ_k (u_k⁺ − u_k⁻) ε_k,      θ ← θ − lr (ĝ + λ θ).

ĝ estimates the gradient of the Gaussian-smoothed (rank-transformed) loss; ``lr`` can be any size since the
ranks bound it. :meth:`ES.step` returns the mean loss of the evaluated population.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from ._common import check_range, global_state
from .population import PopulationClosure, PopulationOptimizer

__all__ = ["ES", "centred_ranks"]


def centred_ranks(losses: Tensor) -> Tensor:
    """rank/(N − 1) − 1/2 in [−1/2, 1/2], the lowest loss at −1/2 (ties broken by position)."""
    n = losses.numel()
    ranks = torch.empty(n, dtype=torch.float64)
    ranks[torch.argsort(losses, stable=True)] = torch.arange(n, dtype=torch.float64)
    return ranks / (n - 1) - 0.5


class ES(PopulationOptimizer):
    """OpenAI evolution strategies (Salimans et al., 2017, arXiv:1703.03864) with antithetic pairs.

    Args: ``population_size`` N (even, ≥ 2); ``lr`` ≥ 0 and ``weight_decay`` ≥ 0 (per group); ``sigma`` > 0 the
    perturbation scale; ``rank_shaping`` (centred ranks, default) or raw losses; ``seed``."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        population_size: int = 100,
        *,
        lr: float = 0.01,
        sigma: float = 0.1,
        weight_decay: float = 0.0,
        rank_shaping: bool = True,
        seed: int = 0,
    ) -> None:
        if population_size % 2:
            raise ValueError(f"population_size must be even (antithetic pairs), got {population_size}")
        check_range("lr", lr, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay), population_size, seed)
        for group in self.param_groups:
            check_range("lr", group["lr"], 0.0)
            check_range("weight_decay", group["weight_decay"], 0.0)
        self.sigma = check_range("sigma", sigma, 0.0, low_open=True)
        self.rank_shaping = bool(rank_shaping)

    @torch.no_grad()
    def step(self, closure: PopulationClosure | None = None) -> Tensor:  # type: ignore[override]
        closure = self._require(closure)
        g = self._generator()
        params = self._params()
        half = self.population_size // 2
        eps = [self._randn(p, half, g) for p in params]
        population = [torch.cat([p + self.sigma * e, p - self.sigma * e]) for p, e in zip(params, eps)]
        losses = self._evaluate(closure, population)
        u = centred_ranks(losses) if self.rank_shaping else losses
        weights = (u[:half] - u[half:]) / (self.population_size * self.sigma)
        lrs = [(grp["lr"], grp["weight_decay"]) for grp in self.param_groups for _ in grp["params"]]
        for p, e, (lr, wd) in zip(params, eps, lrs):
            grad = torch.tensordot(weights.to(e.dtype).to(e.device), e, dims=1)
            if wd != 0:
                p.mul_(1 - lr * wd)
            p.add_(grad, alpha=-lr)
        state = global_state(self)
        state["step"] += 1
        self._save_generator(g)
        return losses.mean()
