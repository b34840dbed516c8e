"""OASIS invariants: the step size on a diagonal quadratic (η_k = 1/2 once D is exact), robustness to the initial
step size (the paper's "no learning-rate tuning"), parity with the paper's Algorithm 1 where the probes matter in
both Lipschitz modes, the second closure call at w_{k−1} leaves parameters and gradients as they were, the
create_graph requirement, exact resume."""

from __future__ import annotations

import math

import pytest
import torch

from optimlab.optim.oasis import OASIS
from tests import _harness as H
from tests import _second_order as S
from tests import optim_db as DB
from tests.reference.oasis import oasis as reference

HP = DB.test_hparams("oasis")


def _quadratic(h, x_star, x, opt, steps):
    etas = []
    for _ in range(steps):

        def closure():
            opt.zero_grad()
            loss = 0.5 * (h * (x - x_star) ** 2).sum()
            loss.backward(create_graph=True)
            return loss

        opt.step(closure)
        etas.append(float(opt.state[x]["eta"]))
    return etas


def test_step_size_is_one_half_on_a_diagonal_quadratic():
    """With D = diag(A) exactly (Rademacher probes are exact on a diagonal Hessian), ‖Δw‖_D / (2‖AΔw‖*_D) = 1/2:
    η_1 = 1/2 (θ_0 = ∞), then η stays 1/2, θ = 1, and the error halves every step."""
    h = torch.logspace(-1, 2, 6, dtype=torch.float64)
    x_star = torch.linspace(-1, 1, 6, dtype=torch.float64)
    x = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    opt = OASIS([x], eta0=0.01)
    etas = _quadratic(h, x_star, x, opt, 30)
    assert etas[0] == 0.01
    for eta in etas[1:]:
        assert abs(eta - 0.5) < 1e-12
    assert float(opt.state[x]["theta"]) == pytest.approx(1.0, abs=1e-12)
    assert (x.detach() - x_star).abs().max() < 1e-7


@pytest.mark.parametrize("eta0", [1e-6, 1e-3, 1.0, 10.0])
def test_converges_without_tuning_the_initial_step(eta0):
    """η grows by at most √(1 + θ) per step and is capped by the local Lipschitz estimate: any η0 works."""
    f, x_star = H.quadratic_problem(dim=10, cond=100.0)
    x = torch.zeros_like(x_star, requires_grad=True)
    opt = OASIS([x], eta0=eta0, lipschitz="previous_gradient")
    for _ in range(120):

        def closure():
            opt.zero_grad()
            loss = f(x)
            loss.backward(create_graph=True)
            return loss

        opt.step(closure)
    assert (x.detach() - x_star).abs().max() < 1e-6


@pytest.mark.parametrize("lipschitz", ["same_batch", "previous_gradient"])
def test_matches_the_reference_on_a_problem_with_cross_terms(lipschitz):
    hp = {**HP, "lipschitz": lipschitz}
    params0 = S.mlp_params()
    ref_params, ref_states = S.reference_run(reference, params0, hp, 5)
    params = [p.clone().requires_grad_(True) for p in params0]
    opt = S.run(S.make(OASIS, params, **hp), params, 5)
    S.assert_matches_reference(opt, params, ref_params, ref_states)


def test_same_batch_pass_restores_parameters_and_gradients():
    """After the step the gradients are those at w_k (of the first closure call), detached, and the only
    parameter change is the OASIS update itself (parity above); the closure was called twice."""
    params = [p.requires_grad_(True) for p in S.mlp_params()]
    opt = S.make(OASIS, params, **HP)
    S.run(opt, params, 2)
    calls = []
    w = [p.detach().clone() for p in params]

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = S.mlp_loss(params, 2)
        loss.backward(create_graph=True)
        return loss

    leaves = [p.clone().requires_grad_(True) for p in w]
    expected = torch.autograd.grad(S.mlp_loss(leaves, 2), leaves)
    opt.step(closure)
    assert len(calls) == 2
    for p, g in zip(params, expected):
        torch.testing.assert_close(p.grad, g, rtol=1e-12, atol=1e-14)
        assert p.grad.grad_fn is None


