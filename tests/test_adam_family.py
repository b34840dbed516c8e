"""Family tests for the Adam family: invariants from the papers, known answers, the branches the generic matrix's
single hyperparameter set does not reach, and parity with the AdaBelief authors' own package."""

from __future__ import annotations

import contextlib
import io
import math

import pytest
import torch

import optimlab
from optimlab.optim.nadam import momentum_schedule
from tests import _harness as H
from tests import optim_db as DB


def _noisy_grads(shape, steps, seed=0):
    """Gradients whose scale jumps around (large early, small later, with spikes), so v rises and falls."""
    gen = torch.Generator().manual_seed(seed)
    for t in range(steps):
        scale = 3.0 if t < 10 else (2.0 if t % 13 == 0 else 0.1)
        yield scale * (torch.randn(shape, generator=gen, dtype=torch.float64) + 0.5)


# ---------------------------------------------------------------------------- AMSGrad invariant
@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda p: optimlab.AMSGrad([p], lr=1e-2), id="paper"),
        pytest.param(lambda p: optimlab.AMSGrad([p], lr=1e-2, bias_correction=True, decoupled=True), id="debiased"),
        pytest.param(lambda p: optimlab.Adam([p], lr=1e-2, amsgrad=True, weight_decay=0.1), id="adam-amsgrad"),
    ],
)
def test_amsgrad_max_exp_avg_sq_never_decreases(make):
    """Reddi et al.'s v̂_t = max(v̂_{t−1}, v_t): elementwise non-decreasing, and never below v_t."""
    p = torch.zeros(4, 5, dtype=torch.float64, requires_grad=True)
    opt = make(p)
    previous = torch.zeros_like(p)
    v_fell = False
    last_v = torch.zeros_like(p)
    for g in _noisy_grads(p.shape, 50):
        p.grad = g
        opt.step()
        state = opt.state[p]
        v_max, v = state["max_exp_avg_sq"], state["exp_avg_sq"]
        assert torch.all(v_max >= previous), "max_exp_avg_sq decreased"
        assert torch.all(v_max >= v)
        v_fell |= bool((v < last_v).any())
        previous, last_v = v_max.clone(), v.clone()
    assert v_fell, "the objective never made v fall; the test would be vacuous"


# ---------------------------------------------------------------------------- diagonal rescaling invariance
# Kingma & Ba (2015), §2.1: the step is invariant to rescaling the gradient; per coordinate, for c > 0 and eps → 0.
INVARIANT = {
    "adam": dict(lr=1e-2, eps=1e-30),
    "adamw": dict(lr=1e-2, eps=1e-30, weight_decay=0.1),  # decoupled decay does not touch the gradient
    "adamax": dict(lr=1e-2, eps=1e-30),
    "nadam": dict(lr=1e-2, eps=1e-30),
    "adabelief": dict(lr=1e-2, eps=1e-30),
}


def _rescaled_trajectory(name, scale, steps=50, **hp):
    x = torch.linspace(-1.0, 1.0, 6, dtype=torch.float64).requires_grad_(True)
    opt = optimlab.create(name, [x], **hp)
    path = []
    for t in range(steps):
        loss = H.objective([x], t)
        (g,) = torch.autograd.grad(loss, [x])
        x.grad = g * scale  # the gradient of Σ_i c_i f_i: each coordinate's gradient scaled by its own c_i
        opt.step()
        path.append(x.detach().clone())
    return torch.stack(path)


@pytest.mark.parametrize("name", sorted(INVARIANT))
def test_diagonal_rescaling_invariance(name):
    c = torch.tensor([1e-3, 0.1, 1.0, 7.0, 1e3, 0.5], dtype=torch.float64)
    plain = _rescaled_trajectory(name, torch.ones(6, dtype=torch.float64), **INVARIANT[name])
    scaled = _rescaled_trajectory(name, c, **INVARIANT[name])
    assert (plain[-1] - plain[0]).abs().min() > 1e-2  # it moved
    torch.testing.assert_close(scaled, plain, rtol=1e-9, atol=1e-12)


