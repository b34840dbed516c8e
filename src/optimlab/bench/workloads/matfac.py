"""W12 ``deep_matfac``: deep (3-factor) linear matrix factorization from a small initialization.

Fit W₃W₂W₁ ≈ M for M = U diag(logspace(0, −κ, 64)) Vᵀ (64×64, random orthogonal U, V), full batch, loss and
metric ‖W₃W₂W₁ − M‖²_F / ‖M‖²_F. Small initialization puts the start near a saddle (the product is ~0): plain
gradient methods sit on a plateau and then learn singular values one by one (Saxe, McClelland & Ganguli 2014,
*Exact solutions to the nonlinear dynamics of learning in deep linear networks*; Arora, Cohen, Hu & Luo 2019,
*Implicit Regularization in Deep Matrix Factorization*), which stresses matrix-aware optimizers (Muon, Shampoo,
SOAP) and balancedness.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from ._base import Budget, ParamModule, Task, Workload, random_rotation


@functools.lru_cache(maxsize=2)
def target_matrix(n: int, kappa: float, seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    u, v = random_rotation(n, rng), random_rotation(n, rng)
    return torch.tensor((u * np.logspace(0.0, -kappa, n)[None, :]) @ v.T, dtype=torch.float32)


class DeepMatFac(Workload):
    id = "deep_matfac"
    title = "Deep matrix factorization (3 × 64×64)"
    stresses = "matrix-aware optimizers; saddle escape from small init; balancedness"
    data_source = "generated: M = U diag(logspace(0, −3, 64)) Vᵀ, 64×64"
    model_desc = "W₃W₂W₁, each 64×64 (~12k parameters), init N(0, 0.01²)"
    metric = "‖W₃W₂W₁ − M‖² / ‖M‖²"
    higher_is_better = False
    metric_scale = "log"
    target = 2e-6
    target_kind = "precision"
    provisional = False
    batch_size = None
    budget = Budget(step_hint=3000, max_steps=4500, eval_every=150)
    explosion_factor = 1e4
    n, depth, kappa, init_scale = 64, 3, 3.0, 1e-2

    def data_arrays(self, smoke: bool = False):
        return {"M": target_matrix(self.n, self.kappa, self.data_seed)}

    def _build(self, seed: int, smoke: bool, device: torch.device) -> Task:
        m_target = target_matrix(self.n, self.kappa, self.data_seed).to(device)
        norm = float((m_target**2).sum())
        factors = {f"w{i + 1}": torch.randn(self.n, self.n) * self.init_scale for i in range(self.depth)}
        model = ParamModule(**factors)
        names = list(factors)

        def product(m):
            out = getattr(m, names[0])
            for name in names[1:]:
                out = getattr(m, name) @ out
            return out

        def loss_fn(m, _batch):
            return ((product(m) - m_target) ** 2).sum() / norm

        def eval_fn(m):
            return float(((product(m).double() - m_target.double()) ** 2).sum() / norm)

        return Task(model, lambda: None, loss_fn, eval_fn, {n: "matrix_hidden" for n in names})
