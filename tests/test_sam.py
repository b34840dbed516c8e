"""SAM-family invariants: the perturbation's size, its exact undoing, the two-call API, GradScaler, bases."""

from __future__ import annotations

import pytest
import torch

import optimlab
from optimlab.wrappers.sam import SAM


def _problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    x = torch.randn(32, 5, generator=g)
    y = torch.randint(0, 3, (32,), generator=g)
    return model, (lambda: torch.nn.functional.cross_entropy(model(x), y))


def _closure(opt, loss_fn, scaler=None):
    def closure():
        opt.zero_grad()
        loss = loss_fn()
        (scaler.scale(loss) if scaler is not None else loss).backward()
        return loss

    return closure


def _perturbation_after_first_pass(opt, loss_fn):
    opt.zero_grad()
    loss_fn().backward()
    grads = [p.grad.clone() for p in opt.param_groups[0]["params"]]
    return grads, opt.perturbation()


@pytest.mark.parametrize("rho", [0.01, 0.3])
def test_sam_perturbation_has_norm_rho_along_the_gradient(rho):
    model, loss_fn = _problem()
    opt = SAM(model.parameters(), rho=rho, lr=0.1)
    grads, pairs = _perturbation_after_first_pass(opt, loss_fn)
    eps = torch.cat([e.flatten() for _, e in pairs])
    g = torch.cat([g.flatten() for g in grads])
    torch.testing.assert_close(eps.norm(), torch.tensor(rho), rtol=1e-6, atol=0)
    torch.testing.assert_close(eps, rho * g / g.norm(), rtol=1e-5, atol=1e-8)


def test_asam_perturbation_has_norm_rho_in_its_adaptive_metric():
    model, loss_fn = _problem()
    opt = SAM(model.parameters(), rho=0.5, adaptive=True, eta=0.01, lr=0.1)
    _, pairs = _perturbation_after_first_pass(opt, loss_fn)
    scaled = torch.cat([(e / (p.abs() + 0.01)).flatten() for p, e in pairs])  # ‖T⁻¹ε‖ = ρ
    torch.testing.assert_close(scaled.norm(), torch.tensor(0.5), rtol=1e-5, atol=0)


def test_usam_perturbation_is_proportional_to_the_gradient():
    model, loss_fn = _problem()
    opt = SAM(model.parameters(), rho=0.2, normalize=False, lr=0.1)
    grads, pairs = _perturbation_after_first_pass(opt, loss_fn)
    for g, (_, e) in zip(grads, pairs):
        torch.testing.assert_close(e, 0.2 * g)


def test_step_equals_base_step_on_the_sam_gradient_bit_for_bit():
    model, loss_fn = _problem()
    twin, twin_loss = _problem()
    opt = SAM(model.parameters(), rho=0.1, lr=0.1, momentum=0.9)
    base = optimlab.create("sgd", twin.parameters(), lr=0.1, momentum=0.9)
    for _ in range(3):
        # the SAM gradient, computed by hand on the twin
        base.zero_grad()
        twin_loss().backward()
        grads = [p.grad for p in twin.parameters()]
        norm = torch.sqrt(sum((g.float() ** 2).sum() for g in grads))
        saved = [p.detach().clone() for p in twin.parameters()]
        with torch.no_grad():
            for p, g in zip(twin.parameters(), grads):
                p.add_(g * (0.1 / (norm + 1e-12)))
        base.zero_grad()
        twin_loss().backward()
        with torch.no_grad():
            for p, w in zip(twin.parameters(), saved):
                p.copy_(w)
        base.step()
        opt.step(_closure(opt, loss_fn))
        for p, q in zip(model.parameters(), twin.parameters()):
            assert torch.equal(p, q)
    assert all(not s for s in opt.state.values()), "no perturbation left in the state after the step"


def test_two_call_api_equals_closure_api():
    a, loss_a = _problem()
    b, loss_b = _problem()
    opt_a, opt_b = SAM(a.parameters(), lr=0.1, rho=0.05), SAM(b.parameters(), lr=0.1, rho=0.05)
    for _ in range(3):
        opt_a.step(_closure(opt_a, loss_a))
        opt_b.zero_grad()
        loss_b().backward()
        opt_b.first_step()
        loss_b().backward()
        opt_b.second_step()
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)


def test_missing_closure_error_points_to_the_two_call_api():
    model, _ = _problem()
    with pytest.raises(RuntimeError, match="first_step"):
        SAM(model.parameters(), lr=0.1).step()


def test_grad_scaler_gives_the_unscaled_result_and_unscales_once_per_pass():
    a, loss_a = _problem()
    b, loss_b = _problem()
    opt_a = SAM(a.parameters(), lr=0.1, rho=0.05, base="adamw")
    opt_b = SAM(b.parameters(), lr=0.1, rho=0.05, base="adamw")
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    for _ in range(3):
        opt_a.step(_closure(opt_a, loss_a))
        opt_b.step(_closure(opt_b, loss_b, scaler), scaler=scaler)
        scaler.update()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-7)
    assert scaler.get_scale() == 2.0**12


