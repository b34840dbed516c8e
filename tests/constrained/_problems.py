"""Small problems shared by the constrained-learning tests (float64, deterministic, a few milliseconds a step)."""

from __future__ import annotations

import torch

from optimlab import constrained as C

N_SAMPLES, DIM, BATCH = 6, 5, 3


def data():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(8, DIM, generator=g, dtype=torch.float64)
    b = torch.randn(8, generator=g, dtype=torch.float64)
    c = torch.randn(2, DIM, generator=g, dtype=torch.float64)
    w = torch.randn(N_SAMPLES, DIM, generator=g, dtype=torch.float64)
    y = torch.randn(N_SAMPLES, generator=g, dtype=torch.float64)
    return a, b, c, w, y


def batch_indices(t: int) -> torch.Tensor:
    """A deterministic mini-batch of per-sample constraints at step t."""
    return torch.randperm(N_SAMPLES, generator=torch.Generator().manual_seed(100 + t))[:BATCH]


def spec(resilience=None):
    """(name, kind, size, per_sample, resilience) rows, as the reference takes them."""
    return [
        ("ineq", "inequality", 2, False, None),
        ("eq", "equality", 1, False, None),
        ("sample", "inequality", N_SAMPLES, True, resilience),
    ]


def constraints(resilience=None):
    return [
        C.Constraint(n, kind=k, size=s, per_sample=p, resilience=r, init=0.1 if k == "inequality" else 0.0)
        for n, k, s, p, r in spec(resilience)
    ]


def evaluate(x: torch.Tensor, t: int):
    """f = ½‖Ax − b‖²/8, C x ≤ 0.2, Σx = 1, per-sample (w_i·x − y_i)² ≤ 0.5 on a batch."""
    a, b, c, w, y = data()
    idx = batch_indices(t)
    f = 0.5 * ((a @ x - b) ** 2).mean()
    return f, {
        "ineq": (c @ x - 0.2, None),
        "eq": ((x.sum() - 1).reshape(1), None),
        "sample": ((w[idx] @ x - y[idx]) ** 2 - 0.5, idx),
    }


def closure_for(x: torch.nn.Parameter, counter: list[int]):
    """The PrimalDual closure of :func:`evaluate`; ``counter[0]`` is the step (advanced by the caller)."""

    def closure():
        f, obs = evaluate(x, counter[0])
        return f, {n: C.Violation(g, idx) for n, (g, idx) in obs.items()}

    return closure
