"""Fish: Shi, Seely, Torr, Siddharth, Hannun, Usunier & Synnaeve (2022), *Gradient Matching for Domain
Generalization*, arXiv:2104.09937 (ICLR 2022), Algorithm 2.

A first-order approximation of maximizing the inner products between the gradients of different domains: from
θ, take one inner step per training domain in a random order on a copy θ̃ (here: the model's own parameters,
stepped by any base optimizer), then move the original parameters part of the way, θ ← θ + ε (θ̃ − θ).

:class:`Fish` wraps a base optimizer through its public API only: it snapshots the base's parameters, drives one
:func:`optimlab.training.train_step` of the base per domain, then applies the meta step in place. The base
optimizer's own state carries over from one meta step to the next (the authors' ``reload_inner_optim`` option).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .. import training

__all__ = ["Fish"]


class Fish:
    """Fish meta-optimizer around ``base`` (Shi et al., 2022, arXiv:2104.09937); ``meta_lr`` is ε ∈ (0, 1].

    ``step(domain_losses)`` takes one loss function per training domain (each draws its own minibatch and returns
    the loss, as for :func:`optimlab.training.train_step`) and returns the inner losses in the order they ran.
    The domain order is shuffled by a generator seeded with ``seed`` (its state is in ``state_dict``)."""

    def __init__(self, base: torch.optim.Optimizer, *, meta_lr: float = 0.05, shuffle: bool = True, seed: int = 0):
        if not isinstance(base, torch.optim.Optimizer):
            raise TypeError(f"base must be a torch.optim.Optimizer, got {type(base).__name__}")
        meta_lr = float(meta_lr)
        if not 0.0 < meta_lr <= 1.0:
            raise ValueError(f"meta_lr must be in (0, 1], got {meta_lr}")
        self.base, self.meta_lr, self.shuffle = base, meta_lr, bool(shuffle)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.steps = torch.zeros((), dtype=torch.int64)

    def _params(self) -> list[Tensor]:
        return [p for group in self.base.param_groups for p in group["params"]]

    def step(self, domain_losses: Sequence[Callable[[], Tensor | tuple[Tensor, Any]]]) -> list[Tensor]:
        if len(domain_losses) == 0:
            raise ValueError("domain_losses is empty")
        params = self._params()
        start = [p.detach().clone() for p in params]
        n = len(domain_losses)
        order = torch.randperm(n, generator=self.generator).tolist() if self.shuffle else list(range(n))
        losses = [training.train_step(self.base, domain_losses[k]) for k in order]
        with torch.no_grad():
            for p, theta in zip(params, start):
                p.sub_(theta).mul_(self.meta_lr).add_(theta)  # θ + ε (θ̃ − θ)
        self.steps += 1
        return losses

    def state_dict(self) -> dict[str, Any]:
        return {"base": self.base.state_dict(), "rng": self.generator.get_state(), "steps": self.steps.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.base.load_state_dict(state["base"])
        self.generator.set_state(state["rng"])
        self.steps = state["steps"].clone()
