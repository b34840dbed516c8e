"""SPSA / MeZO: parity with the plain reference, known answers on a quadratic, memory discipline, exact resume."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from optimlab import training, zo
from tests.reference.zo_spsa import direction, spsa_estimate, zo_sgd


def _quadratic(d: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    h = a @ a.T / d + torch.eye(d, dtype=torch.float64)
    b = torch.randn(d, generator=g, dtype=torch.float64)
    return h, b


def _two_params(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    w = nn.Parameter(torch.randn(3, 4, generator=g, dtype=torch.float64))
    b = nn.Parameter(torch.randn(4, generator=g, dtype=torch.float64))
    x = torch.randn(16, 3, generator=g, dtype=torch.float64)
    y = torch.randn(16, 4, generator=g, dtype=torch.float64)

    def loss(ps):
        return ((torch.tanh(x @ ps[0] + ps[1]) - y) ** 2).mean()

    return [w, b], loss


@pytest.mark.parametrize("two_sided", [True, False])
@pytest.mark.parametrize("n", [1, 3])
def test_zosgd_matches_reference_two_groups(two_sided: bool, n: int) -> None:
    params, loss = _two_params()
    start = [p.detach().clone() for p in params]
    groups = [{"params": [params[0]], "weight_decay": 0.1}, {"params": [params[1]], "lr": 0.05}]
    opt = zo.ZOSGD(groups, lr=0.1, eps=1e-3, n=n, two_sided=two_sided, seed=7)
    for _ in range(20):
        opt.step(lambda: loss(params))
    ref = zo_sgd(
        start, loss, steps=20, lr=[0.1, 0.05], eps=1e-3, n=n, two_sided=two_sided, weight_decay=[0.1, 0.0], seed=7
    )
    for p, r in zip(params, ref):
        torch.testing.assert_close(p.detach(), r, atol=1e-10, rtol=0)  # in-place ±εz restores θ up to rounding
    assert not torch.equal(params[0].detach(), start[0])


@pytest.mark.parametrize("two_sided", [True, False])
def test_spsa_grad_matches_reference_and_feeds_any_optimizer(two_sided: bool) -> None:
    params, loss = _two_params()
    start = [p.detach().clone() for p in params]
    res = zo.spsa_grad_(params, lambda: loss(params), [11, 12, 13], eps=1e-3, two_sided=two_sided)
    grad, coefs = spsa_estimate(start, loss, [11, 12, 13], eps=1e-3, two_sided=two_sided)
    torch.testing.assert_close(res.coefficients, torch.tensor(coefs, dtype=torch.float64), atol=1e-9, rtol=0)
    for p, g, s in zip(params, grad, start):
        torch.testing.assert_close(p.grad, g, atol=1e-9, rtol=0)
        torch.testing.assert_close(p.detach(), s, atol=1e-12, rtol=0)  # parameters restored
    opt = torch.optim.AdamW(params, lr=1e-2)
    opt.step()  # any optimizer consumes the estimate
    assert all(not torch.equal(p.detach(), s) for p, s in zip(params, start))


def test_two_sided_coefficient_is_the_directional_derivative_on_a_quadratic() -> None:
    h, b = _quadratic()
    x = nn.Parameter(torch.randn(6, dtype=torch.float64))

    def f():
        return 0.5 * x @ h @ x - b @ x

    seeds = list(range(5))
    coefs, _ = zo.spsa_coefficients([x], f, seeds, eps=0.5, two_sided=True)  # exact for any ε on a quadratic
    grad = (h @ x - b).detach()
    expected = torch.stack([grad @ direction([x], s)[0] for s in seeds])
    torch.testing.assert_close(coefs, expected, atol=1e-10, rtol=0)
    one, _ = zo.spsa_coefficients([x], f, seeds, eps=0.5, two_sided=False)  # one-sided: + ε/2 zᵀHz
    curvature = torch.stack([0.5 * 0.5 * direction([x], s)[0] @ h @ direction([x], s)[0] for s in seeds])
    torch.testing.assert_close(one, expected + curvature, atol=1e-10, rtol=0)


def test_spsa_expectation_is_the_gradient_monte_carlo() -> None:
    """E[(∇f·z) z] = ∇f for z ~ N(0, I): fixed-seed Monte Carlo over 4,000 directions, tolerance 5 standard errors
    per coordinate (the standard error computed from the same samples)."""
    h, b = _quadratic(d=4)
    x = nn.Parameter(torch.tensor([0.3, -1.0, 0.5, 2.0], dtype=torch.float64))
    seeds = list(range(4000))
    coefs, _ = zo.spsa_coefficients([x], lambda: 0.5 * x @ h @ x - b @ x, seeds, eps=1e-2)
    samples = torch.stack([c * direction([x], s)[0] for c, s in zip(coefs.tolist(), seeds)])
    mean, se = samples.mean(0), samples.std(0) / math.sqrt(len(seeds))
    grad = (h @ x - b).detach()
    assert ((mean - grad).abs() <= 5 * se).all(), (mean, grad, se)
    assert (se < 0.1 * grad.norm()).all()  # the test has power: the tolerance is a tenth of ‖∇f‖


def test_zosgd_keeps_no_copy_and_converges() -> None:
    h, b = _quadratic()
    x = nn.Parameter(torch.zeros(6, dtype=torch.float64))
    opt = zo.ZOSGD([x], lr=0.05, eps=1e-4, n=2, seed=0)
    for _ in range(600):
        opt.step(lambda: 0.5 * x @ h @ x - b @ x)
    xstar = torch.linalg.solve(h, b)
    assert (x.detach() - xstar).norm() < 1e-2 * xstar.norm()
    state = opt.state_dict()["state"][0]
    assert set(state) == {"step", "seed_stream", "pending_seeds", "pending_coefficients"}  # no parameter-sized state
    assert x.grad is None


def test_estimate_then_step_equals_step_with_closure() -> None:
    params, loss = _two_params()
    twin = [p.detach().clone().requires_grad_() for p in params]
    a = zo.ZOSGD(params, lr=0.1, n=2, seed=3)
    b = zo.ZOSGD(twin, lr=0.1, n=2, seed=3)
    for _ in range(3):
        a.step(lambda: loss(params))
        b.estimate(lambda: loss(twin))
        b.step()
    for p, q in zip(params, twin):
        assert torch.equal(p, q)
    with pytest.raises(RuntimeError, match="closure"):
        b.step()


def _save_load(sd: dict) -> dict:
    buf = io.BytesIO()
    torch.save(sd, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def test_zosgd_exact_resume() -> None:
    params, loss = _two_params()
    start = [p.detach().clone() for p in params]
    opt = zo.ZOSGD(params, lr=0.1, n=2, weight_decay=0.01, seed=5)
    for _ in range(10):
        opt.step(lambda: loss(params))
    saved_params = [p.detach().clone() for p in params]
    saved = _save_load(opt.state_dict())
    for _ in range(10):
        opt.step(lambda: loss(params))
    resumed = [nn.Parameter(p.clone()) for p in saved_params]
    opt2 = zo.ZOSGD(resumed, lr=0.1, n=2, weight_decay=0.01, seed=999)  # the stream comes from the checkpoint
    opt2.load_state_dict(saved)
    for _ in range(10):
        opt2.step(lambda: loss(resumed))
    for p, q in zip(params, resumed):
        assert torch.equal(p, q)
    assert opt2.state_dict()["state"][0]["seed_stream"].dtype == torch.uint8
    assert not torch.equal(start[0], params[0].detach())


def test_spsa_estimator_resume_and_validation() -> None:
    params, loss = _two_params()
    est = zo.SPSA(params, n=2, seed=4)
    est.estimate_(lambda: loss(params))
    saved = _save_load(est.state_dict())
    first = est.estimate_(lambda: loss(params)).seeds
    est2 = zo.SPSA(params, n=2, seed=0)
    est2.load_state_dict(saved)
    assert est2.estimate_(lambda: loss(params)).seeds == first
    for kwargs, field in [({"eps": 0.0}, "eps"), ({"n": 0}, "n"), ({"seed": -1}, "seed")]:
        with pytest.raises(ValueError, match=field):
            zo.SPSA(params, **kwargs)
    for kwargs, field in [({"lr": -1.0}, "lr"), ({"eps": -1.0}, "eps"), ({"weight_decay": -0.1}, "weight_decay")]:
        with pytest.raises(ValueError, match=field):
            zo.ZOSGD(params, **kwargs)


def test_capabilities_and_bf16() -> None:
    assert training.capabilities(zo.ZOSGD).closure
    w = nn.Parameter(torch.ones(8, dtype=torch.bfloat16))
    opt = zo.ZOSGD([w], lr=0.05, eps=1e-2, seed=0)
    before = float((w.detach().float() ** 2).sum())
    for _ in range(50):
        opt.step(lambda: (w.float() ** 2).sum())
    assert w.dtype == torch.bfloat16 and float((w.detach().float() ** 2).sum()) < before
