"""SOAP family tests: the first step only builds the preconditioner; the statistics stay exactly symmetric PSD and
the eigenbases orthonormal (the initial one diagonalizes L); on unrotated (1-D) parameters SOAP is Adam
(torch.optim.Adam, eps = 0, one step late); invariance to the sign convention of the bases; a rank-deficient
statistic's null space gets a basis that rounding does not rotate (a data-parallel run equals one process); and
reference parity on the branches the matrix's settings skip."""

from __future__ import annotations

import pytest
import torch

import optimlab
from optimlab.optim.soap import eigenbasis, power_qr
from tests import _harness as H
from tests import optim_db as DB


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SHAPES = [(6, 4), (4, 2, 3, 3), (5,), (9, 3)]


def test_first_step_only_builds_the_preconditioner():
    params = [p.requires_grad_(True) for p in H.make_params(torch.float64, shapes=SHAPES)]
    before = [p.detach().clone() for p in params]
    opt = optimlab.SOAP(params, precondition_1d=True)
    H.run_optimizer(None, params, 1, opt=opt)
    assert all(torch.equal(p, q) for p, q in zip(params, before))
    for p in params:
        st = opt.state[p]
        assert not st["exp_avg"].any() and not st["exp_avg_sq"].any()
        for S, Q in ((st["L"], st["QL"]), (st["R"], st["QR"])):
            if S.numel():
                rotated = Q.T @ S @ Q  # the eigenbasis diagonalizes the statistic, eigenvalues descending
                off = rotated - torch.diag(torch.diagonal(rotated))
                assert float(off.abs().max()) < 1e-12 * float(S.abs().max())
                assert bool((torch.diagonal(rotated)[:-1] >= torch.diagonal(rotated)[1:] - 1e-12).all())


def test_statistics_stay_symmetric_psd_and_bases_orthonormal():
    params = [p.requires_grad_(True) for p in H.make_params(torch.float64, shapes=SHAPES)]
    opt = optimlab.SOAP(params, precondition_frequency=3, precondition_1d=True)
    H.run_optimizer(None, params, 20, opt=opt)
    for p in params:
        st = opt.state[p]
        for S, Q in ((st["L"], st["QL"]), (st["R"], st["QR"])):
            if S.numel():
                assert torch.equal(S, S.T)
                assert float(torch.linalg.eigvalsh(S).min()) >= -1e-12 * float(S.abs().max())
                torch.testing.assert_close(Q.T @ Q, torch.eye(len(Q), dtype=Q.dtype), rtol=0, atol=1e-12)


def test_unrotated_parameters_are_adam_one_step_late():
    """A vector without precondition_1d has identity bases: SOAP's steps 2..T are Adam's steps 1..T−1 on the same
    gradients (eps = 0 makes the two eps placements agree); decay is off."""
    gen = torch.Generator().manual_seed(0)
    grads = [torch.randn(7, generator=gen, dtype=torch.float64) for _ in range(12)]
    s = torch.zeros(7, dtype=torch.float64, requires_grad=True)
    a = torch.zeros(7, dtype=torch.float64, requires_grad=True)
    soap = optimlab.SOAP([s], lr=0.01, betas=(0.9, 0.99), eps=0.0, weight_decay=0.0)
    adam = torch.optim.Adam([a], lr=0.01, betas=(0.9, 0.99), eps=0.0)
    s.grad = grads[0].clone()
    soap.step()
    for g in grads[1:]:
        s.grad, a.grad = g.clone(), g.clone()
        soap.step()
        adam.step()
    torch.testing.assert_close(s.detach(), a.detach(), rtol=1e-12, atol=1e-15)


