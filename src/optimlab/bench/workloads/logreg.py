"""W3 ``logreg_illcond``: L2-regularized logistic regression on ill-conditioned features, optimum known.

Features x = R (s ⊙ z), z ~ N(0, I₂₀₀), scales s = logspace(0, −2.5, 200), R a random rotation; labels
y ∈ {−1, +1} drawn from a logistic model with a Gaussian weight vector. The objective is
f(w) = mean log(1 + exp(−y xᵀw)) + λ/2 ‖w‖², λ = 1e-4, from w₀ = 0. The optimum f* is computed once per process
by damped Newton's method in float64 (200 unknowns: exact to machine precision in a few iterations). The metric
is the suboptimality f(w) − f* over the full data set, evaluated in float64.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F

from ._base import Budget, ParamModule, Task, Workload, epoch_batches, generator, iterator_fn, random_rotation

LAMBDA = 1e-4


@functools.lru_cache(maxsize=4)
def _data(n: int, d: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, float]:
    rng = np.random.default_rng(seed)
    scales = np.logspace(0.0, -2.5, d)
    rot = random_rotation(d, rng)
    x = (rng.standard_normal((n, d)) * scales[None, :]) @ rot.T
    w_true = rot @ rng.standard_normal(d) * 2.0
    p = 1.0 / (1.0 + np.exp(-(x @ w_true)))
    y = np.where(rng.uniform(size=n) < p, 1.0, -1.0)
    xt, yt = torch.tensor(x), torch.tensor(y)
    return xt, yt, _optimum(xt, yt)


def objective(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.softplus(-y * (x @ w)).mean() + 0.5 * LAMBDA * (w @ w)


def _optimum(x: torch.Tensor, y: torch.Tensor) -> float:
    """min_w f(w) by Newton's method with backtracking, float64 (converges to machine precision)."""
    n, d = x.shape
    w = torch.zeros(d, dtype=torch.float64)
    f = float(objective(w, x, y))
    for _ in range(100):
        m = y * (x @ w)
        s = torch.sigmoid(-m)
        grad = -(x * (y * s)[:, None]).mean(0) + LAMBDA * w
        if float(grad.norm()) < 1e-13:
            break
        hess = (x * (s * (1 - s))[:, None]).T @ x / n + LAMBDA * torch.eye(d, dtype=torch.float64)
        step = torch.linalg.solve(hess, grad)
        t = 1.0
        while True:
            f_new = float(objective(w - t * step, x, y))
            if f_new <= f - 1e-4 * t * float(grad @ step) or t < 1e-10:
                break
            t *= 0.5
        w, f = w - t * step, f_new
    return f


class LogRegIllCond(Workload):
    id = "logreg_illcond"
    title = "Ill-conditioned L2 logistic regression"
    stresses = "convex, smooth, minibatch noise; optimum known"
    data_source = "generated: n = 20k, d = 200, feature scales logspace(0, −2.5), rotated; logistic labels"
    model_desc = "linear, 200 parameters, w₀ = 0, λ = 1e-4"
    metric = "f(w) − f*"
    higher_is_better = False
    metric_scale = "log"
    target = 1e-3
    target_kind = "precision"
    provisional = False
    batch_size = 256
    budget = Budget(step_hint=9750, max_steps=15000, eval_every=375)
    n, dim = 20_000, 200

    def _sizes(self, smoke: bool) -> tuple[int, int]:
        return (512, self.dim) if smoke else (self.n, self.dim)

    def data_arrays(self, smoke: bool = False):
        x, y, f_star = _data(*self._sizes(smoke), self.data_seed)
        return {"x": x, "y": y, "f_star": f_star}

    def _build(self, seed: int, smoke: bool, device: torch.device) -> Task:
        x64, y64, f_star = _data(*self._sizes(smoke), self.data_seed)
        x64, y64 = x64.to(device), y64.to(device)
        x, y = x64.float(), y64.float()
        model = ParamModule(w=torch.zeros(x.shape[1], device=device))
        batches = epoch_batches(len(y), self.batch_size, generator(seed, 1))

        def loss_fn(m, idx):
            return objective(m.w, x[idx], y[idx])

        def eval_fn(m):
            return float(objective(m.w.double(), x64, y64)) - f_star

        return Task(model, iterator_fn(batches), loss_fn, eval_fn, {"w": "vector"})
