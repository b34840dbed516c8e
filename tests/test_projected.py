"""GaLore-family (projected Adam) properties: the projectors' closed-form gradients against autograd, the DCT basis,
exact resume between two refreshes with weights_only loading, the AdamW path for parameters that are not projected,
moment re-projection rules, memory, and training a low-rank matrix problem with every projector."""

from __future__ import annotations

import io
import math

import pytest
import torch

import optimlab
from optimlab.optim import projectors as PJ
from optimlab.optim.projectors.coap import coap_loss_grad
from optimlab.optim.projectors.dct import dct_columns, select_columns
from optimlab.optim.projectors.online_pca import pca_loss_grad
from optimlab.optim.projectors.svd import top_singular_vectors

KINDS = ["galore", "galore_dct", "online_subspace_descent", "coap"]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("ortho", [0.0, 0.3])
def test_online_pca_gradient_matches_autograd(ortho):
    g = _gen()
    X = torch.randn(6, 9, generator=g, dtype=torch.float64)
    P = torch.linalg.qr(torch.randn(6, 2, generator=g, dtype=torch.float64))[0] + 0.1
    Z = P.clone().requires_grad_(True)
    Xh = X / X.norm()
    loss = ((Z @ Z.T @ Xh - Xh) ** 2).sum() + ortho * ((Z.T @ Z - torch.eye(2, dtype=Z.dtype)) ** 2).sum()
    (expected,) = torch.autograd.grad(loss, Z)
    torch.testing.assert_close(pca_loss_grad(P, X, ortho), expected, rtol=1e-12, atol=1e-14)
    assert torch.equal(pca_loss_grad(P, torch.zeros_like(X), 0.0), torch.zeros_like(P))  # no NaN at g = 0


