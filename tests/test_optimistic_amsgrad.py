"""Optimistic AMSGrad: a hand-computed trajectory and properties of the RMPE gradient predictor."""

from __future__ import annotations

import math

import pytest
import torch

from optimlab.optim.optimistic_amsgrad import OptimisticAMSGrad, rmpe_
from tests.reference.optimistic_amsgrad import rmpe


def test_last_gradient_predictor_on_a_constant_gradient_follows_the_hand_computed_sequence():
    """f(w) = cᵀw: g_t = c for all t. With m_1 = 0 the only prediction error is at t = 1, so v̂_t = (1 - β2)c²
    throughout; θ_t = (1 - β1^t)c; w_{t+½} = w_1 - η/D Σ_{s≤t} θ_s and w_{t+1} = w_{t+½} - η/D (β1 θ_{t-1} +
    (1 - β1)c) with D = √((1 - β2)c²) + eps."""
    lr, beta1, beta2, eps = 0.1, 0.9, 0.99, 1e-8
    c = [0.5, -2.0, 3.0]
    w1 = [1.0, 0.0, -1.0]
    w = torch.tensor(w1, dtype=torch.float64, requires_grad=True)
    opt = OptimisticAMSGrad([w], lr=lr, betas=(beta1, beta2), eps=eps, predictor="last")
    cost = torch.tensor(c, dtype=torch.float64)
    half = list(w1)
    theta_prev = [0.0] * 3
    for t in range(1, 9):
        opt.zero_grad()
        (cost * w).sum().backward()
        opt.step()
        expected_w, expected_half = [], []
        for i, ci in enumerate(c):
            d = math.sqrt((1 - beta2) * ci * ci) + eps
            theta = (1 - beta1**t) * ci
            half[i] -= lr * theta / d
            expected_half.append(half[i])
            expected_w.append(half[i] - lr * (beta1 * theta_prev[i] + (1 - beta1) * ci) / d)
            theta_prev[i] = theta
        state = opt.state[w]
        torch.testing.assert_close(w.detach(), torch.tensor(expected_w, dtype=torch.float64), rtol=1e-13, atol=1e-13)
        torch.testing.assert_close(state["half_iterate"], torch.tensor(expected_half, dtype=torch.float64))
        torch.testing.assert_close(state["max_exp_avg_sq"], (1 - beta2) * cost**2)
        torch.testing.assert_close(state["predicted_grad"], cost)


def _affine_sequence(r: int, dim: int = 7, seed: int = 0):
    """x_0..x_r with x_{k+1} - x* = A (x_k - x*), A diagonal with r - 1 distinct eigenvalues (a minimal
    polynomial of degree r - 1: the r differences are linearly dependent)."""
    gen = torch.Generator().manual_seed(seed)
    eig = torch.linspace(-0.6, 0.8, r - 1, dtype=torch.float64)
    a = eig[torch.arange(dim) % (r - 1)]
    x_star = torch.randn(dim, generator=gen, dtype=torch.float64)
    x = x_star + torch.randn(dim, generator=gen, dtype=torch.float64)
    xs = [x]
    for _ in range(r):
        xs.append(x_star + a * (xs[-1] - x_star))
    return torch.stack(xs), x_star


@pytest.mark.parametrize("r", [2, 3, 5])
def test_extrapolation_recovers_the_limit_of_a_linearly_converging_sequence(r):
    """RMPE (the paper's Algorithm 3) from r differences is exact, up to its regularization, on a linear
    recurrence whose minimal polynomial has degree < r: the guess is the fixed point, not the next term."""
    history, x_star = _affine_sequence(r)
    torch.testing.assert_close(rmpe_(history, 1e-12), x_star, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(rmpe(list(history), 1e-12), x_star, rtol=1e-6, atol=1e-6)


def test_extrapolation_of_a_constant_sequence_is_that_constant_and_is_scale_equivariant():
    x = torch.tensor([[1.5, -2.0], [0.25, 3.0]], dtype=torch.float64)
    history = torch.stack([x] * 4)
    torch.testing.assert_close(rmpe_(history, 1e-3), x)
    seq, _ = _affine_sequence(3)
    # λ is relative to the differences' scale: rescaling every gradient rescales the guess (loss-scale safe)
    torch.testing.assert_close(rmpe_(seq * 1e-6, 1e-3), rmpe_(seq, 1e-3) * 1e-6, rtol=1e-10, atol=0)
    # the weights c sum to 1: adding a constant to every point adds it to the guess
    torch.testing.assert_close(rmpe_(seq + 5.0, 1e-3), rmpe_(seq, 1e-3) + 5.0, rtol=1e-10, atol=1e-12)


def test_warm_up_uses_the_last_gradient_then_the_extrapolation():
    """Until span + 1 gradients are stored the guess is the last gradient; from then on it is RMPE over the
    stored gradients (oldest first)."""
    span = 2
    w = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = OptimisticAMSGrad([w], lr=0.1, span=span)
    gen = torch.Generator().manual_seed(3)
    for t in range(1, 6):
        w.grad = torch.randn(4, generator=gen, dtype=torch.float64)
        opt.step()
        state = opt.state[w]
        assert torch.equal(state["grad_history"][-1], w.grad)
        if t <= span:
            assert torch.equal(state["predicted_grad"], w.grad)
        else:
            torch.testing.assert_close(state["predicted_grad"], rmpe(list(state["grad_history"]), 1e-3))


def test_state_is_plain_tensors_of_fixed_shape():
    w = torch.zeros(3, 2, requires_grad=True)
    opt = OptimisticAMSGrad([w], span=4)
    w.grad = torch.ones(3, 2)
    opt.step()
    state = opt.state[w]
    assert state["grad_history"].shape == (5, 3, 2)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert set(state) == {
        "step",
        "exp_avg",
        "exp_avg_sq",
        "max_exp_avg_sq",
        "half_iterate",
        "predicted_grad",
        "grad_history",
    }
    last = OptimisticAMSGrad([w], predictor="last")
    last.step()
    assert "grad_history" not in last.state[w]
