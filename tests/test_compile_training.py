"""``torch.compile`` around a user's training: the whole step (forward, backward, ``opt.step()``) breaks the graph
no more often with optimlab.AdamW than with torch.optim.AdamW, and compiling ``opt.step`` or the whole training
step gives the eager parameters after 20 steps (≤ 1e-6). A few elementwise rules here (each compile costs
seconds); ``scripts/distributed_parity.py`` runs every elementwise rule for the note."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

import optimlab

STEPS = 20
CHEAP = ("adamw", "lion", "schedule_free")  # schedule_free: a wrapper whose own arithmetic is traced too


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 8))


def _batch(t: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(t)
    return torch.randn(8, 16, generator=g), torch.randn(8, 8, generator=g)


def _training_step(model: torch.nn.Module, opt) -> Callable:
    """The user's whole training step: forward, backward, ``opt.step()``."""

    def train_step(x, y):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    return train_step


def run(make_opt, mode: str, steps: int = STEPS) -> list[torch.Tensor]:
    """Train ``steps`` steps eagerly (``mode="eager"``), with ``torch.compile(opt.step)`` ("step") or with the
    whole training step compiled ("train_step"); return the parameters."""
    model = _model()
    opt = make_opt(model.parameters())
    train_step = _training_step(model, opt)
    step_fn = train_step
    if mode == "step":
        compiled_step = torch.compile(opt.step)

        def step_fn(x, y):
            opt.zero_grad()
            torch.nn.functional.mse_loss(model(x), y).backward()
            compiled_step()

    elif mode == "train_step":
        step_fn = torch.compile(train_step)
    for t in range(steps):
        step_fn(*_batch(t))
    return [p.detach().clone() for p in model.parameters()]


def graph_breaks(make_opt) -> int:
    """Graph breaks of ``torch.compile`` around a whole training step (``torch._dynamo.explain``), state created."""
    model = _model()
    opt = make_opt(model.parameters())
    train_step = _training_step(model, opt)
    train_step(*_batch(0))
    torch._dynamo.reset()
    return torch._dynamo.explain(train_step)(*_batch(1)).graph_break_count


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def test_no_more_graph_breaks_than_torch_adamw():
    ours = graph_breaks(lambda p: optimlab.AdamW(p, lr=1e-2))
    theirs = graph_breaks(lambda p: torch.optim.AdamW(p, lr=1e-2))
    assert ours <= theirs, f"optimlab.AdamW: {ours} graph breaks, torch.optim.AdamW: {theirs}"


@pytest.mark.parametrize("mode", ["step", "train_step"])
@pytest.mark.parametrize("name", CHEAP)
def test_compiled_training_equals_eager(name, mode):
    def make(p):
        return optimlab.create(name, p, lr=1e-2)

    eager = run(make, "eager")
    compiled = run(make, mode)
    delta = max(float((a - b).abs().max()) for a, b in zip(eager, compiled))
    assert delta <= 1e-6, f"{name} under compile({mode}): max |Δ| {delta:.3g} after {STEPS} steps"


def test_skips_under_compiled_training_are_counted():
    """The skip count is not read inside the user's graph; it is folded in by ``state_dict()``."""
    model = _model()
    opt = optimlab.AdamW(model.parameters(), lr=1e-2)

    @torch.compile
    def train_step(x, y):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        model[0].weight.grad.mul_(torch.where(x.sum() > -1e9, float("nan"), 1.0))
        opt.step()

    before = model[0].weight.detach().clone()
    train_step(*_batch(0))
    assert opt.state_dict()["param_groups"][0]["nonfinite_skips"] == 1
    assert torch.equal(model[0].weight, before)
