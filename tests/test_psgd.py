"""PSGD-Kron family tests: bit-exact resume from a checkpoint in the middle of training, random probes and update
coins included (the pitfall of every library that has Kron); independence from the global RNG; the fitted
preconditioner whitens Kronecker-structured gradients (P·C·P ∝ I, Li's criterion); Q stays upper triangular and
non-singular (P = QᵀQ positive definite); and reference parity on the branches the matrix's settings skip."""

from __future__ import annotations

import math

import pytest
import torch

import optimlab
from optimlab.optim.psgd import probe_seed
from tests import _harness as H
from tests import optim_db as DB


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SHAPES = [(6, 4), (4, 2, 3, 3), (5,), (3, 3)]
KW = dict(lr=0.01, momentum=0.9, weight_decay=0.01, preconditioner_update_probability=0.5)


def _make(params):
    # two groups: the second has dense factors on both sides (skew ∞)
    return optimlab.PSGDKron(
        [{"params": params[:3]}, {"params": params[3:], "preconditioner_max_skew": math.inf}], **KW, seed=123
    )


def _train(opt, params, start, steps):
    H.run_optimizer(None, params, steps, start=start, opt=opt)


def test_resume_from_a_mid_training_checkpoint_is_bit_exact_including_the_probes():
    p0 = H.make_params(torch.float32, seed=3, shapes=SHAPES)
    straight = [p.clone().requires_grad_(True) for p in p0]
    opt_s = _make(straight)
    _train(opt_s, straight, 0, 30)

    first = [p.clone().requires_grad_(True) for p in p0]
    opt_1 = _make(first)
    _train(opt_1, first, 0, 13)
    saved = H.roundtrip({"params": [p.detach() for p in first], "optim": opt_1.state_dict()})
    del opt_1, first
    torch.manual_seed(999)  # a different global RNG state must not matter
    resumed = [p.clone().requires_grad_(True) for p in saved["params"]]
    opt_2 = _make(resumed)
    opt_2.load_state_dict(saved["optim"])
    _train(opt_2, resumed, 13, 17)

    for p, q in zip(straight, resumed):
        assert torch.equal(p, q)
    for p, q in zip(straight, resumed):
        for key, value in opt_s.state[p].items():
            other = opt_2.state[q][key]
            assert value.dtype == other.dtype and torch.equal(value, other), key


def test_the_probes_are_random_and_the_seed_matters():
    """Different seeds give different preconditioners (the probes are not constant); the same seed repeats."""
    runs = []
    for seed in (0, 0, 1):
        params = [p.clone().requires_grad_(True) for p in H.make_params(torch.float64, shapes=[(5, 5)])]
        opt = optimlab.PSGDKron(params, lr=0.01, seed=seed)
        _train(opt, params, 0, 5)
        runs.append(opt.state[params[0]]["Ql"].clone())
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])
    assert len({probe_seed(0, 0, t) for t in range(1, 1000)} | {probe_seed(0, 1, t) for t in range(1, 1000)}) == 1998


def test_step_leaves_the_global_rng_alone():
    params = [p.requires_grad_(True) for p in H.make_params(torch.float32, shapes=SHAPES)]
    opt = _make(params)
    torch.manual_seed(5)
    before = torch.get_rng_state()
    _train(opt, params, 0, 3)
    assert torch.equal(before, torch.get_rng_state())


def test_factors_stay_upper_triangular_and_the_preconditioner_positive_definite():
    params = [p.requires_grad_(True) for p in H.make_params(torch.float64, shapes=SHAPES)]
    opt = _make(params)
    _train(opt, params, 0, 25)
    for p in params:
        st = opt.state[p]
        for q in (st["Ql"], st["Qr"]):
            if q.ndim == 2:
                assert torch.equal(q, torch.triu(q))
                assert float(torch.linalg.eigvalsh(q.T @ q).min()) > 0
            elif q.numel():
                assert bool((q != 0).all())


def test_fitted_preconditioner_whitens_kronecker_structured_gradients():
    """g = A₁ Z A₂ᵀ with Z ~ N(0, I): the criterion's minimizer is P = E[ggᵀ]^(-1/2), i.e. P_l S₁ P_l and
    P_r S₂ P_r proportional to I (S = AAᵀ). Condition numbers 196 and 6 fall to below 2 (lr = 0: only the fit)."""
    gen = torch.Generator().manual_seed(0)
    m, n = 4, 3
    A1 = torch.randn(m, m, generator=gen, dtype=torch.float64)
    A2 = torch.randn(n, n, generator=gen, dtype=torch.float64)
    S1, S2 = A1 @ A1.T, A2 @ A2.T
    assert torch.linalg.cond(S1) > 100 and torch.linalg.cond(S2) > 5
    w = torch.zeros(m, n, dtype=torch.float64, requires_grad=True)
    opt = optimlab.PSGDKron([w], lr=0.0, preconditioner_max_skew=math.inf)
    for t in range(2500):
        if t == 1200:
            opt.param_groups[0]["lr_preconditioner"] = 0.02
        w.grad = A1 @ torch.randn(m, n, generator=gen, dtype=torch.float64) @ A2.T
        opt.step()
    st = opt.state[w]
    Pl, Pr = st["Ql"].T @ st["Ql"], st["Qr"].T @ st["Qr"]
    assert float(torch.linalg.cond(Pl @ S1 @ Pl)) < 2.0
    assert float(torch.linalg.cond(Pr @ S2 @ Pr)) < 2.0


@pytest.mark.parametrize(
    "extra",
    [
        dict(whiten_grad=False, momentum=0.9, preconditioner_max_skew=math.inf, preconditioner_init_scale=0.5),
        dict(preconditioner_max_size=4, preconditioner_update_probability=0.3, momentum=0.0),
    ],
    ids=["whiten-momentum-dense", "max-size-diagonal"],
)
def test_reference_parity_on_other_branches(extra):
    spec = optimlab.spec("psgd_kron")
    hp = {**DB.test_hparams("psgd_kron"), **extra}
    ref = H.load_reference(DB.info("psgd_kron").reference)
    params0 = H.make_params()
    ref_params, ref_states = H.run_reference(ref, params0, hp, 15)
    params = [p.clone().requires_grad_(True) for p in params0]
    opt = H.run_optimizer(lambda ps: spec.cls(H.split_groups(ps, hp), **hp), params, 15)
    for i, (p, rp) in enumerate(zip(params, ref_params)):
        torch.testing.assert_close(p.detach(), rp, rtol=1e-10, atol=1e-12, msg=f"param {i}")
        for key in ("Ql", "Qr", "momentum_buffer"):
            torch.testing.assert_close(opt.state[p][key], ref_states[i][key], rtol=1e-10, atol=1e-12)


def test_on_the_fly_initial_scale_and_a_given_one():
    g = torch.full((3, 3), 2.0, dtype=torch.float64)
    w = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    opt = optimlab.PSGDKron([w], lr=0.0, preconditioner_update_probability=0.0, preconditioner_max_skew=math.inf)
    w.grad = g
    opt.step()
    P = torch.kron(opt.state[w]["Ql"].T @ opt.state[w]["Ql"], opt.state[w]["Qr"].T @ opt.state[w]["Qr"])
    torch.testing.assert_close(P, torch.eye(9, dtype=torch.float64) * 16.0 ** (-1 / 4))  # mean(g⁴)^(-1/4)
    v = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = optimlab.PSGDKron([v], preconditioner_init_scale=3.0)
    v.grad = torch.ones(4, dtype=torch.float64)
    opt.step()
    assert opt.state[v]["Ql"].numel() == 0  # vectors have one factor