def test_power_qr_sign_normalization_does_not_change_the_update():
    """Flipping columns of a basis flips rows of M' and N' together: N = Q_L N' Q_Rᵀ is unchanged."""
    gen = torch.Generator().manual_seed(1)
    G = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    S = G @ G.T + torch.eye(6, dtype=torch.float64)
    Q, _ = power_qr(S, torch.linalg.qr(torch.randn(6, 6, generator=gen, dtype=torch.float64))[0])
    flip = Q * torch.tensor([1.0, -1, 1, -1, -1, 1], dtype=torch.float64)
    V = torch.rand(6, 4, generator=gen, dtype=torch.float64) + 0.1
    M = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    n1 = Q @ ((Q.T @ M) / V.sqrt())
    n2 = flip @ ((flip.T @ M) / V.sqrt())
    torch.testing.assert_close(n1, n2, rtol=1e-13, atol=1e-14)


def test_null_space_basis_does_not_depend_on_rounding():
    """L = GGᵀ of 3 gradients in 8 dims: a 5-dim null space. Perturbing L at rounding level leaves the basis."""
    gen = torch.Generator().manual_seed(2)
    G = torch.randn(8, 3, generator=gen)
    L = G @ G.T
    noise = torch.randn(8, 8, generator=gen) * 1e-7 * float(L.abs().max())
    Q1, Q2 = eigenbasis(L), eigenbasis(L + (noise + noise.T) / 2)
    torch.testing.assert_close(Q1.T @ L @ Q1, torch.diag(torch.diagonal(Q1.T @ L @ Q1)), atol=1e-5, rtol=0)
    assert float((Q1.abs() - Q2.abs()).abs().max()) < 1e-4  # equal up to column signs (which cancel)
    assert float((Q1.T @ Q1 - torch.eye(8)).abs().max()) < 1e-6


def test_data_parallel_gradient_rounding_does_not_change_the_run():
    """The mean of two half-batch gradients (what DDP/FSDP all-reduce) differs from the full-batch gradient by
    rounding only; 20 steps of a 16→32→8 MLP on batches of 8 stay within 1e-4 (it was 5e-2: issue 13)."""

    def run(split: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 8))
        opt = optimlab.SOAP(model.parameters(), lr=1e-2, precondition_frequency=3)
        for t in range(20):
            g = torch.Generator().manual_seed(t)
            x, y = torch.randn(8, 16, generator=g), torch.randn(8, 8, generator=g)
            halves = [slice(0, 4), slice(4, 8)] if split else [slice(0, 8)]
            grads = []
            for h in halves:
                model.zero_grad()
                torch.nn.functional.mse_loss(model(x[h]), y[h]).backward()
                grads.append([p.grad.clone() for p in model.parameters()])
            for p, *gs in zip(model.parameters(), *grads):
                p.grad = sum(gs) / len(gs)
            opt.step()
        return [p.detach() for p in model.parameters()]

    delta = max(float((a - b).abs().max()) for a, b in zip(run(False), run(True)))
    assert delta < 1e-4, delta


@pytest.mark.parametrize(
    "extra",
    [
        dict(normalize_grads=True, correct_bias=False, shampoo_beta=0.8, precondition_frequency=6),
        dict(max_precond_dim=4, precondition_1d=False, precondition_frequency=7),
    ],
    ids=["normalized-uncorrected", "one-sided"],
)
def test_reference_parity_on_other_branches(extra):
    spec = optimlab.spec("soap")
    hp = {**DB.test_hparams("soap"), **extra}
    ref = H.load_reference(DB.info("soap").reference)
    params0 = H.make_params()
    ref_params, ref_states = H.run_reference(ref, params0, hp, 20)
    params = [p.clone().requires_grad_(True) for p in params0]
    opt = H.run_optimizer(lambda ps: spec.cls(H.split_groups(ps, hp), **hp), params, 20)
    for i, (p, rp) in enumerate(zip(params, ref_params)):
        torch.testing.assert_close(p.detach(), rp, rtol=1e-10, atol=1e-12, msg=f"param {i}")
        for key in ("exp_avg", "exp_avg_sq", "L", "R", "QL", "QR"):
            torch.testing.assert_close(opt.state[p][key], ref_states[i][key], rtol=1e-10, atol=1e-12, msg=key)
