"""Small shared pieces of the experiments: data, models, optimizer stepping, curve utilities."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from .. import registry
from ..optim._second_order import closure_backward, create_graph_warning_silenced


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


def needs_closure(opt: torch.optim.Optimizer) -> bool:
    return bool(getattr(opt, "requires_closure", False))


def needs_hvp(opt: torch.optim.Optimizer) -> bool:
    return bool(getattr(opt, "requires_hvp", False)) or bool(getattr(getattr(opt, "base", None), "requires_hvp", False))


def needs_logits(opt: torch.optim.Optimizer) -> bool:
    """Whether the optimizer's closure must return ``(loss, logits)`` (the registry's ``closure_returns_logits``:
    Sophia-G's Gauss–Newton–Bartlett estimator)."""
    if getattr(opt, "closure_returns_logits", False):
        return True
    return any(s.closure_returns_logits and type(opt) is s.cls for s in registry.specs())


def train_step(opt: torch.optim.Optimizer, loss_fn: Callable[[], Tensor | tuple[Tensor, Tensor]]) -> float:
    """One optimizer step on ``loss_fn()`` (zero_grad, backward, step; through a closure where the optimizer needs
    one, with ``create_graph`` where it needs Hessian-vector products). Returns the loss before the step.

    ``loss_fn`` may return ``(loss, logits)``: optimizers that estimate curvature from the logits
    (:func:`needs_logits`) then get them from the closure, with the forward graph kept (``retain_graph``) on the
    steps where their ``refresh_due()`` says they are used; every other optimizer ignores the logits."""
    create_graph = needs_hvp(opt)
    feed_logits = needs_logits(opt)

    def closure():
        opt.zero_grad()
        out = loss_fn()
        loss, logits = out if isinstance(out, tuple) else (out, None)
        if feed_logits and logits is None:
            raise TypeError(f"{type(opt).__name__} needs the logits: loss_fn must return (loss, logits)")
        closure_backward(opt, loss, create_graph=create_graph, logits=feed_logits)
        return (loss, logits) if feed_logits else loss

    with create_graph_warning_silenced():  # the graph kept by create_graph is released right below
        if needs_closure(opt) or feed_logits:
            loss = opt.step(closure)
        else:
            loss = closure()
            opt.step()
    if create_graph:
        opt.zero_grad(set_to_none=True)  # drop the gradients' graph (a reference cycle with the parameters)
    return float(loss.detach())


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
