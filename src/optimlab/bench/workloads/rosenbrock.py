"""W2 ``rosenbrock50``: the extended Rosenbrock function in 50 dimensions, full batch.

f(x) = Σ_{i=1}^{25} [100 (x_{2i} − x_{2i−1}²)² + (1 − x_{2i−1})²], x₀ = (−1.2, 1, −1.2, 1, …); f* = 0 at
x = (1, …, 1). This is problem 21 of Moré, Garbow & Hillstrom (1981), *Testing Unconstrained Optimization
Software*: 25 decoupled copies of the classic curved valley, so curvature-aware methods should shine and
first-hit scoring matters (adaptive methods reach the target, then bounce). Deterministic: the seed changes
nothing, and every seed gives the same run.
"""

from __future__ import annotations

import torch

from ._base import Budget, ParamModule, Task, Workload


def extended_rosenbrock(x: torch.Tensor) -> torch.Tensor:
    odd, even = x[0::2], x[1::2]
    return (100.0 * (even - odd**2) ** 2 + (1.0 - odd) ** 2).sum()


class Rosenbrock50(Workload):
    id = "rosenbrock50"
    title = "Extended Rosenbrock (d=50)"
    stresses = "deterministic curved valley, non-convex; second-order advantage"
    data_source = "none (analytic); x₀ = (−1.2, 1, …)"
    model_desc = "x ∈ ℝ⁵⁰"
    metric = "f(x) (f* = 0)"
    higher_is_better = False
    metric_scale = "log"
    target = 1e-6
    target_kind = "precision"
    provisional = False
    batch_size = None
    budget = Budget(step_hint=10000, max_steps=15000, eval_every=250)
    explosion_factor = 1e6
    dim = 50

    def data_arrays(self, smoke: bool = False):
        return {"x0": self._x0()}

    def _x0(self) -> torch.Tensor:
        x0 = torch.ones(self.dim)
        x0[0::2] = -1.2
        return x0

    def _build(self, seed: int, smoke: bool, device: torch.device) -> Task:
        model = ParamModule(x=self._x0().to(device))

        def loss_fn(m, _batch):
            return extended_rosenbrock(m.x)

        def eval_fn(m):
            return float(extended_rosenbrock(m.x.double()))

        return Task(model, lambda: None, loss_fn, eval_fn, {"x": "vector"})
