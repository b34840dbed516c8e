"""AdaHessian invariants: Newton-like convergence on a diagonal quadratic, parity with the paper's reference where
the probes matter, delayed Hessian updates, spatial averaging of conv kernels, the create_graph requirement,
exact resume between two Hessian refreshes, fp32 state for bf16 parameters."""

from __future__ import annotations

import pytest
import torch

from optimlab.optim.adahessian import AdaHessian
from tests import _second_order as S
from tests import optim_db as DB
from tests.reference.adahessian import adahessian as reference

HP = DB.test_hparams("adahessian")


def test_newton_like_on_a_diagonal_quadratic():
    """β1 = β2 = 0, k = 1, eps = 0, lr = 1: the step is g/|diag H| = x − x*, exact in one step (Rademacher
    probes give the diagonal of a diagonal Hessian exactly)."""
    h = torch.logspace(-2, 3, 8, dtype=torch.float64)
    x_star = torch.linspace(-2, 2, 8, dtype=torch.float64)
    x = torch.zeros(8, dtype=torch.float64, requires_grad=True)
    opt = AdaHessian([x], lr=1.0, betas=(0.0, 0.0), eps=0.0, hessian_power=1.0)
    errors = []
    for _ in range(3):

        def closure():
            opt.zero_grad()
            loss = 0.5 * (h * (x - x_star) ** 2).sum()
            loss.backward(create_graph=True)
            return loss

        opt.step(closure)
        errors.append((x.detach() - x_star).abs().max().item())
    assert errors[0] < 1e-12 and max(errors) < 1e-12, errors


@pytest.mark.parametrize("extra", [{}, {"hessian_distribution": "gaussian", "update_period": 3}])
def test_matches_the_reference_on_a_problem_with_cross_terms(extra):
    hp = {**HP, **extra}
    params0 = S.mlp_params()
    ref_params, ref_states = S.reference_run(reference, params0, hp, 7)
    params = [p.clone().requires_grad_(True) for p in params0]
    opt = S.run(S.make(AdaHessian, params, **hp), params, 7)
    S.assert_matches_reference(opt, params, ref_params, ref_states)


def test_hessian_ema_advances_only_at_refresh_steps():
    params = [p.requires_grad_(True) for p in S.mlp_params()]
    opt = S.make(AdaHessian, params, **{**HP, "update_period": 3})
    seen = []
    for t in range(7):
        S.run(opt, params, 1, start=t)
        seen.append(opt.state[params[0]]["exp_hessian_diag_sq"].clone())
    changed = [not torch.equal(a, b) for a, b in zip(seen, seen[1:])]  # steps 2..7
    assert changed == [False, False, True, False, False, True]  # refreshes at steps 1, 4, 7


def _conv_problem(dtype=torch.float64):
    g = torch.Generator().manual_seed(3)
    w = (0.3 * torch.randn(4, 2, 3, 3, generator=g, dtype=torch.float64)).to(dtype).requires_grad_(True)
    x = torch.randn(5, 2, 6, 6, generator=g, dtype=torch.float64).to(dtype)
    return w, (lambda: (torch.nn.functional.conv2d(x, w).tanh() ** 2).mean())


@pytest.mark.parametrize("spatial_average", [True, False])
def test_spatial_averaging_of_conv_kernels(spatial_average):
    w, loss_fn = _conv_problem()
    opt = AdaHessian([w], spatial_average=spatial_average)

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward(create_graph=True)
        return loss

    opt.step(closure)
    v = opt.state[w]["exp_hessian_diag_sq"]
    per_kernel = v.flatten(2)
    constant = torch.equal(per_kernel, per_kernel[..., :1].expand_as(per_kernel))
    assert constant == spatial_average
    assert (v > 0).all()


def test_without_create_graph_raises_a_clear_error():
    params = [p.requires_grad_(True) for p in S.mlp_params()]
    opt = S.make(AdaHessian, params, **HP)
    with pytest.raises(RuntimeError, match="create_graph=True"):
        S.run(opt, params, 1, create_graph=False)


def test_step_requires_a_closure():
    p = torch.ones(3, requires_grad=True)
    p.grad = torch.ones(3)
    with pytest.raises(RuntimeError, match="closure"):
        AdaHessian([p]).step()


def test_exact_resume_between_two_hessian_refreshes():
    """Refreshes at steps 1, 4, 7 (update_period=3); the checkpoint is taken after step 5 and the probes of step
    7 must be the ones the uninterrupted run draws."""
    hp = {**HP, "update_period": 3, "hessian_distribution": "gaussian"}
    straight = S.assert_exact_resume(lambda ps: S.make(AdaHessian, ps, **hp), S.mlp_params(torch.float32), 5, 4)
    # the probes matter on this problem: another seed gives another trajectory
    other = [p.clone().requires_grad_(True) for p in S.mlp_params(torch.float32)]
    S.run(S.make(AdaHessian, other, seed=1, **hp), other, 9)
    assert not all(torch.equal(a, b) for a, b in zip(straight, other))


def test_graph_is_released_after_the_step():
    params = [p.requires_grad_(True) for p in S.mlp_params()]
    opt = S.run(S.make(AdaHessian, params, **HP), params, 1)
    assert all(p.grad.grad_fn is None and not p.grad.requires_grad for p in params)
    assert opt.state[params[0]]["step"] == 1


def test_bf16_conv_kernel_keeps_fp32_state_and_improves():
    w, loss_fn = _conv_problem(torch.bfloat16)
    opt = AdaHessian([w], lr=0.05)
    before = loss_fn().item()

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        loss.backward(create_graph=True)
        return loss

    for _ in range(10):
        opt.step(closure)
    assert w.dtype == torch.bfloat16
    assert all(v.dtype == torch.float32 for k, v in opt.state[w].items() if k != "step")
    assert loss_fn().item() < before


@pytest.mark.parametrize("policy", ["skip", "raise"])
def test_a_non_finite_gradient_leaves_that_parameter_and_its_curvature_alone(policy):
    a = torch.tensor([0.5, -1.0], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([2.0, 1.0], dtype=torch.float64, requires_grad=True)
    opt = AdaHessian([a, b], nonfinite=policy)

    def closure():
        opt.zero_grad()
        loss = (a**4).sum() + (a[0] * a[1]) + (b * torch.tensor([float("nan"), 1.0], dtype=torch.float64)).sum()
        loss.backward(create_graph=True)
        return loss

    if policy == "raise":
        with pytest.raises(FloatingPointError):
            opt.step(closure)
        return
    loss = opt.step(closure)
    assert torch.isnan(loss)
    assert torch.equal(b.detach(), torch.tensor([2.0, 1.0], dtype=torch.float64))
    assert opt.state[b]["step"] == 0 and not opt.state[b]["exp_hessian_diag_sq"].any()
    assert opt.param_groups[0]["nonfinite_skips"] == 1
    assert torch.isfinite(a).all() and (opt.state[a]["exp_hessian_diag_sq"] > 0).all()