def test_grad_scaler_overflow_in_first_pass_skips_the_step_and_lowers_the_scale():
    model, loss_fn = _problem()
    opt = SAM(model.parameters(), lr=0.1, rho=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    before = [p.detach().clone() for p in model.parameters()]
    calls = []

    def closure():
        opt.zero_grad()
        loss = loss_fn()
        scaler.scale(loss).backward()
        if not calls:  # an overflow in the first pass only
            next(model.parameters()).grad[0, 0] = float("inf")
        calls.append(1)
        return loss

    opt.step(closure, scaler=scaler)
    scaler.update()
    for p, w in zip(model.parameters(), before):
        assert torch.equal(p, w)
    assert scaler.get_scale() < 2.0**12


def test_bf16_autocast_training_with_scaler_reduces_the_loss():
    model, loss_fn = _problem()
    opt = SAM(model.parameters(), lr=0.05, rho=0.05)
    scaler = torch.amp.GradScaler("cpu")

    def closure():
        opt.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = loss_fn()
        scaler.scale(loss).backward()
        return loss

    first = opt.step(closure, scaler=scaler).item()
    scaler.update()
    for _ in range(20):
        opt.step(closure, scaler=scaler)
        scaler.update()
    assert loss_fn().item() < first


def test_base_can_be_a_torch_class_or_an_instance_and_schedulers_drive_it():
    model, loss_fn = _problem()
    opt = SAM(model.parameters(), base=torch.optim.SGD, lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    opt.step(_closure(opt, loss_fn))
    sched.step()
    assert opt.base.param_groups[0]["lr"] == 0.05
    assert opt.base.state[next(model.parameters())]["momentum_buffer"] is not None
    inner = torch.optim.Adam(model.parameters(), lr=1e-3)
    wrapped = SAM(None, base=inner, rho=0.1)
    wrapped.step(_closure(wrapped, loss_fn))
    assert wrapped.base is inner and inner.state
    with pytest.raises(ValueError, match="either"):
        SAM(model.parameters(), base=inner)


def test_add_param_group_validates_rho_before_touching_the_base():
    model, _ = _problem()
    opt = SAM(list(model.parameters())[:2], lr=0.1)
    with pytest.raises(ValueError, match="rho"):
        opt.add_param_group({"params": list(model.parameters())[2:], "rho": -1.0})
    assert len(opt.base.param_groups) == 1
    opt.add_param_group({"params": list(model.parameters())[2:], "rho": 0.2})
    assert opt.param_groups[1]["rho"] == 0.2 and len(opt.base.param_groups) == 2


def test_create_with_another_base_uses_that_bases_paper_defaults():
    model, loss_fn = _problem()
    opt = optimlab.create("sam", model.parameters(), base="adamw", rho=0.1)
    assert type(opt.base).__name__ == "AdamW" and opt.base.defaults["betas"] == optimlab.spec("adamw").defaults["betas"]
    assert opt.param_groups[0]["rho"] == 0.1 and "momentum" not in opt.param_groups[0]
    opt.step(_closure(opt, loss_fn))


# ---------------------------------------------------------------------------- the non-finite policy, per parameter
def _two_params():
    a = torch.tensor([1.0, -2.0, 0.5], requires_grad=True)
    b = torch.tensor([0.3, 0.7], requires_grad=True)
    return a, b


def _nan_in_b_closure(opt, a, b, poison: bool):
    calls = []

    def closure():
        opt.zero_grad()
        loss = (a**2).sum() + (b**3).sum()
        loss.backward()
        if poison and not calls:  # a NaN in b's first-pass gradient only
            b.grad[0] = float("nan")
        calls.append(1)
        return loss

    return closure


@pytest.mark.parametrize("base", ["sgd", "adamw"])
def test_a_non_finite_gradient_skips_that_parameter_only(base):
    """Under the base's default "skip", a NaN in one parameter's ascent gradient leaves that parameter (and its base
    state and step counter) untouched and counts one skip; the other parameter takes the SAM step it would take if
    it were the only parameter (the NaN one is out of the perturbation's norm)."""
    a, b = _two_params()
    b0 = b.detach().clone()
    opt = SAM([a, b], base=base, rho=0.1, lr=0.1)
    opt.step(_nan_in_b_closure(opt, a, b, poison=True))
    assert torch.equal(b.detach(), b0)
    assert b not in opt.base.state or not opt.base.state[b]
    assert opt.param_groups[0]["nonfinite_skips"] == 1
    a_alone, _ = _two_params()
    ref = SAM([a_alone], base=base, rho=0.1, lr=0.1)
    ref.step(_closure(ref, lambda: (a_alone**2).sum()))
    assert torch.equal(a.detach(), a_alone.detach())
    opt.step(_nan_in_b_closure(opt, a, b, poison=False))  # the next, finite step moves both
    assert not torch.equal(b.detach(), b0) and torch.isfinite(b).all()


def test_a_non_finite_gradient_raises_under_raise():
    a, b = _two_params()
    opt = SAM([a, b], base="adamw", rho=0.1, lr=0.1, nonfinite="raise")
    a0 = a.detach().clone()
    with pytest.raises(FloatingPointError, match="non-finite"):
        opt.step(_nan_in_b_closure(opt, a, b, poison=True))
    assert torch.equal(a.detach(), a0)
