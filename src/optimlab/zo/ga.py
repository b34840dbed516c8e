"""A simple genetic algorithm: truncation selection, Gaussian mutation, elitism, no crossover.

Such, Madhavan, Conti, Lehman, Stanley & Clune (2017), *Deep Neuroevolution: Genetic Algorithms Are a
Competitive Alternative for Training Deep Neural Networks for Reinforcement Learning*, arXiv:1712.06567
(seed #309). Per generation: evaluate the N individuals (one batched call); the T best are the parents; the
next generation is the ``elites`` best unchanged plus N − elites children θ_parent + σ ε, each parent drawn
uniformly from the T, ε ~ N(0, I). The initial population is the current parameters plus N − 1 mutants of
them with scale ``init_scale`` (or :meth:`set_population`). After a step the parameters hold the best individual
evaluated; ``step`` returns its loss.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from ._common import check_int, check_range, global_state
from .population import PopulationClosure, PopulationOptimizer

__all__ = ["GA"]


class GA(PopulationOptimizer):
    """Such et al.'s (2017) GA (arXiv:1712.06567). Args: ``population_size`` N; ``truncation`` T parents
    (1 ≤ T ≤ N); ``sigma`` > 0 the mutation power; ``elites`` (0 ≤ elites ≤ T) copied unchanged;
    ``init_scale`` (default σ); ``seed``."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        population_size: int = 100,
        *,
        truncation: int = 10,
        sigma: float = 0.1,
        elites: int = 1,
        init_scale: float | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(params, {}, population_size, seed)
        self.truncation = check_int("truncation", truncation, 1)
        if truncation > population_size:
            raise ValueError(f"truncation must be <= population_size ({population_size}), got {truncation}")
        self.sigma = check_range("sigma", sigma, 0.0, low_open=True)
        self.elites = check_int("elites", elites, 0)
        if elites > truncation:
            raise ValueError(f"elites must be <= truncation ({truncation}), got {elites}")
        self.init_scale = self.sigma if init_scale is None else check_range("init_scale", init_scale, 0.0)
        global_state(self)["best_loss"] = torch.tensor(float("inf"), dtype=torch.float64)

    @torch.no_grad()
    def _initialise(self, g: torch.Generator) -> None:
        n = self.population_size
        for p in self._params():
            noise = self._randn(p, n, g)
            noise[0] = 0  # the current parameters are individual 0
            self.state[p]["population"] = p.detach().unsqueeze(0) + self.init_scale * noise

    @torch.no_grad()
    def step(self, closure: PopulationClosure | None = None) -> Tensor:  # type: ignore[override]
        closure = self._require(closure)
        g = self._generator()
        if self.population() is None:
            self._initialise(g)
        x = self.population()
        losses = self._evaluate(closure, x)
        order = torch.argsort(losses, stable=True)
        n_children = self.population_size - self.elites
        parents = order[: self.truncation][torch.randint(0, self.truncation, (n_children,), generator=g)]
        keep = order[: self.elites]
        best = int(order[0])
        self._write_params([xj[best] for xj in x])
        for p, xj in zip(self._params(), x):
            children = xj[parents.to(xj.device)] + self.sigma * self._randn(p, n_children, g)
            self.state[p]["population"] = torch.cat([xj[keep.to(xj.device)], children])
        state = global_state(self)
        state["best_loss"] = losses[best].clone()
        state["step"] += 1
        self._save_generator(g)
        return losses[best]