def test_diagonal_rescaling_is_broken_only_by_eps():
    """With a realistic eps the coordinate scaled by 1e-3 (|g| ~ eps·1e5) drifts; the others stay put."""
    c = torch.tensor([1e-3, 0.1, 1.0, 7.0, 1e3, 0.5], dtype=torch.float64)
    plain = _rescaled_trajectory("adam", torch.ones(6, dtype=torch.float64), lr=1e-2, eps=1e-4)
    scaled = _rescaled_trajectory("adam", c, lr=1e-2, eps=1e-4)
    drift = (scaled - plain).abs().amax(dim=0)
    assert drift[0] > 1e-3
    assert drift[1:].max() < drift[0]


# ---------------------------------------------------------------------------- AdaMax
def test_adamax_first_step_is_sign_like():
    """Step 1: m = (1 − β1)g, u = |g| + eps, so p ← p − lr·g/(|g| + eps)."""
    g = torch.tensor([3.0, -0.5, 1e-3, 0.0], dtype=torch.float64)
    p = torch.ones(4, dtype=torch.float64, requires_grad=True)
    opt = optimlab.Adamax([p], lr=0.1, eps=1e-8)
    p.grad = g.clone()
    opt.step()
    torch.testing.assert_close(p.detach(), 1 - 0.1 * g / (g.abs() + 1e-8), rtol=1e-14, atol=0)
    torch.testing.assert_close(opt.state[p]["exp_inf"], g.abs() + 1e-8, rtol=0, atol=0)


def test_adamax_exp_inf_is_weighted_infinity_norm():
    """u_t = max(β2^(t−1)|g_1|, …, |g_t|) (+ eps), the paper's closed form of the recursion (eps = 0 here)."""
    beta2 = 0.9
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = optimlab.Adamax([p], lr=1e-3, betas=(0.9, beta2), eps=0.0)
    grads = list(_noisy_grads((3,), 30, seed=3))
    for t, g in enumerate(grads, start=1):
        p.grad = g
        opt.step()
        expected = torch.stack([beta2 ** (t - i) * grads[i - 1].abs() for i in range(1, t + 1)]).amax(0)
        torch.testing.assert_close(opt.state[p]["exp_inf"], expected, rtol=1e-13, atol=0)


# ---------------------------------------------------------------------------- NAdam
def test_nadam_mu_product_is_the_product_of_the_schedule():
    p = torch.zeros(3, requires_grad=True)
    opt = optimlab.NAdam([p], betas=(0.9, 0.999), momentum_decay=4e-3)
    for t in range(1, 41):
        p.grad = torch.ones(3)
        opt.step()
        expected = math.prod(momentum_schedule(0.9, i, 4e-3) for i in range(1, t + 1))
        state = opt.state[p]["mu_product"]
        assert state.dtype == torch.float32 and state.dim() == 0
        assert math.isclose(state.item(), expected, rel_tol=1e-5)
    # the schedule warms up from β1/2 towards β1 (Dozat: μ_t = β1(1 − ½·0.96^(t/250)))
    assert math.isclose(momentum_schedule(0.9, 0, 4e-3), 0.45)
    assert 0.8999 < momentum_schedule(0.9, 1e6, 4e-3) <= 0.9


# ---------------------------------------------------------------------------- RAdam
def test_radam_starts_as_momentum_sgd():
    """ρ_1 = 1 ≤ 5: the first step is p ← p − lr·m̂_1 = p − lr·g, whatever the gradient's scale."""
    g = torch.tensor([300.0, -0.5, 1e-6], dtype=torch.float64)
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = optimlab.RAdam([p], lr=0.1)
    p.grad = g.clone()
    opt.step()
    torch.testing.assert_close(p.detach(), -0.1 * g, rtol=1e-15, atol=0)


@pytest.mark.parametrize("threshold,first_rectified", [(5.0, 6), (4.0, 5)])
def test_radam_threshold_sets_the_switch_step(threshold, first_rectified):
    """With β2 = 0.999, ρ_5 ≈ 4.996 and ρ_6 ≈ 5.994: the paper's threshold 4 rectifies from step 5, torch's 5 from
    step 6. Before the switch the trajectory equals bias-corrected momentum SGD."""
    p = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = optimlab.RAdam([p], lr=0.1, betas=(0.9, 0.999), rho_threshold=threshold)
    sgd = torch.zeros(4, dtype=torch.float64)
    m = torch.zeros(4, dtype=torch.float64)
    for t, g in enumerate(_noisy_grads((4,), first_rectified, seed=5), start=1):
        p.grad = g
        opt.step()
        m = 0.9 * m + 0.1 * g
        sgd = sgd - 0.1 * m / (1 - 0.9**t)
        if t < first_rectified:
            torch.testing.assert_close(p.detach(), sgd, rtol=1e-13, atol=1e-15)
        else:
            assert not torch.allclose(p.detach(), sgd, rtol=1e-6, atol=0)


