"""Lion and Lion-κ invariants: bounded steps, and the constrained problems they solve (Chen, Liu, Liang & Liu 2023,
arXiv:2310.05898): with decoupled weight decay λ, Lion-κ finds a stationary point of f(x) + κ*(λx)/λ.

* κ = ‖·‖₁ (Lion): min f subject to ‖x‖∞ ≤ 1/λ;
* κ = ‖·‖₂ (per tensor): min f subject to ‖x‖₂ ≤ 1/λ;
* κ = Σ Huber_δ: min f + (δλ/2)‖x‖² subject to ‖x‖∞ ≤ 1/λ.

The references are computed by projected gradient descent on a 20-d least-squares problem whose unconstrained
optimum has ‖x*‖∞ = 5, far outside the box for λ = 0.5.
"""

from __future__ import annotations

import math

import pytest
import torch

import optimlab
from optimlab.optim.lion import grad_kappa
from tests import _harness as H

LAM = 0.5
RADIUS = 1 / LAM


@pytest.fixture(scope="module")
def least_squares():
    d, n = 20, 40
    g = torch.Generator().manual_seed(0)
    A = torch.randn(n, d, generator=g, dtype=torch.float64) / math.sqrt(n)
    x_true = (torch.rand(d, generator=g, dtype=torch.float64) * 2 - 1) * 5
    x_true[0] = 5.0
    return A, A @ x_true, x_true  # consistent system: the unconstrained least-squares solution is x_true


def projected_gd(A, b, project, ridge=0.0, iters=4000):
    """min ½‖Ax − b‖² + ridge/2·‖x‖² over a convex set, by projected gradient descent with step 1/L."""
    H_ = A.T @ A + ridge * torch.eye(A.shape[1], dtype=A.dtype)
    c = A.T @ b
    step = 1 / torch.linalg.eigvalsh(H_).max()
    x = torch.zeros(A.shape[1], dtype=A.dtype)
    for _ in range(iters):
        x = project(x - step * (H_ @ x - c))
    return x


def box(x):
    return x.clamp(-RADIUS, RADIUS)


def ball(x):
    norm = x.norm()
    return x * (RADIUS / norm) if norm > RADIUS else x


def run_lion_kappa(A, b, kappa, steps=1200, lr0=0.05, **kw):
    """Full-batch Lion-κ with λ = 0.5 and a cosine-decayed lr; returns the final x and the largest
    ‖x_t‖∞ / ‖x_t‖₂ seen along the way."""
    x = torch.zeros(A.shape[1], dtype=torch.float64, requires_grad=True)
    opt = optimlab.create("lion_kappa", [x], kappa=kappa, lr=lr0, weight_decay=LAM, **kw)
    worst_inf = worst_l2 = 0.0
    for t in range(steps):
        opt.param_groups[0]["lr"] = lr0 * 0.5 * (1 + math.cos(math.pi * t / steps))
        with torch.no_grad():
            x.grad = A.T @ (A @ x - b)
        opt.step()
        worst_inf = max(worst_inf, x.detach().abs().max().item())
        worst_l2 = max(worst_l2, x.detach().norm().item())
    return x.detach(), worst_inf, worst_l2


def test_lion_step_is_bounded_per_coordinate():
    """|Δθ| = lr·|sign(c) + λθ| ≤ lr·(1 + λ|θ|) for every coordinate and step, whatever the gradient scale."""
    lr, wd = 1e-2, 0.3
    params = [p.requires_grad_(True) for p in H.make_params(torch.float64)]
    opt = optimlab.create("lion", params, lr=lr, weight_decay=wd)
    g = torch.Generator().manual_seed(1)
    for t in range(15):
        before = [p.detach().clone() for p in params]
        for p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=torch.float64) * 10.0 ** (t % 5 - 2)
        opt.step()
        for p, q in zip(params, before):
            step = (p.detach() - q).abs()
            assert (step <= lr * (1 + wd * q.abs()) * (1 + 1e-12)).all()
            assert (step >= lr * (1 - wd * q.abs()) * (1 - 1e-12)).all()  # sign(c) ≠ 0: a full-size step


