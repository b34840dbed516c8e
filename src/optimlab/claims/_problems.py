"""Shared problems of the optimizer-speed claims: a :class:`Problem` (parameters, a training-step loss, a
metric), steps to a target and learning-rate tuning by time to target, and the small tasks (2-D Rosenbrock, noisy
quadratic, logistic regression, digits MLP and CNN) several claims train on."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..bench.workloads.rosenbrock import extended_rosenbrock
from . import _common as U


@dataclass
class Problem:
    """One instance of a task: parameters, a training-step loss, an evaluation metric (lower is better)."""

    params: list[torch.Tensor]
    step_loss: Callable[[int], torch.Tensor]  # loss of training step t (a minibatch, or the full objective)
    evaluate: Callable[[], float]  # the metric compared with the target


def steps_to_target(
    problem: Problem, opt_name: str, hp: dict, target: float, budget: int, every: int
) -> tuple[float, list[tuple[int, float]]]:
    """Train until ``evaluate() ≤ target`` (checked every ``every`` steps) or ``budget`` steps; returns
    (the first step at which the target was met or inf, the evaluation curve). A non-finite metric stops the run."""
    opt = U.make_optimizer(opt_name, problem.params, **hp)
    curve = [(0, problem.evaluate())]
    if curve[-1][1] <= target:
        return 0.0, curve
    for t in range(1, budget + 1):
        U.train_step(opt, lambda t=t: problem.step_loss(t))
        if t % every == 0 or t == budget:
            v = problem.evaluate()
            curve.append((t, v))
            if not math.isfinite(v):
                break
            if v <= target:
                return float(t), curve
    return math.inf, curve


def tune_and_measure(
    make: Callable[[int], Problem],
    opt_name: str,
    lrs: list[float],
    target: float,
    budget: int,
    every: int,
    seeds: list[int],
    tune_seed: int,
    extra: dict | None = None,
) -> dict:
    """Pick the learning rate with the fewest steps to target on a separate tuning seed (ties: lower final metric),
    then measure steps to target on the evaluation seeds."""
    extra = extra or {}

    def key(lr: float) -> tuple[float, float]:
        t, curve = steps_to_target(make(tune_seed), opt_name, {"lr": lr, **extra}, target, budget, every)
        last = curve[-1][1]
        return (t, last if math.isfinite(last) else math.inf)

    scores = {lr: key(lr) for lr in lrs}
    best = min(lrs, key=lambda lr: scores[lr])
    runs = [steps_to_target(make(s), opt_name, {"lr": best, **extra}, target, budget, every) for s in seeds]
    return {
        "lr": best,
        "steps": [r[0] for r in runs],
        "curves": [r[1] for r in runs],
        "tuning": {str(k): v[0] for k, v in scores.items()},
    }


def rosenbrock(seed: int) -> Problem:
    """The 2-D Rosenbrock function (the benchmark's ``rosenbrock50`` objective with d = 2) from (−1.5, 2) plus a
    seeded N(0, 0.05²) perturbation."""
    g = torch.Generator().manual_seed(seed)
    z = torch.tensor([-1.5, 2.0], dtype=torch.float64) + 0.05 * torch.randn(2, generator=g, dtype=torch.float64)
    z.requires_grad_(True)

    def f() -> torch.Tensor:
        return extended_rosenbrock(z)

    return Problem([z], lambda t: f(), lambda: float(f().detach()))


def noisy_quadratic(
    seed: int, d: int = 100, sigma: float = 0.05, log_cond: float = 2.0, rotate: bool = False
) -> Problem:
    """f(x) = ½ (Qx)ᵀ diag(h) (Qx) with h log-spaced in [10^−log_cond, 1] (condition number 10^log_cond), Q = I or
    (``rotate``) a random orthogonal matrix, x₀ ~ N(0, I); the step's gradient carries additive noise ξ ~ N(0, σ²I)."""
    g = torch.Generator().manual_seed(seed)
    h = torch.logspace(-log_cond, 0, d, dtype=torch.float64)
    x = torch.randn(d, generator=g, dtype=torch.float64).requires_grad_(True)
    noise_gen = torch.Generator().manual_seed(10_000 + seed)
    q = None
    if rotate:
        a = torch.randn(d, d, generator=torch.Generator().manual_seed(110_000 + seed), dtype=torch.float64)
        q = torch.linalg.qr(a)[0]

    def rotated(z: torch.Tensor) -> torch.Tensor:
        return z if q is None else q @ z

    def step_loss(t: int) -> torch.Tensor:
        y = rotated(x)
        if sigma == 0:
            return 0.5 * (h * y * y).sum()
        xi = sigma * torch.randn(d, generator=noise_gen, dtype=torch.float64)
        return 0.5 * (h * y * y).sum() + (xi * x).sum()  # gradient Hx + ξ

    return Problem([x], step_loss, lambda: float(0.5 * (h * rotated(x.detach()) ** 2).sum()))


def _logistic_data(seed: int, n: int = 1000, d: int = 100):
    g = torch.Generator().manual_seed(20_000 + seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w = torch.randn(d, generator=g, dtype=torch.float64) * (3 / math.sqrt(d))
    y = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(x @ w)).double()
    return x, y


def _logistic_objective(x, y, w, lam=1e-3):
    return nn.functional.binary_cross_entropy_with_logits(x @ w, y) + 0.5 * lam * (w * w).sum()


_LOGISTIC_OPT: dict[int, float] = {}


def _logistic_optimum(seed: int) -> float:
    if seed not in _LOGISTIC_OPT:
        from scipy.optimize import minimize

        x, y = _logistic_data(seed)

        def fg(w_np):
            w = torch.tensor(w_np, requires_grad=True)
            f = _logistic_objective(x, y, w)
            (gr,) = torch.autograd.grad(f, w)
            return float(f.detach()), gr.numpy()

        res = minimize(fg, np.zeros(x.shape[1]), jac=True, method="L-BFGS-B", options={"gtol": 1e-12, "ftol": 1e-15})
        _LOGISTIC_OPT[seed] = float(res.fun)
    return _LOGISTIC_OPT[seed]


def logistic(seed: int) -> Problem:
    x, y = _logistic_data(seed)
    f_star = _logistic_optimum(seed)
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    batches = torch.Generator().manual_seed(30_000 + seed)

    def step_loss(t: int) -> torch.Tensor:
        b = torch.randint(0, x.shape[0], (64,), generator=batches)
        return _logistic_objective(x[b], y[b], w)

    def evaluate() -> float:
        with torch.no_grad():
            return float(_logistic_objective(x, y, w)) - f_star

    return Problem([w], step_loss, evaluate)


def digits_mlp(seed: int) -> Problem:
    x, y = U.digits()
    tr, _ = U.split_indices(len(x), (0.75, 0.25), 0)
    x, y = x[tr], y[tr]
    torch.manual_seed(seed)
    model = U.mlp([64, 64, 10], nn.ReLU)
    batches = torch.Generator().manual_seed(40_000 + seed)

    def step_loss(t: int) -> torch.Tensor:
        b = torch.randint(0, x.shape[0], (64,), generator=batches)
        return nn.functional.cross_entropy(model(x[b]), y[b])

    def evaluate() -> float:
        with torch.no_grad():
            return float(nn.functional.cross_entropy(model(x), y))

    return Problem(list(model.parameters()), step_loss, evaluate)


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(32 * 4 * 4, 10),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.view(-1, 1, 8, 8))
