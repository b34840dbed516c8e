"""Aggregators: parity with the plain references (tests/reference/multitask_aggregators.py) and with torchjd, the
papers' properties (UPGrad never conflicts, PCGrad removes conflicts, MGDA's min-norm optimality, IMTL-G's equal
projections, CAGrad's c = 0 limit), and bad hyperparameters."""

from __future__ import annotations

import pytest
import torch

from optimlab.multitask import IMTLG, MGDA, CAGrad, Mean, PCGrad, Sum, UPGrad
from tests.reference import multitask_aggregators as ref

SHAPES = [(2, 5), (3, 10), (5, 7), (8, 20), (10, 4), (16, 50)]


def _jacobians(seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    out = []
    for m, n in SHAPES:
        J = torch.randn(m, n, generator=g, dtype=dtype)
        out.append(J)
        # strongly conflicting rows: a common direction plus large opposite components
        base = torch.randn(n, generator=g, dtype=dtype)
        signs = torch.where(torch.arange(m) % 2 == 0, 1.0, -1.0).to(dtype)
        out.append(0.3 * base + signs[:, None] * torch.randn(1, n, generator=g, dtype=dtype) * 2)
    return out


def _full_row_rank(J):
    return torch.linalg.matrix_rank(J) == J.shape[0]


@pytest.mark.parametrize("idx", range(2 * len(SHAPES)))
def test_upgrad_equals_reference_projection(idx):
    J = _jacobians()[idx]
    torch.testing.assert_close(UPGrad(norm_eps=0.0, reg_eps=0.0)(J), ref.upgrad(J), rtol=1e-9, atol=1e-9)


def test_upgrad_preference_vector_equals_reference():
    J = _jacobians()[4]
    pref = torch.tensor([0.5, 0.1, 0.2, 0.1, 0.1], dtype=torch.float64)
    torch.testing.assert_close(UPGrad(pref, norm_eps=0, reg_eps=0)(J), ref.upgrad(J, pref), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("idx", range(2 * len(SHAPES)))
def test_mgda_pcgrad_cagrad_equal_references(idx):
    J = _jacobians()[idx]
    torch.testing.assert_close(MGDA()(J), ref.mgda(J), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(MGDA(epsilon=1e-9, max_iters=5000)(J), ref.mgda(J, 1e-9, 5000), rtol=1e-9, atol=1e-11)
    torch.manual_seed(idx)
    ours = PCGrad()(J)
    torch.manual_seed(idx)
    torch.testing.assert_close(ours, ref.pcgrad(J), rtol=1e-10, atol=1e-12)
    for c, rescale in ((0.4, False), (0.8, True)):
        torch.testing.assert_close(CAGrad(c, rescale=rescale)(J), ref.cagrad(J, c, rescale), rtol=1e-5, atol=1e-6)


def test_imtlg_equals_paper_closed_form():
    checked = 0
    for J in _jacobians():
        if _full_row_rank(J):  # the paper's closed form needs linearly independent rows
            torch.testing.assert_close(IMTLG()(J), ref.imtlg(J), rtol=1e-7, atol=1e-8)
            checked += 1
    assert checked >= 4


@pytest.mark.parametrize("idx", range(2 * len(SHAPES)))
def test_parity_with_torchjd(idx):
    agg = pytest.importorskip("torchjd.aggregation", reason="torchjd (parity extra) is not installed")
    pytest.importorskip("quadprog", reason="torchjd's UPGrad needs quadprog (torchjd[quadprog-projector])")
    J = _jacobians(seed=1)[idx]
    torch.testing.assert_close(UPGrad()(J), agg.UPGrad()(J), rtol=0, atol=1e-6)
    torch.testing.assert_close(MGDA()(J), agg.MGDA()(J), rtol=0, atol=1e-6)
    torch.testing.assert_close(IMTLG()(J), agg.IMTLG()(J), rtol=0, atol=1e-6)
    torch.manual_seed(idx)
    ours = PCGrad()(J)
    torch.manual_seed(idx)
    torch.testing.assert_close(ours, agg.PCGrad()(J), rtol=0, atol=1e-6)
    # float32 Jacobians too (torchjd computes in float32, we in float64: a rounding-level difference)
    J32 = J.float()
    torch.testing.assert_close(UPGrad()(J32), agg.UPGrad()(J32), rtol=0, atol=1e-4)


@pytest.mark.parametrize("idx", range(2 * len(SHAPES)))
def test_upgrad_never_conflicts(idx):
    J = _jacobians(seed=2)[idx]
    for agg in (UPGrad(norm_eps=0.0, reg_eps=0.0), UPGrad(norm_eps=0.0, reg_eps=0.0, pref_vector=torch.rand(len(J)))):
        d = agg(J)
        assert float((J @ d).min()) >= -1e-10 * float(J.norm()) ** 2
    # a projected row never conflicts either, and a non-conflicting Jacobian is left as the mean
    J_pos = torch.rand(4, 6, dtype=torch.float64)  # all inner products > 0: the dual cone contains every row
    torch.testing.assert_close(UPGrad(norm_eps=0, reg_eps=0)(J_pos), J_pos.mean(0), rtol=1e-12, atol=1e-12)


def test_pcgrad_removes_the_conflicting_component():
    g1 = torch.tensor([1.0, 0.0, 0.5], dtype=torch.float64)
    g2 = torch.tensor([-1.0, 1.0, 0.0], dtype=torch.float64)
    J = torch.stack([g1, g2])
    d = PCGrad()(J)
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    assert abs(float(p1 @ g2)) < 1e-12 and abs(float(p2 @ g1)) < 1e-12
    torch.testing.assert_close(d, p1 + p2)
    # without a conflict, PCGrad is the plain sum
    J_pos = torch.rand(5, 4, dtype=torch.float64)
    torch.testing.assert_close(PCGrad()(J_pos), J_pos.sum(0))


def test_mgda_reaches_the_min_norm_point():
    for J in _jacobians(seed=3):
        alpha = MGDA(epsilon=1e-10, max_iters=4000).weights(J @ J.T)
        d = alpha @ J
        assert abs(float(alpha.sum()) - 1) < 1e-12 and float(alpha.min()) >= 0
        # optimality over the simplex: every row has g_iᵀd ≥ ‖d‖² (up to the solver's accuracy)
        assert float((J @ d).min() - d @ d) >= -1e-4 * float(J.norm() ** 2)


def test_imtlg_projections_are_equal():
    for J in _jacobians(seed=4):
        if not _full_row_rank(J):
            continue
        d = IMTLG()(J)
        proj = (J / J.norm(dim=1, keepdim=True)) @ d
        torch.testing.assert_close(proj, proj[0].expand_as(proj), rtol=1e-8, atol=1e-9)


def test_cagrad_limits_and_mean_sum():
    J = _jacobians(seed=5)[5]
    torch.testing.assert_close(CAGrad(0.0)(J), J.mean(0))
    torch.testing.assert_close(Mean()(J), J.mean(0))
    torch.testing.assert_close(Sum()(J), J.sum(0))
    # CAGrad's direction stays in the ball ‖d − g0‖ ≤ c‖g0‖ and improves the worst task over the mean
    c = 0.5
    d = CAGrad(c)(J)
    g0 = J.mean(0)
    assert float((d - g0).norm()) <= c * float(g0.norm()) * (1 + 1e-6)
    assert float((J @ d).min()) >= float((J @ g0).min()) - 1e-9


@pytest.mark.parametrize(
    ("factory", "field"),
    [
        (lambda: UPGrad(norm_eps=-1.0), "norm_eps"),
        (lambda: UPGrad(reg_eps=float("nan")), "reg_eps"),
        (lambda: MGDA(epsilon=0.0), "epsilon"),
        (lambda: MGDA(max_iters=0), "max_iters"),
        (lambda: CAGrad(-0.1), "c"),
        (lambda: CAGrad(0.5, max_iters=1.5), "max_iters"),
        (lambda: UPGrad(pref_vector=torch.tensor([-1.0, 1.0])), "pref_vector"),
    ],
)
def test_bad_hyperparameters_name_the_field(factory, field):
    with pytest.raises(ValueError, match=field):
        factory()


def test_not_a_matrix_raises():
    with pytest.raises(ValueError, match="matrix"):
        UPGrad()(torch.zeros(3))


def test_upgrad_on_degenerate_jacobians():
    """Zero rows (perfectly fitted samples), duplicated rows and a tiny row that conflicts with a large one: the
    exact projection needs a large weight on the tiny row; J d ≥ 0 must still hold to rounding."""
    g = torch.Generator().manual_seed(11)
    J = torch.randn(8, 30, generator=g, dtype=torch.float64)
    tiny = 3e-6 * (-J[0] + 0.1 * torch.randn(30, generator=g, dtype=torch.float64))
    J = torch.cat([J, tiny[None], torch.zeros(2, 30, dtype=torch.float64), J[3:5]])
    # the exact projection (reg_eps = 0) to rounding; torchjd's default reg_eps = 1e-4 (added to the
    # trace-normalized Gramian) trades exactness for conditioning: G w ≥ −reg_eps·tr(G)·w
    for agg, tol in ((UPGrad(norm_eps=0.0, reg_eps=0.0), 1e-9), (UPGrad(), 1e-4)):
        d = agg(J)
        scale = float(J.norm(dim=1).max() * d.norm())
        assert float((J @ d).min()) >= -tol * scale
    torch.testing.assert_close(UPGrad(norm_eps=0.0, reg_eps=0.0)(J), ref.upgrad(J), rtol=1e-6, atol=1e-8)