def test_lion_solves_box_constrained_least_squares(least_squares):
    A, b, x_true = least_squares
    assert x_true.abs().max() == 5.0  # the unconstrained optimum is far outside ‖x‖∞ ≤ 1/λ = 2
    reference = projected_gd(A, b, box)
    x, worst_inf, _ = run_lion_kappa(A, b, "l1", lr0=0.05)
    assert worst_inf <= RADIUS * (1 + 1e-12), "an iterate left the box (it starts inside; lr·λ ≤ 1)"
    assert x.abs().max() <= RADIUS + 1e-3
    torch.testing.assert_close(x, reference, rtol=0, atol=2e-3)
    assert (reference.abs() > RADIUS - 1e-9).sum() >= 5  # the constraint is active: a real test of the claim


def test_lion_kappa_l2_solves_ball_constrained_least_squares(least_squares):
    A, b, _ = least_squares
    reference = projected_gd(A, b, ball)
    x, _, worst_l2 = run_lion_kappa(A, b, "l2", lr0=0.05)
    assert worst_l2 <= RADIUS * (1 + 1e-12)
    assert x.norm() <= RADIUS + 1e-3
    torch.testing.assert_close(x, reference, rtol=0, atol=2e-3)


def test_lion_kappa_huber_solves_box_constrained_ridge(least_squares):
    """κ = Σ Huber_δ: κ*(y) = (δ/2)‖y‖² + box indicator, so the solution is the box-constrained ridge solution."""
    A, b, _ = least_squares
    delta = 2.0
    reference = projected_gd(A, b, box, ridge=delta * LAM)
    without_ridge = projected_gd(A, b, box)
    assert (reference - without_ridge).abs().max() > 0.3  # the ridge term makes a measurable difference
    x, worst_inf, _ = run_lion_kappa(A, b, "huber", lr0=0.05, huber_delta=delta)
    assert worst_inf <= RADIUS * (1 + 1e-12)
    torch.testing.assert_close(x, reference, rtol=0, atol=2e-3)


def test_grad_kappa_maps():
    c = torch.tensor([[3.0, -4.0], [0.0, 0.5]], dtype=torch.float64)
    assert torch.equal(grad_kappa(c, "l1"), c.sign())
    torch.testing.assert_close(grad_kappa(c, "l2"), c / c.norm())
    assert torch.equal(grad_kappa(torch.zeros(3), "l2"), torch.zeros(3))  # subgradient 0 at 0, no NaN
    torch.testing.assert_close(grad_kappa(c, "huber", 1.0), c.clamp(-1, 1))
    torch.testing.assert_close(grad_kappa(c, "huber", 2.0), (c / 2).clamp(-1, 1))
    assert torch.equal(grad_kappa(c, "huber", 1e-12), c.sign())  # δ → 0 recovers Lion
    c_copy = c.clone()
    grad_kappa(c, "huber", 0.5)
    assert torch.equal(c, c_copy)


def test_lion_kappa_l1_is_lion():
    a = [p.requires_grad_(True) for p in H.make_params()]
    b = [p.detach().clone().requires_grad_(True) for p in a]
    hp = dict(lr=1e-2, betas=(0.8, 0.95), weight_decay=0.1)
    H.run_optimizer(lambda ps: optimlab.Lion(ps, **hp), a, 8)
    H.run_optimizer(lambda ps: optimlab.LionKappa(ps, kappa="l1", **hp), b, 8)
    for p, q in zip(a, b):
        assert torch.equal(p, q)


def test_lion_kappa_l2_first_step_with_zero_gradient_stays_finite():
    p = torch.ones(4, requires_grad=True)
    opt = optimlab.create("lion_kappa", [p], lr=0.1, weight_decay=0.0)
    p.grad = torch.zeros(4)
    opt.step()
    assert torch.equal(p.detach(), torch.ones(4))
