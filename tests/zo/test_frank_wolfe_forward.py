"""Zeroth-order Frank–Wolfe (parity, LMOs, feasibility, resume) and forward gradients (parity, unbiasedness)."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from optimlab import zo
from tests.reference.zo_frank_wolfe import lmo as reference_lmo
from tests.reference.zo_frank_wolfe import zo_frank_wolfe

CONSTRAINTS = ["l1", "l2", "linf", "simplex"]


def _problem(d: int = 8):
    g = torch.Generator().manual_seed(0)
    target = 2 * torch.randn(d, generator=g, dtype=torch.float64)
    _problem.target = target
    return lambda x: 0.5 * ((x - target) ** 2).sum()


def _start(constraint: str, d: int = 8) -> torch.Tensor:
    x = torch.zeros(d, dtype=torch.float64)
    if constraint == "simplex":
        x[0] = 1.0
    return x


@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_lmo_matches_brute_force(constraint: str) -> None:
    g = torch.Generator().manual_seed(1)
    for _ in range(5):
        grad = torch.randn(7, generator=g, dtype=torch.float64)
        v = zo.LMOS[constraint](grad, 1.5)
        torch.testing.assert_close(v, reference_lmo(grad, constraint, 1.5))
        assert zo.in_set(v, constraint, 1.5)


@pytest.mark.parametrize("constraint", CONSTRAINTS)
def test_zo_frank_wolfe_matches_reference_and_stays_feasible(constraint: str) -> None:
    f = _problem()
    x = nn.Parameter(_start(constraint))
    opt = zo.ZOFrankWolfe([x], constraint=constraint, radius=1.0, seed=3)
    ref = zo_frank_wolfe(_start(constraint), f, steps=30, constraint=constraint, radius=1.0, seed=3)
    for _ in range(30):
        opt.step(lambda: f(x))
        assert zo.in_set(x.detach(), constraint, 1.0)
    torch.testing.assert_close(x.detach(), ref[-1], atol=1e-9, rtol=0)
    assert all(zo.in_set(r, constraint, 1.0) for r in ref)


def test_zo_frank_wolfe_improves_and_resumes_exactly() -> None:
    f = _problem()
    x = nn.Parameter(_start("l1"))
    opt = zo.ZOFrankWolfe([x], constraint="l1", radius=1.0, seed=0)
    start_loss = float(f(x.detach()))
    for _ in range(200):
        opt.step(lambda: f(x))
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    saved, saved_x = torch.load(buf, weights_only=True), x.detach().clone()
    for _ in range(50):
        opt.step(lambda: f(x))
    y = nn.Parameter(saved_x)
    opt2 = zo.ZOFrankWolfe([y], constraint="l1", radius=1.0, seed=42)
    opt2.load_state_dict(saved)
    for _ in range(50):
        opt2.step(lambda: f(y))
    assert torch.equal(x, y)
    # the optimum over the ℓ1 ball: soft-thresholding of the target at the τ that puts it on the sphere
    target = _problem.target
    lo, hi = 0.0, float(target.abs().max())
    for _ in range(200):
        tau = (lo + hi) / 2
        lo, hi = (tau, hi) if (target.abs() - tau).clamp(min=0).sum() > 1.0 else (lo, tau)
    best = float(f(torch.sign(target) * (target.abs() - hi).clamp(min=0)))
    assert float(f(x.detach())) - best < 0.1 * (start_loss - best)


def test_zo_frank_wolfe_validation() -> None:
    x = nn.Parameter(torch.zeros(3))
    for kwargs, field in [
        ({"constraint": "l3"}, "constraint"),
        ({"radius": 0.0}, "radius"),
        ({"offset": 1.0}, "gamma_scale"),
        ({"rho_scale": -1.0}, "rho_scale"),
    ]:
        with pytest.raises(ValueError, match=field):
            zo.ZOFrankWolfe([x], **kwargs)
    with pytest.raises(ValueError, match="feasible"):
        zo.ZOFrankWolfe([nn.Parameter(torch.ones(3))], constraint="l1", radius=1.0)
    with pytest.raises(RuntimeError, match="closure"):
        zo.ZOFrankWolfe([x]).step()


def _mlp_problem():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()
    x = torch.randn(20, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (20,))
    return model, x, y


def _true_grad(model, x, y):
    loss = nn.functional.cross_entropy(model(x), y)
    return torch.autograd.grad(loss, list(model.parameters()))


def test_forward_gradient_parity_with_autograd() -> None:
    model, x, y = _mlp_problem()
    params, fn = zo.module_loss(model, lambda out: nn.functional.cross_entropy(out, y), x)
    grads = _true_grad(model, x, y)
    g = torch.Generator().manual_seed(0)
    guesses = [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]
    blocks = [[0, 1], [2, 3]]
    res = zo.forward_grad_(params, fn, guesses, blocks=blocks)
    for block, d in zip(blocks, res.derivatives.tolist()):
        dot = sum(float((grads[i] * guesses[i]).sum()) for i in block)
        assert math.isclose(d, dot, rel_tol=1e-10, abs_tol=1e-12)
        sq = sum(float(guesses[i].square().sum()) for i in block)
        for i in block:
            torch.testing.assert_close(params[i].grad, guesses[i] * dot / sq)  # projection on the guess
    # the exact gradient as the guess gives the exact gradient back
    zo.forward_grad_(params, fn, list(grads))
    for p, gr in zip(params, grads):
        torch.testing.assert_close(p.grad, gr)


def test_random_forward_gradient_is_unbiased() -> None:
    """E[(∇f·v) v] = ∇f: fixed-seed Monte Carlo over 200 draws, 5 standard errors per coordinate."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2).double()
    x, y = torch.randn(10, 3, dtype=torch.float64), torch.randint(0, 2, (10,))
    params, fn = zo.module_loss(model, lambda out: nn.functional.cross_entropy(out, y), x)
    grads = torch.cat([g.reshape(-1) for g in _true_grad(model, x, y)])
    gen = torch.Generator().manual_seed(0)
    samples = []
    for _ in range(200):
        zo.forward_grad_(params, fn, generator=gen)
        samples.append(torch.cat([p.grad.reshape(-1) for p in params]))
    s = torch.stack(samples)
    mean, se = s.mean(0), s.std(0) / math.sqrt(len(samples))
    assert ((mean - grads).abs() <= 5 * se + 1e-12).all()
    assert (se < 0.5 * grads.abs().max()).all()


def test_forward_grad_validation() -> None:
    model, x, y = _mlp_problem()
    params, fn = zo.module_loss(model, lambda out: nn.functional.cross_entropy(out, y), x)
    with pytest.raises(ValueError, match="blocks"):
        zo.forward_grad_(params, fn, blocks=[[0, 1]])
    with pytest.raises(ValueError, match="guesses"):
        zo.forward_grad_(params, fn, guesses=[torch.ones(1)])
