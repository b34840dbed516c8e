"""Drivers shared by the generic test matrix: a stochastic objective, a two-group parameter set, and loops that
run an optimizer or a reference implementation on them."""

from __future__ import annotations

import importlib
import io
from collections.abc import Callable
from typing import Any

import torch

SHAPES = [(3,), (4, 5), (2, 3, 4), (1,), (6, 2)]
STEPS = 20


def load_reference(path: str) -> Callable:
    module_name, _, fn = path.partition(":")
    return getattr(importlib.import_module(module_name), fn)


def make_params(dtype=torch.float64, seed=0, shapes=SHAPES) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=torch.float64).to(dtype) for s in shapes]


def objective(params: list[torch.Tensor], t: int) -> torch.Tensor:
    """f_t(P) = Σ_i ½ Σ a_i (p_i − c_{t,i})² + 0.1 Σ sin(3 p_i): smooth, non-quadratic, different each step."""
    g = torch.Generator().manual_seed(1000 + t)
    total = 0.0
    for i, p in enumerate(params):
        gi = torch.Generator().manual_seed(i)
        a = torch.rand(p.shape, generator=gi, dtype=torch.float64) * 1.5 + 0.5
        c = torch.randn(p.shape, generator=gi, dtype=torch.float64) + 0.3 * torch.randn(
            p.shape, generator=g, dtype=torch.float64
        )
        a, c = a.to(p.dtype), c.to(p.dtype)
        total = total + (0.5 * a * (p - c) ** 2).sum() + 0.1 * torch.sin(3 * p).sum()
    return total


def split_groups(params: list[torch.Tensor], hparams: dict[str, Any]) -> list[dict[str, Any]]:
    """Two param groups; the second halves the learning rate (and any weight decay) of the first."""
    second = {}
    if "lr" in hparams:
        second["lr"] = hparams["lr"] * 0.5
    if hparams.get("weight_decay"):
        second["weight_decay"] = hparams["weight_decay"] * 0.5
    return [{"params": params[:2]}, {"params": params[2:], **second}]


def group_hparams(hparams: dict[str, Any], index: int) -> dict[str, Any]:
    if index == 0:
        return dict(hparams)
    out = dict(hparams)
    if "lr" in out:
        out["lr"] = out["lr"] * 0.5
    if out.get("weight_decay"):
        out["weight_decay"] = out["weight_decay"] * 0.5
    return out


def run_optimizer(make_opt: Callable, params: list[torch.Tensor], steps: int, start: int = 0, opt=None):
    """Run ``steps`` steps on ``objective``; returns the optimizer (created by ``make_opt(params)`` if None)."""
    opt = opt if opt is not None else make_opt(params)
    for t in range(start, start + steps):

        def closure(t=t):
            opt.zero_grad()
            loss = objective(params, t)
            loss.backward(create_graph=getattr(opt, "requires_hvp", False))
            return loss

        opt.step(closure)
    return opt


def train(opt, loss_fn: Callable[[], torch.Tensor], steps: int, scheduler=None) -> None:
    """``steps`` closure-driven steps of ``opt`` on ``loss_fn()``."""

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward(create_graph=getattr(opt, "requires_hvp", False))
        return loss

    for _ in range(steps):
        opt.step(closure)
        if scheduler is not None:
            scheduler.step()


def run_reference(ref: Callable, params: list[torch.Tensor], hparams: dict[str, Any], steps: int):
    """The reference on the same objective and groups; returns (params, states)."""
    params = [p.detach().clone() for p in params]
    states: list[dict] = [{} for _ in params]
    per_param = [group_hparams(hparams, 0 if i < 2 else 1) for i in range(len(params))]
    for t in range(steps):
        if getattr(ref, "whole_model", False):
            params, states = ref(params, lambda ps, t=t: objective(ps, t), states, per_param)
            continue
        leaves = [p.clone().requires_grad_(True) for p in params]
        grads = torch.autograd.grad(objective(leaves, t), leaves)
        for i, (p, g) in enumerate(zip(params, grads)):
            params[i], states[i] = ref(p, g, states[i], **per_param[i])
    return params, states


def roundtrip(state_dict: dict) -> dict:
    buf = io.BytesIO()
    torch.save(state_dict, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def rosenbrock(xy: torch.Tensor) -> torch.Tensor:
    x, y = xy[0], xy[1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def quadratic_problem(dim: int = 10, cond: float = 10.0):
    """f(x) = ½ (x − x*)ᵀ diag(h) (x − x*) with eigenvalues log-spaced in [1, cond]."""
    h = torch.logspace(0, torch.log10(torch.tensor(cond)).item(), dim, dtype=torch.float64)
    x_star = torch.linspace(-1, 1, dim, dtype=torch.float64)
    return (lambda x: 0.5 * (h * (x - x_star) ** 2).sum()), x_star
