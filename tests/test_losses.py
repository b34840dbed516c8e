"""optimlab.losses: StableMax and its cross-entropy (Prieto et al., 2025) against closed forms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from optimlab.losses import StableMaxCrossEntropyLoss, log_stablemax, stablemax, stablemax_cross_entropy


def _s(x):
    return torch.where(x >= 0, x + 1, 1 / (1 - x))


def _closed_form_loss(x, y):
    """−log(s(x_y) / Σ_j s(x_j)) per row, evaluated directly (float64)."""
    s = _s(x)
    return -torch.log(s.gather(-1, y[:, None]).squeeze(-1) / s.sum(-1))


def _closed_form_grad(x, y):
    """∂ℓ/∂x_k = (p_k − δ_ky) · s'(x_k)/s(x_k) = (p_k − δ_ky) / (1 + |x_k|)."""
    s = _s(x)
    p = s / s.sum(-1, keepdim=True)
    return (p - F.one_hot(y, x.shape[-1]).to(x.dtype)) / (1 + x.abs())


def test_s_known_values_and_stablemax_hand_computed():
    x = torch.tensor([0.0, 1.0, -1.0, 3.0], dtype=torch.float64)
    # s = 1, 2, 1/2, 4 -> sum 7.5
    expected = torch.tensor([1.0, 2.0, 0.5, 4.0], dtype=torch.float64) / 7.5
    torch.testing.assert_close(stablemax(x), expected, rtol=1e-15, atol=0)
    torch.testing.assert_close(log_stablemax(x), expected.log(), rtol=1e-15, atol=1e-15)
    loss = stablemax_cross_entropy(x, torch.tensor(3))  # unbatched
    torch.testing.assert_close(loss, torch.tensor(7.5 / 4, dtype=torch.float64).log(), rtol=1e-15, atol=0)


def test_stablemax_is_a_distribution_with_softmax_ordering():
    x = torch.randn(7, 11, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 20
    p = stablemax(x)
    assert bool((p > 0).all())
    torch.testing.assert_close(p.sum(-1), torch.ones(7, dtype=torch.float64))
    assert torch.equal(p.argsort(-1), x.argsort(-1))
    torch.testing.assert_close(log_stablemax(x), p.log(), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(stablemax(x, dim=0), stablemax(x.T).T)


def test_cross_entropy_matches_closed_form_float64():
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(32, 10, generator=gen, dtype=torch.float64) * 30).requires_grad_(True)
    y = torch.randint(0, 10, (32,), generator=gen)
    loss = stablemax_cross_entropy(x, y, reduction="none")
    torch.testing.assert_close(loss, _closed_form_loss(x.detach(), y), rtol=1e-12, atol=1e-14)
    loss.sum().backward()
    torch.testing.assert_close(x.grad, _closed_form_grad(x.detach(), y), rtol=1e-12, atol=1e-15)
    assert torch.autograd.gradcheck(
        lambda z: stablemax_cross_entropy(z, y[:3]), (x.detach()[:3].clone().requires_grad_(),)
    )


def test_float32_gradients_survive_where_softmax_collapses():
    """Logits this large make float32 softmax-CE gradients exactly zero (Softmax Collapse); StableMax-CE keeps
    non-zero gradients that match the float64 closed form."""
    x64 = torch.tensor(
        [[200.0, 0.0, 0.0], [150.0, -20.0, 3.0], [1e4, 0.0, -1e4], [1e6, -3.0, 2.0]], dtype=torch.float64
    )
    y = torch.zeros(4, dtype=torch.long)
    xs = x64.float().requires_grad_(True)
    F.cross_entropy(xs, y, reduction="sum").backward()
    assert bool((xs.grad == 0).all())  # softmax: every gradient exactly zero
    assert float(F.cross_entropy(xs.detach(), y)) == 0.0
    xm = x64.float().requires_grad_(True)
    loss = stablemax_cross_entropy(xm, y, reduction="sum")
    loss.backward()
    assert bool((xm.grad != 0).all())  # including the true class (no cancellation in p_y − 1)
    torch.testing.assert_close(xm.grad.double(), _closed_form_grad(x64, y), rtol=1e-5, atol=0)
    torch.testing.assert_close(loss.double(), _closed_form_loss(x64, y).sum(), rtol=1e-5, atol=0)


def test_reductions_ignore_index_and_layouts():
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(4, 5, 3, generator=gen)  # (N, C, d)
    y = torch.randint(0, 5, (4, 3), generator=gen)
    y[1, 2] = -100
    none = stablemax_cross_entropy(x, y, reduction="none")
    assert none.shape == (4, 3) and float(none[1, 2]) == 0.0
    flat = stablemax_cross_entropy(x.movedim(1, -1).reshape(-1, 5), y.reshape(-1), reduction="none")
    torch.testing.assert_close(none.reshape(-1), flat)
    valid = y != -100
    torch.testing.assert_close(stablemax_cross_entropy(x, y), none[valid].mean())
    torch.testing.assert_close(stablemax_cross_entropy(x, y, reduction="sum"), none.sum())
    module = StableMaxCrossEntropyLoss(reduction="sum")
    torch.testing.assert_close(module(x, y), none.sum())
    with pytest.raises(ValueError, match="reduction"):
        stablemax_cross_entropy(x, y, reduction="avg")
    with pytest.raises(IndexError):
        stablemax_cross_entropy(x[:, :, 0], torch.tensor([0, 1, 2, 5]))


def test_half_precision_inputs_compute_in_float32():
    x = torch.randn(3, 4, generator=torch.Generator().manual_seed(3)) * 50
    y = torch.tensor([0, 3, 1])
    for dtype in (torch.bfloat16, torch.float16):
        xh = x.to(dtype).requires_grad_(True)
        loss = stablemax_cross_entropy(xh, y)
        assert loss.dtype == torch.float32
        torch.testing.assert_close(loss, stablemax_cross_entropy(x.to(dtype).float(), y))
        loss.backward()
        assert xh.grad.dtype == dtype and bool(xh.grad.isfinite().all())


def test_single_class_has_zero_loss_and_gradient():
    x = torch.tensor([[3.0], [-2.0]], requires_grad=True)
    loss = stablemax_cross_entropy(x, torch.tensor([0, 0]))
    loss.backward()
    assert float(loss.detach()) == 0.0 and torch.equal(x.grad, torch.zeros_like(x))