def test_without_create_graph_raises_a_clear_error():
    params = [p.requires_grad_(True) for p in S.mlp_params()]
    with pytest.raises(RuntimeError, match="create_graph=True"):
        S.run(S.make(OASIS, params, **HP), params, 1, create_graph=False)


@pytest.mark.parametrize("lipschitz", ["same_batch", "previous_gradient"])
def test_exact_resume(lipschitz):
    hp = {**HP, "lipschitz": lipschitz}
    S.assert_exact_resume(lambda ps: S.make(OASIS, ps, **hp), S.mlp_params(torch.float32), 4, 3)


def test_step_size_state_is_per_group_and_finite():
    params = [p.requires_grad_(True) for p in S.mlp_params()]
    opt = S.run(S.make(OASIS, params, **HP), params, 6)
    for group in opt.param_groups:
        etas = {float(opt.state[p]["eta"]) for p in group["params"]}
        assert len(etas) == 1 and all(math.isfinite(e) and e > 0 for e in etas)


def test_a_group_whose_gradients_are_all_non_finite_is_skipped():
    a = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([2.0, 1.0], dtype=torch.float64, requires_grad=True)
    opt = OASIS([{"params": [a]}, {"params": [b]}])

    def closure():
        opt.zero_grad()
        loss = (a**4).sum() + a[0] * a[1] + (b * torch.tensor([float("nan"), 1.0], dtype=torch.float64)).sum()
        loss.backward(create_graph=True)
        return loss

    for _ in range(3):
        opt.step(closure)
    assert torch.equal(b.detach(), torch.tensor([2.0, 1.0], dtype=torch.float64))
    assert opt.param_groups[1]["nonfinite_skips"] == 3 and torch.isfinite(a).all()


@pytest.mark.parametrize("lipschitz", ["same_batch", "previous_gradient"])
def test_a_gradient_jump_beyond_fp32_range_keeps_a_positive_finite_step_size(lipschitz):
    """fp32 gradients that jump by 1e20 (a diverging run) square to inf in fp32; the step-size estimate is taken in
    float64, so η stays positive and finite and the next step does not divide by zero (it used to)."""
    x = torch.ones(4, requires_grad=True)
    opt = OASIS([x], lr=1.0, lipschitz=lipschitz)
    for scale in (1.0, 1e20, 1e20):

        def closure(scale=scale):
            opt.zero_grad()
            loss = 0.5 * scale * (x**2).sum()
            loss.backward(create_graph=True)
            return loss

        opt.step(closure)
        eta = float(opt.state[x]["eta"])
        assert math.isfinite(eta) and eta > 0


def test_the_growth_bound_stops_at_the_largest_fp32_step_size_while_the_gradient_is_zero():
    """With ∇F = 0 only √(1 + θ)·η bounds η (×1.618 a step): after ~190 steps it leaves fp32's range. It used to
    raise "value cannot be converted to type float without overflow" (a benchmark run of a dead ReLU CNN)."""
    x = torch.ones(4, requires_grad=True)
    opt = OASIS([x], lipschitz="previous_gradient")

    def closure():
        opt.zero_grad()
        loss = 0.0 * (x**2).sum()  # zero gradient, with a graph for the Hessian-vector products
        loss.backward(create_graph=True)
        return loss

    etas = []
    for _ in range(200):
        opt.step(closure)
        etas.append(float(opt.state[x]["eta"]))
    biggest = torch.finfo(torch.float32).max
    assert etas[100] < etas[101] < biggest  # still growing
    assert etas[-1] == biggest and float(opt.state[x]["theta"]) == 1.0  # stopped at the cap, θ = η/η_prev
    assert torch.equal(x.detach(), torch.ones(4))  # a zero gradient moves nothing
