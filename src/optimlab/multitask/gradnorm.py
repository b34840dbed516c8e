"""GradNorm: Chen, Badrinarayanan, Lee & Rabinovich (2018), *GradNorm: Gradient Normalization for Adaptive Loss
Balancing in Deep Multitask Networks*, arXiv:1711.02257.

Task weights w_i (initially 1) are learned so that the gradient norms of the weighted losses at a chosen shared
layer W, G_i = ‖∇_W w_i L_i‖, approach a common scale set by each task's relative inverse training rate:

    L̃_i = L_i(t) / L_i(0),   r_i = L̃_i / mean_j L̃_j,   L_grad = Σ_i | G_i − stopgrad(Ḡ · r_i^α) |,  Ḡ = mean_i G_i

and w is updated with ∇_w L_grad only (by its own optimizer, Adam with ``lr`` by default), then renormalized so
that Σ_i w_i = T (weights are first clamped at ``min_weight`` > 0, a guard the paper does not need to state).
The model receives the gradient of Σ_i w_i L_i with the weights *before* the update. Since G_i = w_i ‖∇_W L_i‖,
∂L_grad/∂w_i = sign(G_i − target_i)·‖∇_W L_i‖: one backward per task on W, no second-order graph.
L_i(0) is the loss at the first call (the paper's choice of the initial loss).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from .weighting import check_num_tasks

__all__ = ["GradNorm"]


class GradNorm:
    """GradNorm loss weighting (Chen et al., 2018, arXiv:1711.02257), asymmetry ``alpha`` (paper: 0.12–3; 1.5
    common). ``backward(losses, shared_layer)`` writes the model's gradients and updates the weights."""

    def __init__(
        self,
        num_tasks: int,
        alpha: float = 1.5,
        lr: float = 0.025,
        *,
        min_weight: float = 1e-6,
        optimizer: Callable[[list[Tensor]], torch.optim.Optimizer] | None = None,
    ) -> None:
        self.num_tasks = check_num_tasks(num_tasks)
        alpha, lr, min_weight = float(alpha), float(lr), float(min_weight)
        if not alpha >= 0.0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if not lr > 0.0:
            raise ValueError(f"lr must be > 0, got {lr}")
        if not 0.0 < min_weight < 1.0:
            raise ValueError(f"min_weight must be in (0, 1), got {min_weight}")
        self.alpha, self.lr, self.min_weight = alpha, lr, min_weight
        self.task_weights = torch.ones(self.num_tasks, requires_grad=True)
        make = optimizer if optimizer is not None else (lambda ps: torch.optim.Adam(ps, lr=lr))
        self.optimizer = make([self.task_weights])
        self.initial_losses = torch.zeros(self.num_tasks)
        self.has_initial = torch.zeros((), dtype=torch.bool)

    def weights(self) -> Tensor:
        """The current task weights (they sum to the number of tasks)."""
        return self.task_weights.detach().clone()

    def backward(
        self, losses: Tensor, shared_layer: Tensor | Iterable[Tensor], *, retain_graph: bool = False
    ) -> Tensor:
        """Backward of Σ_i w_i L_i into the model's ``.grad`` and one GradNorm update of w.

        ``losses``: the T task losses (1-D, with their graph); ``shared_layer``: the parameter(s) W whose gradient
        norms are balanced (the paper uses the last shared layer). Returns the weighted loss (detached)."""
        if losses.dim() != 1 or losses.numel() != self.num_tasks:
            raise ValueError(f"losses must be a 1-D tensor of {self.num_tasks} losses, got {tuple(losses.shape)}")
        layer = [shared_layer] if isinstance(shared_layer, Tensor) else list(shared_layer)
        detached = losses.detach().to(self.initial_losses.dtype).cpu()
        if not bool(self.has_initial):
            self.initial_losses = detached.clone()
            self.has_initial = torch.ones((), dtype=torch.bool)
        norms = torch.zeros(self.num_tasks, dtype=torch.float64)
        for i in range(self.num_tasks):
            grads = torch.autograd.grad(losses[i], layer, retain_graph=True, allow_unused=True)
            sq = sum(float(g.detach().to(torch.float64).pow(2).sum()) for g in grads if g is not None)
            norms[i] = sq**0.5
        w = self.task_weights.detach().to(torch.float64)
        g_norms = w * norms
        ratio = detached.to(torch.float64) / self.initial_losses.to(torch.float64)
        rate = ratio / ratio.mean()
        target = g_norms.mean() * rate.pow(self.alpha)
        grad_w = torch.sign(g_norms - target) * norms

        total = (self.task_weights.detach().to(device=losses.device, dtype=losses.dtype) * losses).sum()
        total.backward(retain_graph=retain_graph)

        self.optimizer.zero_grad(set_to_none=True)
        self.task_weights.grad = grad_w.to(self.task_weights.dtype)
        self.optimizer.step()
        with torch.no_grad():
            self.task_weights.clamp_(min=self.min_weight)
            self.task_weights.mul_(self.num_tasks / self.task_weights.sum())
        return total.detach()

    def state_dict(self) -> dict[str, Any]:
        return {
            "task_weights": self.task_weights.detach().clone(),
            "initial_losses": self.initial_losses.clone(),
            "has_initial": self.has_initial.clone(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["task_weights"].shape != (self.num_tasks,):
            raise ValueError(f"state is for {state['task_weights'].numel()} tasks, this GradNorm has {self.num_tasks}")
        with torch.no_grad():
            self.task_weights.copy_(state["task_weights"])
        self.initial_losses = state["initial_losses"].clone()
        self.has_initial = state["has_initial"].clone()
        self.optimizer.load_state_dict(state["optimizer"])