@pytest.mark.parametrize("left", [True, False])
@pytest.mark.parametrize("scale", [1e-3, 10.0])  # the clip at norm 1 inactive / active
def test_coap_gradient_matches_autograd(left, scale):
    g = _gen(1)
    X = torch.randn(5, 8, generator=g, dtype=torch.float64) * scale
    P = torch.randn(5, 2, generator=g, dtype=torch.float64)
    m = torch.randn(2, 8, generator=g, dtype=torch.float64)
    Z = P.clone().requires_grad_(True)
    G, M_full = (X, Z @ m) if left else (X.T, (Z @ m).T)  # the gradient in its own orientation (rows = G's rows)
    loss = torch.nn.functional.mse_loss(Z @ Z.T @ X, X)
    loss = loss * (1 - torch.nn.functional.cosine_similarity(M_full, G, dim=1).mean())
    (grad,) = torch.autograd.grad(loss, Z)
    grad = grad * min(1.0, 1.0 / (float(grad.norm()) + 1e-6))
    torch.testing.assert_close(coap_loss_grad(P, X, m, left), grad, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("d", [1, 7, 64, 1000])
def test_dct_basis_is_orthonormal_and_matches_the_cosine_formula(d):
    Q = dct_columns(d, torch.arange(d), torch.float64)
    torch.testing.assert_close(Q.T @ Q, torch.eye(d, dtype=torch.float64), rtol=0, atol=1e-12)
    j = torch.arange(d, dtype=torch.float64)[:, None]
    i = torch.arange(d, dtype=torch.float64)[None, :]
    scale = torch.full((1, d), math.sqrt(2 / d), dtype=torch.float64)
    scale[0, 0] = math.sqrt(1 / d)
    direct = torch.cos(math.pi * (2 * j + 1) * i / (2 * d)) * scale
    torch.testing.assert_close(Q, direct, rtol=0, atol=1e-12)


def test_dct_selection_finds_the_columns_a_gradient_is_made_of():
    d = 32
    Q = dct_columns(d, torch.arange(d), torch.float64)
    coef = torch.zeros(d, 20, dtype=torch.float64)
    coef[[3, 17, 25]] = torch.tensor([5.0, -3.0, 1.5], dtype=torch.float64)[:, None] * torch.ones(
        20, dtype=torch.float64
    )
    X = Q @ coef
    assert select_columns(X, 3, "l1").tolist() == [3, 17, 25]  # best first
    assert select_columns(X, 3, "l2").tolist() == [3, 17, 25]


@pytest.mark.parametrize("left", [True, False])
def test_svd_projector_captures_a_low_rank_gradient(left):
    g = _gen(2)
    G = torch.randn(8, 3, generator=g, dtype=torch.float64) @ torch.randn(3, 12, generator=g, dtype=torch.float64)
    G = G if left else G.T
    frame = PJ.Frame.of(G)
    assert frame.left == left
    P = top_singular_vectors(frame.M, frame.left, 3)
    torch.testing.assert_close(frame.to_param(P.T @ frame.X, P), G, rtol=1e-10, atol=1e-10)


def test_reprojection_rules():
    g = _gen(3)
    P_old = torch.linalg.qr(torch.randn(7, 3, generator=g, dtype=torch.float64))[0]
    m = torch.randn(3, 5, generator=g, dtype=torch.float64)
    v = torch.rand(3, 5, generator=g, dtype=torch.float64)
    for mode in ("rotate", "rotate_sqrt"):  # the same basis leaves the moments alone
        m2, v2 = PJ.reprojected(mode, P_old, P_old, m, v)
        torch.testing.assert_close(m2, m)
        torch.testing.assert_close(v2, v)
    perm = P_old[:, [2, 0, 1]]  # a permuted basis permutes the moments' rows
    m2, v2 = PJ.reprojected("rotate", P_old, perm, m, v)
    torch.testing.assert_close(m2, m[[2, 0, 1]])
    torch.testing.assert_close(v2, v[[2, 0, 1]])
    m2, v2 = PJ.reprojected("reset", P_old, perm, m, v)
    assert not m2.any() and not v2.any()


def _model(seed=0):
    g = _gen(seed)
    return [
        torch.randn(16, 24, generator=g).requires_grad_(True),  # projected (rows)
        torch.randn(30, 12, generator=g).requires_grad_(True),  # projected (columns)
        torch.randn(4, 3, 2, 5, generator=g).requires_grad_(True),  # projected as 4 × 30
        torch.randn(24, generator=g).requires_grad_(True),  # AdamW
    ]


def _loss(params, t):
    g = _gen(100 + t)
    return sum(
        ((p - 0.3 * torch.randn(p.shape, generator=g)) ** 2).sum() + 0.1 * torch.sin(3 * p).sum() for p in params
    )


def _train(opt, params, start, stop):
    for t in range(start, stop):
        opt.zero_grad()
        _loss(params, t).backward()
        opt.step()


@pytest.mark.parametrize("name", KINDS)
def test_resume_between_refreshes_is_exact_and_loads_weights_only(name):
    hp = dict(rank=3, update_proj_gap=4, lr=1e-2)
    if name == "coap":
        hp.update(update_proj_gap=2, reproject_factor=3)  # gradient steps at 3, 7; recompute at 1, 7, ...
    straight = _model()
    opt_s = optimlab.create(name, straight, **hp)
    _train(opt_s, straight, 0, 12)

    first = _model()
    opt_1 = optimlab.create(name, first, **hp)
    _train(opt_1, first, 0, 6)  # refreshes at steps 1 and 5; the checkpoint sits before the one at step 9
    buf = io.BytesIO()
    torch.save({"params": [p.detach() for p in first], "optim": opt_1.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    resumed = [p.clone().requires_grad_(True) for p in saved["params"]]
    opt_2 = optimlab.create(name, resumed, **hp)
    opt_2.load_state_dict(saved["optim"])
    _train(opt_2, resumed, 6, 12)
    for p, q in zip(straight, resumed):
        assert torch.equal(p, q)
    for p, q in zip(straight, resumed):
        for key, value in opt_s.state[p].items():
            other = opt_2.state[q][key]
            assert value.dtype == other.dtype and torch.equal(value, other), key


@pytest.mark.parametrize("name", KINDS)
def test_unprojected_parameters_get_exactly_adamw(name):
    """1-D tensors, matrices with rank ≥ min(m, n) and groups with project=False follow AdamW bit for bit."""
    spec = optimlab.spec(name)
    hp = {k: spec.defaults[k] for k in ("lr", "betas", "eps")}
    a = [
        torch.randn(24, generator=_gen(5)).requires_grad_(True),
        torch.randn(3, 9, generator=_gen(6)).requires_grad_(True),
    ]
    b = [p.detach().clone().requires_grad_(True) for p in a]
    c = [torch.randn(16, 24, generator=_gen(7)).requires_grad_(True)]
    d = [p.detach().clone().requires_grad_(True) for p in c]
    ours = optimlab.create(name, [{"params": a, "rank": 3}, {"params": c, "project": False}], weight_decay=0.1)
    ref = optimlab.AdamW([{"params": b}, {"params": d}], weight_decay=0.1, **hp)
    for t in range(5):
        for opt, params in ((ours, a + c), (ref, b + d)):
            opt.zero_grad()
            _loss(params, t).backward()
            opt.step()
    for p, q in zip(a + c, b + d):
        assert torch.equal(p, q)
    assert set(ours.state[c[0]]) == {"step", "exp_avg", "exp_avg_sq"}


def test_rank_fraction_and_state_bytes_at_rank_m_over_4():
    p = torch.zeros(512, 256, requires_grad=True)
    opt = optimlab.create("galore", [p], rank_fraction=0.25)
    p.grad = torch.randn(512, 256)
    opt.step()
    assert opt.state[p]["projector"].shape == (256, 64)  # d = min(m, n) = 256, r = 64
    assert opt.state[p]["exp_avg"].shape == (64, 512)
    measured = optimlab.state_bytes(opt)
    assert measured == (2 * 64 * 512 + 256 * 64) * 4 + 4
    adamw = optimlab.spec("adamw").state_bytes((512, 256))
    assert measured / adamw < 0.32
    dct = optimlab.spec("galore_dct").state_bytes((512, 256), rank_fraction=0.25)
    assert dct == 2 * 64 * 512 * 4 + 64 * 4 + 4  # only r int32 indices besides the moments


@pytest.mark.parametrize("name", KINDS)
def test_trains_a_low_rank_matrix_regression(name):
    """min ‖W A − B‖² for a rank-2 target: every projector (rank 4) brings the loss down by 100×."""
    g = _gen(9)
    A = torch.randn(20, 64, generator=g)
    W_true = torch.randn(16, 2, generator=g) @ torch.randn(2, 20, generator=g) / 3
    B = W_true @ A
    W = torch.zeros(16, 20, requires_grad=True)
    lr = {"galore": 0.2, "online_subspace_descent": 0.2, "galore_dct": 0.02, "coap": 0.05}[name]  # α = 0.25 vs 1
    opt = optimlab.create(name, [W], rank=4, update_proj_gap=10, lr=lr)

    def loss():
        return ((W @ A - B) ** 2).mean()

    start = loss().item()
    for _ in range(300):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    assert loss().item() < start / 100, (start, loss().item())


def test_bf16_params_keep_fp32_low_rank_state():
    p = torch.randn(16, 24).to(torch.bfloat16).requires_grad_(True)
    opt = optimlab.create("galore", [p], rank=4)
    p.grad = torch.randn(16, 24).to(torch.bfloat16)
    opt.step()
    assert p.dtype == torch.bfloat16
    assert all(v.dtype == torch.float32 for k, v in opt.state[p].items() if k != "step")
