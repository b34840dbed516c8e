"""``mtl_regression``: multi-target regression with tasks of very different scales that compete for a shared trunk.

The synthetic multi-task problem of GradNorm (Chen et al., 2018, *GradNorm: Gradient Normalization for Adaptive
Loss Balancing in Deep Multitask Networks*, arXiv:1711.02257, §4), scaled down for a CPU: task i's targets are
y_i = σ_i tanh((B + ε_i) x) + noise, with B a shared random matrix, ε_i a task-specific perturbation and scales σ_i
spread over a factor 30. The model is a shared tanh MLP trunk with one linear head per task; each task's loss is
its mean squared error. Summing the losses (equal weighting) lets the largest-scale task dominate the trunk's
gradient, while the metric — the mean over tasks of the test MSE relative to the task's target power — weighs
every task alike: what gradient aggregators and loss weightings (UPGrad, MGDA, PCGrad, GradNorm, …) are for.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import nn

from ._base import Budget, epoch_batches, generator, mark_head
from ._multitask import MultiTaskTask, MultiTaskWorkload


@functools.lru_cache(maxsize=2)
def make_data(
    n: int, d_in: int, d_out: int, scales: tuple[float, ...], perturbation: float, noise: float, seed: int
) -> dict[str, torch.Tensor]:
    """Train/test inputs ``x`` (n, d_in) and targets ``y`` (n, tasks, d_out) of the GradNorm synthetic problem;
    a fifth of the samples is held out for testing."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal((d_out, d_in)) * (2.0 / np.sqrt(d_in))
    x = rng.standard_normal((n, d_in))
    ys = []
    for sigma in scales:
        own = shared + rng.standard_normal((d_out, d_in)) * (perturbation * 2.0 / np.sqrt(d_in))
        clean = sigma * np.tanh(x @ own.T)
        ys.append(clean + sigma * noise * rng.standard_normal(clean.shape))
    y = np.stack(ys, axis=1)
    n_test = n // 5
    as_tensor = functools.partial(torch.tensor, dtype=torch.float32)
    return {
        "x": as_tensor(x[n_test:]),
        "y": as_tensor(y[n_test:]),
        "x_test": as_tensor(x[:n_test]),
        "y_test": as_tensor(y[:n_test]),
    }


class MultiTaskNet(nn.Module):
    """A shared tanh MLP trunk and one linear head per task; ``forward`` returns (batch, tasks, d_out)."""

    def __init__(self, d_in: int, width: int, d_out: int, tasks: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(d_in, width), nn.Tanh(), nn.Linear(width, width), nn.Tanh())
        self.heads = nn.ModuleList(nn.Linear(width, d_out) for _ in range(tasks))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.trunk(x)
        return torch.stack([head(h) for head in self.heads], dim=1)


class MultiTargetRegression(MultiTaskWorkload):
    id = "mtl_regression"
    title = "Multi-task regression, tasks of different scales (GradNorm synthetic)"
    stresses = "multi-task: conflicting tasks of 30× different scales share a trunk (aggregators, weightings)"
    data_source = "generated: y_i = σ_i tanh((B + ε_i) x) + noise, σ = 1, 3, 10, 30; 4096 train / 1024 test"
    model_desc = "shared MLP 32-64-64 tanh + 4 linear heads (64 → 8) (~8.4k parameters)"
    metric = "mean_i test MSE_i / E[y_i²]"
    higher_is_better = False
    metric_scale = "log"
    target = 0.112
    target_kind = "calibrated"
    provisional = False
    batch_size = 64
    budget = Budget(step_hint=2000, max_steps=3000, eval_every=100)
    num_tasks = 4
    n, d_in, d_out, width = 5120, 32, 8, 64
    scales = (1.0, 3.0, 10.0, 30.0)
    perturbation, noise = 0.5, 0.05

    def _data(self) -> dict[str, torch.Tensor]:
        return make_data(self.n, self.d_in, self.d_out, self.scales, self.perturbation, self.noise, self.data_seed)

    def data_arrays(self, smoke: bool = False):
        return self._data()

    def _build(self, seed: int, smoke: bool, device: torch.device) -> MultiTaskTask:
        data = {k: v.to(device) for k, v in self._data().items()}
        x, y = data["x"], data["y"]
        power = (data["y_test"] ** 2).mean(dim=(0, 2))  # E[y_i²] per task, on the test set
        model = MultiTaskNet(self.d_in, self.width, self.d_out, self.num_tasks)
        batches = epoch_batches(x.shape[0], self.batch_size, generator(seed, 1))

        def next_batch():
            idx = next(batches).to(device)
            return x[idx], y[idx]

        def task_losses(m, batch):
            xb, yb = batch
            return ((m(xb) - yb) ** 2).mean(dim=(0, 2))

        def eval_fn(m):
            mse = ((m(data["x_test"]) - data["y_test"]) ** 2).mean(dim=(0, 2))
            return float((mse / power).mean())

        return MultiTaskTask.create(
            model,
            next_batch,
            task_losses,
            eval_fn,
            task_names=tuple(f"sigma={s:g}" for s in self.scales),
            shared_prefix="trunk.",
            last_shared_prefix="trunk.2.",
            param_types=mark_head(model, "heads"),
        )
