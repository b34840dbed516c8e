"""Loss weightings: turn a vector of task losses into one scalar Σ_i λ_i L_i with (possibly adaptive) weights.

* :class:`EqualWeighting` — λ_i = 1.
* :class:`UncertaintyWeighting` — Kendall, Gal & Cipolla (2018), *Multi-Task Learning Using Uncertainty to Weigh
  Losses for Scene Geometry and Semantics*, arXiv:1705.07115: learned log-variances s_i, loss
  Σ_i exp(−s_i) L_i + s_i (the paper's regression form up to a factor ½ on both terms; at the optimum
  exp(s_i) = L_i, as in the paper). An ``nn.Module``: give its parameters to the optimizer.
* :class:`DWA` — Dynamic Weight Average, Liu, Johns & Davison (2019), *End-to-End Multi-Task Learning with
  Attention*, arXiv:1803.10704: λ_k(t) = K·softmax_k(r_k(t−1)/T) with r_k(t−1) = L̄_k(t−1)/L̄_k(t−2), the ratio
  of epoch-average losses; uniform for the first two epochs. Call :meth:`DWA.step` at the end of each epoch.
* GradNorm is in :mod:`optimlab.multitask.gradnorm`.

Every stateful weighting keeps its state in tensors: ``state_dict()`` round-trips bit-exactly through
``torch.save`` / ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["DWA", "EqualWeighting", "UncertaintyWeighting", "check_num_tasks"]


def check_num_tasks(num_tasks: int) -> int:
    if isinstance(num_tasks, bool) or int(num_tasks) != num_tasks or int(num_tasks) < 1:
        raise ValueError(f"num_tasks must be an integer >= 1, got {num_tasks!r}")
    return int(num_tasks)


def _check_losses(losses: Tensor, num_tasks: int) -> Tensor:
    if losses.dim() != 1 or losses.numel() != num_tasks:
        raise ValueError(f"losses must be a 1-D tensor of {num_tasks} task losses, got shape {tuple(losses.shape)}")
    return losses


class EqualWeighting:
    """λ_i = 1: the sum of the task losses."""

    def __init__(self, num_tasks: int) -> None:
        self.num_tasks = check_num_tasks(num_tasks)

    def weights(self) -> Tensor:
        return torch.ones(self.num_tasks)

    def __call__(self, losses: Tensor) -> Tensor:
        return _check_losses(losses, self.num_tasks).sum()

    def state_dict(self) -> dict[str, Tensor]:
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if state:
            raise ValueError(f"EqualWeighting has no state, got keys {sorted(state)}")


class UncertaintyWeighting(nn.Module):
    """Homoscedastic-uncertainty weighting (Kendall et al., 2018, arXiv:1705.07115): Σ_i exp(−s_i) L_i + s_i with
    learned s_i = log σ_i² (initialized at ``init``). Train ``log_vars`` with the model's optimizer."""

    def __init__(self, num_tasks: int, init: float = 0.0) -> None:
        super().__init__()
        self.num_tasks = check_num_tasks(num_tasks)
        self.log_vars = nn.Parameter(torch.full((self.num_tasks,), float(init)))

    def weights(self) -> Tensor:
        return torch.exp(-self.log_vars.detach())

    def forward(self, losses: Tensor) -> Tensor:
        losses = _check_losses(losses, self.num_tasks)
        s = self.log_vars.to(losses.dtype)
        return (torch.exp(-s) * losses + s).sum()


class DWA:
    """Dynamic Weight Average (Liu, Johns & Davison, 2019, arXiv:1803.10704); ``temperature`` T = 2 in the paper.

    ``dwa(losses)`` returns Σ_k λ_k L_k with this epoch's weights and adds the (detached) losses to the epoch's
    running sum; ``dwa.step()`` closes the epoch (its average joins the two-epoch history)."""

    def __init__(self, num_tasks: int, temperature: float = 2.0) -> None:
        self.num_tasks = check_num_tasks(num_tasks)
        temperature = float(temperature)
        if not temperature > 0.0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        k = self.num_tasks
        self.loss_sum = torch.zeros(k, dtype=torch.float64)
        self.batches = torch.zeros((), dtype=torch.int64)
        self.history = torch.zeros(2, k, dtype=torch.float64)  # epoch averages: [t−2, t−1]
        self.epochs = torch.zeros((), dtype=torch.int64)

    def weights(self) -> Tensor:
        k = self.num_tasks
        if int(self.epochs) < 2:
            return torch.ones(k, dtype=torch.float64)
        ratio = self.history[1] / self.history[0]
        return k * torch.softmax(ratio / self.temperature, dim=0)

    def __call__(self, losses: Tensor) -> Tensor:
        losses = _check_losses(losses, self.num_tasks)
        w = self.weights().to(device=losses.device, dtype=losses.dtype)
        self.loss_sum += losses.detach().to(torch.float64).cpu()
        self.batches += 1
        return (w * losses).sum()

    def step(self) -> None:
        """End of an epoch: its average loss enters the history."""
        if int(self.batches) == 0:
            raise RuntimeError("DWA.step() called with no losses seen in this epoch")
        self.history = torch.stack([self.history[1], self.loss_sum / self.batches.to(torch.float64)])
        self.loss_sum = torch.zeros_like(self.loss_sum)
        self.batches = torch.zeros_like(self.batches)
        self.epochs += 1

    def state_dict(self) -> dict[str, Tensor]:
        return {
            "loss_sum": self.loss_sum.clone(),
            "batches": self.batches.clone(),
            "history": self.history.clone(),
            "epochs": self.epochs.clone(),
        }

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if state["history"].shape != (2, self.num_tasks):
            raise ValueError(f"state is for {state['history'].shape[1]} tasks, this DWA has {self.num_tasks}")
        self.loss_sum = state["loss_sum"].clone()
        self.batches = state["batches"].clone()
        self.history = state["history"].clone()
        self.epochs = state["epochs"].clone()
