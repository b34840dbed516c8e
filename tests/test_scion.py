"""Scion family tests: each norm's LMO is a unit-norm maximizer of ⟨d, u⟩ (checked with the norm computed
independently), the constrained variant keeps the iterates in the radius-ρ ball (the paper's Lemma: a convex
combination of points of the ball), the unconstrained variant has no shrinkage, and the per-group options."""

from __future__ import annotations

import math

import pytest
import torch

import optimlab
from optimlab import curvature as C
from optimlab.optim.scion import NORMS, lmo


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _d(shape, seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _rms(x):
    return float(x.square().mean().sqrt())


# norm: (the norm whose unit ball the LMO maximizes over, in closed form; the value ⟨d, u⟩ it must reach)
CASES = {
    "euclidean": (lambda u: float(u.norm()), lambda d: float(d.norm())),
    "sign_unnormalized": (lambda u: float(u.abs().max()), lambda d: float(d.abs().sum())),
    "bias_rms": (_rms, lambda d: float(d.norm()) * math.sqrt(d.numel())),
    # sign (the authors' normalized Sign): the ball |u_ij| ≤ 1/d_in; ⟨d, u⟩ = ‖d‖₁/d_in
    "sign": (lambda u: float(u.abs().max() * u.shape[1]), lambda d: float(d.abs().sum()) / d.shape[1]),
    # col (ℓ1→RMS operator norm = largest column RMS): every column has RMS 1; ⟨d, u⟩ = Σ_j √d_out·‖d_:j‖
    "col": (
        lambda u: float((u.norm(dim=0) / math.sqrt(u.shape[0])).max()),
        lambda d: float(d.norm(dim=0).sum()) * math.sqrt(d.shape[0]),
    ),
    # row (RMS→ℓ∞ operator norm = √d_in·largest row ℓ2 norm): every row has ℓ2 norm 1/√d_in; ⟨d, u⟩ = Σ_i ‖d_i:‖/√d_in
    "row": (
        lambda u: float((u.norm(dim=1) * math.sqrt(u.shape[1])).max()),
        lambda d: float(d.norm(dim=1).sum()) / math.sqrt(d.shape[1]),
    ),
}


@pytest.mark.parametrize("norm", sorted(CASES))
def test_exact_lmos_have_unit_norm_and_reach_the_dual_norm(norm):
    unit_norm, dual = CASES[norm]
    d = _d((6, 10)) if norm in ("sign", "col", "row") else _d((7,))
    u = lmo(d, norm, eps=0.0)
    assert unit_norm(u) == pytest.approx(1.0, rel=1e-12)
    assert float((d * u).sum()) == pytest.approx(dual(d), rel=1e-12)
    # no other point of the unit ball does better: random unit-norm competitors
    gen = torch.Generator().manual_seed(1)
    for _ in range(20):
        v = torch.randn(d.shape, generator=gen, dtype=torch.float64)
        v = v / unit_norm(v)
        assert float((d * v).sum()) <= float((d * u).sum()) + 1e-12


@pytest.mark.parametrize("shape", [(12, 30), (30, 12)])
def test_spectral_lmo_is_the_scaled_polar_factor(shape):
    """spectral: √(d_out/d_in)·UVᵀ up to Newton–Schulz's band; spectral_max clamps the scale at 1."""
    d = _d(shape, seed=2)
    lo, hi = C.QUINTIC_BAND
    scale = math.sqrt(shape[0] / shape[1])
    for norm, s in (("spectral", scale), ("spectral_max", max(1.0, scale)), ("auto", scale)):
        sv = torch.linalg.svdvals(lmo(d, norm, ns_dtype="float64") / s)
        assert lo - 1e-6 <= float(sv.min()) and float(sv.max()) <= hi + 1e-6, norm
    polar = C.polar_factor(d)
    u = lmo(d, "spectral", ns_dtype="float64") / scale
    assert float((d * u).sum()) >= lo * float((d * polar).sum())  # ⟨d, UVᵀ⟩ = nuclear norm, up to the band


def test_spectral_conv_scaling_follows_the_authors_code():
    d = _d((8, 4, 3, 3), seed=3)
    u = lmo(d, "spectral_conv", ns_dtype="float64")
    flat = C.newton_schulz(d.reshape(8, 36), dtype=torch.float64, eps=1e-7)
    torch.testing.assert_close(u, flat.reshape(d.shape) * math.sqrt(8 / 4) / 9)
    torch.testing.assert_close(lmo(d, "auto", ns_dtype="float64"), u)


def test_transpose_applies_col_and_row_norms_to_the_transpose():
    d = _d((5, 9), seed=4)
    for norm in ("col", "row", "col_normalized", "row_unnormalized"):
        torch.testing.assert_close(lmo(d, norm, transpose=True), lmo(d.T.contiguous(), norm).T)


def test_constrained_iterates_stay_in_the_ball():
    """x ← (1 − γ)x − γρ·u with ‖u‖ = 1: from inside the ρ-ball the iterates never leave it (ℓ∞ and RMS balls)."""
    gen = torch.Generator().manual_seed(5)
    for norm, size in (("sign_unnormalized", lambda x: float(x.abs().max())), ("bias_rms", _rms)):
        x = torch.zeros(20, dtype=torch.float64, requires_grad=True)
        opt = optimlab.Scion([x], lr=0.3, scale=2.0, norm=norm, momentum=0.5)
        for _ in range(200):
            x.grad = torch.randn(20, generator=gen, dtype=torch.float64) * 10
            opt.step()
            assert size(x.detach()) <= 2.0 * (1 + 1e-12)


def test_unconstrained_differs_from_constrained_only_by_the_shrinkage():
    x0 = _d((4, 6), seed=6)
    a = x0.clone().requires_grad_(True)
    b = x0.clone().requires_grad_(True)
    opt_a = optimlab.Scion([a], lr=0.1, norm="spectral", ns_dtype="float64")
    opt_b = optimlab.Scion([b], lr=0.1, norm="spectral", ns_dtype="float64", unconstrained=True)
    g = _d((4, 6), seed=7)
    a.grad, b.grad = g.clone(), g.clone()
    opt_a.step()
    opt_b.step()
    torch.testing.assert_close(b.detach() - a.detach(), 0.1 * x0, rtol=1e-12, atol=1e-14)


def test_momentum_weights_the_new_gradient():
    """d ← (1 − α)d + αg (α = ``momentum``, the authors' convention: 0.1 ≈ the usual momentum 0.9)."""
    x = torch.zeros(3, 3, dtype=torch.float64, requires_grad=True)
    opt = optimlab.Scion([x], momentum=0.1)
    g1, g2 = _d((3, 3), 8), _d((3, 3), 9)
    x.grad = g1.clone()
    opt.step()
    x.grad = g2.clone()
    opt.step()
    torch.testing.assert_close(opt.state[x]["momentum_buffer"], 0.9 * 0.1 * g1 + 0.1 * g2)


def test_norms_that_need_matrices_reject_vectors():
    for norm in NORMS:
        params = [torch.zeros(4, requires_grad=True)]
        if norm in ("auto", "bias_rms", "euclidean", "sign_unnormalized"):
            optimlab.Scion(params, norm=norm)
        else:
            with pytest.raises(ValueError, match="norm"):
                optimlab.Scion(params, norm=norm)


def test_per_group_norms_and_radii():
    """The authors' nanoGPT layout: spectral hidden layers at radius ρ, a sign-normed head at 60ρ."""
    hidden = torch.zeros(8, 8, dtype=torch.float64, requires_grad=True)
    head = torch.zeros(5, 8, dtype=torch.float64, requires_grad=True)
    opt = optimlab.Scion(
        [{"params": [hidden], "norm": "spectral"}, {"params": [head], "norm": "sign", "scale": 3000.0}],
        momentum=1.0,
        ns_dtype="float64",
    )
    hidden.grad, head.grad = _d((8, 8), 10), _d((5, 8), 11)
    opt.step()
    # one constrained step from 0: x = −γρ·lmo(g)
    torch.testing.assert_close(head.detach(), -(2**-12) * 3000.0 * torch.sign(head.grad) / 8)
    sv = torch.linalg.svdvals(hidden.detach() / (2**-12 * 50.0))
    assert C.QUINTIC_BAND[0] - 1e-6 <= float(sv.min()) and float(sv.max()) <= C.QUINTIC_BAND[1] + 1e-6


@pytest.mark.parametrize("transpose", [False, True])
def test_same_shape_spectral_parameters_share_one_batched_newton_schulz(transpose, monkeypatch):
    """Spectral LMOs are bucketed by shape and orthogonalized with ONE batched Newton–Schulz per bucket; every
    parameter gets the bits a Scion holding it alone gives it (bf16 products; spectral, conv and RMS norms, and
    same-shape biases, which are not batched)."""
    from optimlab.optim import _compiled
    from optimlab.optim import scion as S

    monkeypatch.setattr(_compiled, "BATCH_ON_CPU", True)  # the batched path (on by default on GPUs only)
    calls = []
    real = S.newton_schulz
    monkeypatch.setattr(S, "newton_schulz", lambda G, **kw: calls.append(tuple(G.shape)) or real(G, **kw))
    gen = torch.Generator().manual_seed(0)
    shapes = [(12, 4)] * 3 + [(4, 12)] * 2 + [(6, 2, 3, 3)] * 2 + [(5,)] * 2
    together = [torch.randn(s, generator=gen).requires_grad_(True) for s in shapes]
    alone = [p.detach().clone().requires_grad_(True) for p in together]
    options = dict(lr=0.01, momentum=0.5, scale=2.0, transpose=transpose)
    batched = optimlab.Scion(together, **options)
    singles = [optimlab.Scion([p], **options) for p in alone]
    for _ in range(3):
        for p, q in zip(together, alone):
            p.grad = torch.randn(p.shape, generator=gen)
            q.grad = p.grad.clone()
        calls.clear()
        batched.step()
        assert sorted(calls) == sorted([(3, 12, 4), (2, 4, 12), (2, 6, 18)])
        for opt in singles:
            opt.step()
    for p, q, single in zip(together, alone, singles):
        assert torch.equal(p, q), tuple(p.shape)
        assert torch.equal(batched.state[p]["momentum_buffer"], single.state[q]["momentum_buffer"])
