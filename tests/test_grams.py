"""Grams: the update has the sign of the current gradient, and parity with the authors' package when installed."""

from __future__ import annotations

import pytest
import torch

import optimlab
from tests import _harness as H


def _steps(opt, params, steps, start=0):
    """Gradient outside the optimizer and ``step()`` without a closure (grams-pytorch runs a closure under
    no_grad, so it cannot take one)."""
    for t in range(start, start + steps):
        for p in params:
            p.grad = None
        with torch.enable_grad():
            H.objective(params, t).backward()
        opt.step()


def test_update_direction_is_minus_sign_of_current_gradient():
    params = [p.requires_grad_(True) for p in H.make_params()]
    opt = optimlab.create("grams", params, lr=1e-2)
    _steps(opt, params, 3)  # momentum now disagrees with the gradient in some coordinates
    before = [p.detach().clone() for p in params]
    for p in params:
        p.grad = None
    H.objective(params, 3).backward()
    grads = [p.grad.clone() for p in params]
    opt.step()
    for p, q, g in zip(params, before, grads):
        assert torch.equal(p.grad, g), "p.grad was modified"
        assert torch.equal(torch.sign(p.detach() - q), -torch.sign(g))


def test_matches_authors_package_grams_pytorch():
    """grams-pytorch (Cao et al.'s PyPI package; not a dependency of optimlab). It adds ε to √v instead of √v̂,
    so the two agree exactly only for ε = 0, which is what is compared here (float64, 20 steps, two groups)."""
    grams = pytest.importorskip("grams", reason="the authors' package grams-pytorch is not installed")
    if not hasattr(grams, "Grams"):
        pytest.skip("the importable 'grams' module is not grams-pytorch")
    hp = dict(lr=1e-2, betas=(0.8, 0.95), eps=0.0, weight_decay=0.1)
    params0 = H.make_params()
    ours = [p.clone().requires_grad_(True) for p in params0]
    theirs = [p.clone().requires_grad_(True) for p in params0]
    opt = optimlab.Grams(H.split_groups(ours, hp), **hp)
    ref = grams.Grams(H.split_groups(theirs, hp), **hp)
    _steps(opt, ours, H.STEPS)
    _steps(ref, theirs, H.STEPS)
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(opt.state[p][key], ref.state[q][key], rtol=1e-10, atol=1e-12)
