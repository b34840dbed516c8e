"""Adafactor against torch.optim.Adafactor beyond the matrix's shapes (conv-like 4-D tensors, 0-d tensors, eps1 set
and None, maximize, weight decay), its sublinear state, and the factored estimate on a rank-1 second moment."""

from __future__ import annotations

import pytest
import torch

import optimlab


def _params(dtype):
    g = torch.Generator().manual_seed(0)
    shapes = [(6, 4, 3, 3), (10, 7), (5,), ()]
    return [torch.randn(s, generator=g, dtype=dtype) for s in shapes]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "hp",
    [
        dict(),
        dict(lr=0.3, eps=(1e-15, 1e-3), weight_decay=0.05, d=2.0, beta2_decay=-0.5),
        dict(lr=0.05, maximize=True),
    ],
)
def test_matches_torch_adafactor(dtype, hp):
    ours = [p.clone().requires_grad_(True) for p in _params(dtype)]
    theirs = [p.clone().requires_grad_(True) for p in _params(dtype)]
    a = optimlab.Adafactor(ours, **hp)
    b = torch.optim.Adafactor(theirs, foreach=False, **hp)
    for t in range(15):
        for opt, ps in ((a, ours), (b, theirs)):
            opt.zero_grad()
            g = torch.Generator().manual_seed(t)
            sum(((p - torch.randn(p.shape, generator=g, dtype=dtype)) ** 2).sum() for p in ps).backward()
            opt.step()
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, **tol)
        assert set(a.state[p]) == set(b.state[q])
        for key in b.state[q]:
            torch.testing.assert_close(a.state[p][key], b.state[q][key].to(a.state[p][key].dtype), **tol)


def test_state_is_sublinear():
    p = torch.zeros(512, 256, requires_grad=True)
    opt = optimlab.Adafactor([p])
    p.grad = torch.randn(512, 256)
    opt.step()
    assert opt.state[p]["row_var"].shape == (512, 1) and opt.state[p]["col_var"].shape == (1, 256)
    assert optimlab.state_bytes(opt) == (512 + 256) * 4 + 4 == optimlab.spec("adafactor").state_bytes((512, 256))
    conv = optimlab.spec("adafactor").state_bytes((64, 32, 3, 3))
    assert conv == (64 * 32 * 3 + 64 * 32 * 3) * 4 + 4  # factored over the last two dims (3 × 3)


def test_factored_estimate_is_exact_for_a_rank_one_second_moment():
    """If g² = a bᵀ every step, R·C / mean(R) reproduces g² exactly (Shazeer & Stern 2018, §3)."""
    a = torch.rand(8, 1, dtype=torch.float64) + 0.5
    b = torch.rand(1, 6, dtype=torch.float64) + 0.5
    g = torch.sqrt(a @ b)
    R = (g * g).mean(dim=-1, keepdim=True)
    C = (g * g).mean(dim=-2, keepdim=True)
    torch.testing.assert_close(R @ C / R.mean(dim=-2, keepdim=True), g * g)
