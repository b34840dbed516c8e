"""Small shared pieces of the experiments: data, models, optimizer stepping, curve utilities."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .. import registry, training


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)


def digits() -> tuple[Tensor, Tensor]:
    """scikit-learn's bundled ``load_digits``: 1,797 8×8 images as (1797, 64) float32 in [0, 1], labels 0–9."""
    x, y = _digits()
    return torch.from_numpy(x.copy()), torch.from_numpy(y.copy())


def split_indices(n: int, fractions: Sequence[float], seed: int) -> list[Tensor]:
    """A random partition of range(n) into parts of the given fractions (the last part takes the rest)."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed)))
    out, start = [], 0
    for i, f in enumerate(fractions):
        end = n if i == len(fractions) - 1 else start + int(round(f * n))
        out.append(perm[start:end])
        start = end
    return out


def mlp(sizes: Sequence[int], activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Fully connected net with ``activation`` between the layers (none after the last)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def make_optimizer(name: str, params, **hp) -> torch.optim.Optimizer:
    """A registered optimizer with the paper's defaults overridden by ``hp``."""
    return registry.create(name, params, **hp)


def train_step(opt: torch.optim.Optimizer, loss_fn: Callable[[], Tensor | tuple[Tensor, Tensor]]) -> float:
    """One step of ``opt`` on ``loss_fn()`` through :func:`optimlab.training.train_step`; the loss before the step."""
    return float(training.train_step(opt, loss_fn))


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, y: Tensor) -> float:
    return float((model(x).argmax(-1) == y).float().mean())


def first_reach(steps: Sequence[float], values: Sequence[float], target: float, below: bool = True) -> float:
    """The first step at which ``values`` reaches ``target`` (≤ when ``below``), or ``inf``."""
    for s, v in zip(steps, values):
        if math.isfinite(v) and (v <= target if below else v >= target):
            return float(s)
    return math.inf


def censored_log_ratio(a: float, b: float, cap: float) -> float:
    """log(a / b) with unreached targets (inf) replaced by ``cap`` (e.g. twice the step budget)."""
    a = cap if not math.isfinite(a) else a
    b = cap if not math.isfinite(b) else b
    return math.log(max(a, 1.0) / max(b, 1.0))


def teacher_stream(seed: int, d: int = 20, classes: int = 10, noise: float = 0.2):
    """Samples from a fixed random teacher MLP (argmax labels), with ``noise`` of the labels replaced by random
    classes — so a batch has something to memorize beyond what generalizes."""
    g = torch.Generator().manual_seed(50_000 + seed)
    w1 = torch.randn(d, 64, generator=g) / math.sqrt(d)
    w2 = torch.randn(64, classes, generator=g) / 8.0

    def sample(n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, d, generator=gen)
        y = (torch.tanh(x @ w1) @ w2).argmax(1)
        flip = torch.rand(n, generator=gen) < noise
        return x, torch.where(flip, torch.randint(0, classes, (n,), generator=gen), y)

    return sample
