"""W11 ``heavytail_linreg``: streaming linear regression with heavy-tailed label noise and outlier batches.

x ~ N(0, Σ) with Σ^{1/2} = R diag(s) Rᵀ, s = logspace(0, −1, 100) (condition number 100 in Σ), R a random
rotation; y = xᵀw* + ε with ε Student-t (ν = 1.5, infinite variance) scaled by 0.1, and on 1% of the steps the
whole batch's noise is multiplied by 100. Squared loss, fresh samples every step, w₀ = 0. The metric is the
noise-free relative parameter error ‖w − w*‖² / ‖w*‖². Stresses clipping, sign methods and normalization
(Zhang et al. 2020, *Why are Adaptive Methods Good for Attention Models?*).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ._base import Budget, ParamModule, Task, Workload, generator, random_rotation


@functools.lru_cache(maxsize=2)
def _problem(dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    rot = random_rotation(dim, rng)
    sqrt_cov = (rot * np.logspace(0.0, -1.0, dim)[None, :]) @ rot.T
    w_star = rng.standard_normal(dim)
    return torch.tensor(sqrt_cov, dtype=torch.float32), torch.tensor(w_star, dtype=torch.float32)


class HeavyTailLinReg(Workload):
    id = "heavytail_linreg"
    title = "Linear regression with heavy-tailed noise"
    stresses = "heavy-tailed gradient noise: clipping, sign methods, normalization"
    data_source = "generated, streaming: d = 100, cond(Σ) = 100, Student-t(ν = 1.5) noise, 1% outlier batches ×100"
    model_desc = "linear, w ∈ ℝ¹⁰⁰, w₀ = 0"
    metric = "‖w − w*‖² / ‖w*‖²"
    higher_is_better = False
    metric_scale = "log"
    target = 1e-2
    target_kind = "precision"
    provisional = False
    batch_size = 64
    budget = Budget(step_hint=2000, max_steps=3000, eval_every=100)
    # outlier batches multiply the loss by up to ~1e4 by design; only a blow-up far beyond that is divergence
    explosion_factor = 1e8
    dim, nu, noise_scale, outlier_rate, outlier_factor = 100, 1.5, 0.1, 0.01, 100.0

    def data_arrays(self, smoke: bool = False):
        sqrt_cov, w_star = _problem(self.dim, self.data_seed)
        return {"sqrt_cov": sqrt_cov, "w_star": w_star}

    def _build(self, seed: int, smoke: bool, device: torch.device) -> Task:
        sqrt_cov, w_star = (t.to(device) for t in _problem(self.dim, self.data_seed))
        model = ParamModule(w=torch.zeros(self.dim, device=device))
        gen = generator(seed, 1)
        np_rng = np.random.default_rng(seed + 77)  # Student-t draws (torch's sampler takes no generator)

        def next_batch():
            x = torch.randn(self.batch_size, self.dim, generator=gen) @ sqrt_cov.cpu()
            eps = torch.tensor(np_rng.standard_t(self.nu, self.batch_size), dtype=torch.float32)
            eps = eps * self.noise_scale
            if float(torch.rand((), generator=gen)) < self.outlier_rate:
                eps = eps * self.outlier_factor
            return x.to(device), (x @ w_star.cpu() + eps).to(device)

        def loss_fn(m, batch):
            x, y = batch
            return 0.5 * ((x @ m.w - y) ** 2).mean()

        def eval_fn(m):
            return float(((m.w - w_star) ** 2).sum() / (w_star**2).sum())

        return Task(model, next_batch, loss_fn, eval_fn, {"w": "vector"})
