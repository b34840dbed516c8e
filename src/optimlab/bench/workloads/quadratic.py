"""W1 ``quad_noisy``: an ill-conditioned stochastic quadratic with a noise floor (DeepOBS P1-like).

f(x) = E_ξ ½ (x − ξ)ᵀ H (x − ξ), ξ ~ N(0, σ² I): the minibatch gradient is H (x − ξ̄) with ξ̄ the mean of the
batch's minimiser noise. H = Q diag(λ) Qᵀ with 90 eigenvalues U[0, 1] and 10 eigenvalues U[30, 60] and a random
rotation Q (Schneider, Balles & Hennig 2019, DeepOBS problem P1, plus the rotation). The metric is the noise-free
objective ratio f(x)/f(x₀) with f(x) = ½ xᵀHx. A constant learning rate plateaus at a noise floor above the
target; a decaying step, averaging or a noise-aware method is needed to reach it. HVPs are exact (the loss is
quadratic), so curvature methods see the true Hessian.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ._base import Budget, ParamModule, Task, Workload, generator, random_rotation


@functools.lru_cache(maxsize=4)
def _problem(dim: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    n_big = dim // 10
    lam = np.concatenate([rng.uniform(0.0, 1.0, dim - n_big), rng.uniform(30.0, 60.0, n_big)])
    q = random_rotation(dim, rng)
    h = (q * lam[None, :]) @ q.T
    h = 0.5 * (h + h.T)
    x0 = rng.standard_normal(dim)
    return torch.tensor(h, dtype=torch.float32), torch.tensor(lam), torch.tensor(x0, dtype=torch.float32)


class QuadNoisy(Workload):
    id = "quad_noisy"
    title = "Noisy ill-conditioned quadratic (d=100)"
    stresses = "noise floor, ill-conditioning, schedules and averaging; exact HVPs"
    data_source = "generated: H = Q diag(90×U[0,1], 10×U[30,60]) Qᵀ, minimiser noise ξ ~ N(0, σ²I), σ = 3"
    model_desc = "x ∈ ℝ¹⁰⁰, x₀ ~ N(0, I) (fixed)"
    metric = "f(x)/f(x0) (noise-free)"
    higher_is_better = False
    metric_scale = "log"
    target = 1e-3
    target_kind = "precision"
    provisional = False
    batch_size = 32
    budget = Budget(step_hint=2600, max_steps=4000, eval_every=100)
    smoke_budget = Budget(step_hint=4, max_steps=4, eval_every=2)
    dim = 100
    noise = 3.0

    def data_arrays(self, smoke: bool = False):
        h, lam, x0 = _problem(self.dim, self.data_seed)
        return {"H": h, "x0": x0}

    def _build(self, seed: int, smoke: bool, device: torch.device) -> Task:
        h, _, x0 = _problem(self.dim, self.data_seed)
        h, x0 = h.to(device), x0.to(device)
        f0 = 0.5 * float(x0 @ h @ x0)
        model = ParamModule(x=x0)
        gen = generator(seed, 1)
        scale = self.noise / self.batch_size**0.5

        def next_batch():
            return (torch.randn(self.dim, generator=gen) * scale).to(device)

        def loss_fn(m, xi):
            r = m.x - xi
            return 0.5 * (r @ (h @ r))

        def eval_fn(m):
            x = m.x.double()
            return 0.5 * float(x @ (h.double() @ x)) / f0

        return Task(model, next_batch, loss_fn, eval_fn, {"x": "vector"})