# ---------------------------------------------------------------------------- branches the matrix does not reach
OTHER_BRANCH = {
    "nadam": dict(decoupled_weight_decay=True),  # the matrix runs the L2 form
    "radam": dict(decoupled_weight_decay=False),  # the matrix runs the decoupled form
    "adabelief": dict(decoupled_weight_decay=True),  # the matrix runs the L2 form
}


def _hp(name, **extra):
    spec = optimlab.spec(name)
    return spec, {**DB.test_hparams(name), **extra}


@pytest.mark.parametrize("name", sorted(OTHER_BRANCH))
def test_other_weight_decay_branch_matches_reference(name):
    spec, hp = _hp(name, **OTHER_BRANCH[name])
    ref = H.load_reference(DB.info(name).reference)
    params0 = H.make_params()
    ref_params, ref_states = H.run_reference(ref, params0, hp, H.STEPS)
    params = [p.clone().requires_grad_(True) for p in params0]
    opt = H.run_optimizer(lambda ps: spec.cls(H.split_groups(ps, hp), **hp), params, H.STEPS)
    for p, rp, rs in zip(params, ref_params, ref_states):
        torch.testing.assert_close(p.detach(), rp, rtol=1e-10, atol=1e-12)
        for key, value in opt.state[p].items():
            if key != "step":
                torch.testing.assert_close(value, rs[key], rtol=1e-10, atol=1e-12, msg=key)


@pytest.mark.parametrize("name", ["nadam", "radam"])
def test_other_weight_decay_branch_matches_torch(name):
    spec, hp = _hp(name, **OTHER_BRANCH[name])
    parity = DB.info(name).torch_equivalent
    torch_hp = {k: v for k, v in hp.items() if k not in parity.our_kwargs}
    params0 = H.make_params()
    ours = [p.clone().requires_grad_(True) for p in params0]
    theirs = [p.clone().requires_grad_(True) for p in params0]
    opt = H.run_optimizer(lambda ps: spec.cls(H.split_groups(ps, hp), **hp), ours, H.STEPS)
    ref = H.run_optimizer(
        lambda ps: parity.resolve()(H.split_groups(ps, torch_hp), foreach=False, **torch_hp), theirs, H.STEPS
    )
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
        for key, value in opt.state[p].items():
            torch.testing.assert_close(value.double(), ref.state[q][key].double(), rtol=1e-12, atol=1e-14, msg=key)


# ---------------------------------------------------------------------------- AdaBelief vs the authors' package
@pytest.mark.parametrize("decoupled", [True, False])
def test_adabelief_matches_authors_package(decoupled):
    """adabelief-pytorch (Zhuang et al.'s own package, the code behind the paper's results) with rectify=False."""
    try:
        from adabelief_pytorch import AdaBelief as AuthorsAdaBelief
    except ImportError as exc:  # not a project dependency
        pytest.skip(f"adabelief-pytorch is not importable ({exc}); pip install adabelief-pytorch to run this check")
    spec, hp = _hp("adabelief", decoupled_weight_decay=decoupled)
    theirs_hp = {k: v for k, v in hp.items() if k != "decoupled_weight_decay"}
    params0 = H.make_params()
    ours = [p.clone().requires_grad_(True) for p in params0]
    theirs = [p.clone().requires_grad_(True) for p in params0]
    opt = H.run_optimizer(lambda ps: spec.cls(H.split_groups(ps, hp), **hp), ours, H.STEPS)
    with contextlib.redirect_stdout(io.StringIO()):  # the package prints its change log and settings
        ref = H.run_optimizer(
            lambda ps: AuthorsAdaBelief(
                H.split_groups(ps, theirs_hp),
                **theirs_hp,
                weight_decouple=decoupled,
                rectify=False,
                print_change_log=False,
            ),
            theirs,
            H.STEPS,
        )
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
        for key in ("exp_avg", "exp_avg_var"):
            torch.testing.assert_close(opt.state[p][key], ref.state[q][key], rtol=1e-12, atol=1e-14, msg=key)
        assert float(opt.state[p]["step"]) == ref.state[q]["step"]
