"""Shampoo family tests: the statistics stay exactly symmetric positive semi-definite and the inverse roots
symmetric positive definite with root^(2k)·(S + εI) = I; a known answer of Algorithm 1 (a rank-one gradient gives
the unit-spectral-norm step u vᵀ); the update frequency; AdaGrad grafting's step norm; diagonal long sides; and
reference parity on the branches the matrix's settings skip."""

from __future__ import annotations

import pytest
import torch

import optimlab
from tests import _harness as H
from tests import optim_db as DB


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SHAPES = [(6, 4), (4, 2, 3, 3), (5,), (9, 3)]


def test_statistics_stay_symmetric_psd_and_roots_spd():
    params = [p.requires_grad_(True) for p in H.make_params(torch.float64, shapes=SHAPES)]
    opt = optimlab.Shampoo(params, lr=0.05, beta2=0.95, eps=1e-4, update_freq=1, max_precond_dim=8)
    H.run_optimizer(None, params, 15, opt=opt)
    checked = 0
    for p in params:
        st = opt.state[p]
        order = 2 if p.ndim >= 2 else 1
        for stat, root in ((st["L"], st["L_inv_root"]), (st["R"], st["R_inv_root"])):
            if stat.ndim == 2:
                assert torch.equal(stat, stat.T) and torch.equal(root, root.T)
                assert float(torch.linalg.eigvalsh(stat).min()) >= -1e-12 * float(stat.abs().max())
                assert float(torch.linalg.eigvalsh(root).min()) > 0
                damped = stat + 1e-4 * torch.eye(len(stat), dtype=stat.dtype)
                identity = torch.linalg.matrix_power(root, 2 * order) @ damped
                torch.testing.assert_close(identity, torch.eye(len(stat), dtype=stat.dtype), rtol=0, atol=1e-8)
                checked += 1
            elif stat.numel():
                assert bool((stat >= 0).all()) and bool((root > 0).all())
    assert checked >= 4


def test_rank_one_gradient_gives_the_unit_spectral_step():
    """Algorithm 1 at t = 1 with G = σ u vᵀ: L^(-1/4) G R^(-1/4) = u vᵀ as ε → 0 (a step of spectral norm lr)."""
    gen = torch.Generator().manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(7, generator=gen, dtype=torch.float64), dim=0)
    v = torch.nn.functional.normalize(torch.randn(5, generator=gen, dtype=torch.float64), dim=0)
    w = torch.zeros(7, 5, dtype=torch.float64, requires_grad=True)
    opt = optimlab.Shampoo([w], lr=0.3, eps=1e-14)
    w.grad = 4.0 * torch.outer(u, v)
    opt.step()
    torch.testing.assert_close(-w.detach(), 0.3 * torch.outer(u, v), rtol=0, atol=1e-6)


def test_roots_change_only_every_update_freq_steps():
    w = torch.zeros(4, 3, dtype=torch.float64, requires_grad=True)
    opt = optimlab.Shampoo([w], lr=0.1, update_freq=3)
    gen = torch.Generator().manual_seed(1)
    roots = []
    for _ in range(7):
        w.grad = torch.randn(4, 3, generator=gen, dtype=torch.float64)
        opt.step()
        roots.append(opt.state[w]["L_inv_root"].clone())
    changed = [not torch.equal(a, b) for a, b in zip(roots, roots[1:])]  # steps 2..7
    assert changed == [False, False, True, False, False, True]  # refreshed at steps 1, 4, 7


def test_adagrad_grafting_takes_adagrads_step_norm():
    gen = torch.Generator().manual_seed(2)
    w = torch.zeros(6, 4, dtype=torch.float64, requires_grad=True)
    a = torch.zeros(6, 4, dtype=torch.float64, requires_grad=True)
    opt = optimlab.Shampoo([w], lr=0.1, grafting="adagrad", graft_eps=1e-10)
    ada = torch.optim.Adagrad([a], lr=0.1, eps=1e-10)
    for _ in range(5):
        g = torch.randn(6, 4, generator=gen, dtype=torch.float64)
        before_w, before_a = w.detach().clone(), a.detach().clone()
        w.grad, a.grad = g.clone(), g.clone()
        opt.step()
        ada.step()
        torch.testing.assert_close((w.detach() - before_w).norm(), (a.detach() - before_a).norm(), rtol=1e-12, atol=0)


def test_long_sides_keep_diagonal_statistics():
    w = torch.zeros(10, 3, requires_grad=True)
    b = torch.zeros(12, requires_grad=True)
    opt = optimlab.Shampoo([w, b], max_precond_dim=8)
    w.grad, b.grad = torch.ones(10, 3), torch.ones(12)
    opt.step()
    assert opt.state[w]["L"].shape == (10,) and opt.state[w]["R"].shape == (3, 3)
    assert opt.state[b]["L"].numel() == 0 and opt.state[b]["R"].shape == (12,)
    assert optimlab.state_bytes_by_param(opt)[0] == optimlab.spec("shampoo").state_bytes((10, 3), max_precond_dim=8)


@pytest.mark.parametrize(
    "extra",
    [dict(beta2=1.0, grafting="none", momentum=0.9, update_freq=1), dict(max_precond_dim=768, eps=1e-2)],
    ids=["paper-sums", "all-dense"],
)
def test_reference_parity_on_other_branches(extra):
    spec = optimlab.spec("shampoo")
    hp = {**DB.test_hparams("shampoo"), **extra}
    ref = H.load_reference(DB.info("shampoo").reference)
    params0 = H.make_params()
    ref_params, ref_states = H.run_reference(ref, params0, hp, 15)
    params = [p.clone().requires_grad_(True) for p in params0]
    opt = H.run_optimizer(lambda ps: spec.cls(H.split_groups(ps, hp), **hp), params, 15)
    for i, (p, rp) in enumerate(zip(params, ref_params)):
        torch.testing.assert_close(p.detach(), rp, rtol=1e-10, atol=1e-12, msg=f"param {i}")
        for key in ("L", "R", "L_inv_root", "R_inv_root"):
            torch.testing.assert_close(opt.state[p][key], ref_states[i][key], rtol=1e-10, atol=1e-12)
