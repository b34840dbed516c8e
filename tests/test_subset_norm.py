"""Subset-Norm / Subspace-Momentum properties (Nguyen & Nguyen 2024, arXiv:2411.07120): the grouping rules, the
special cases that reduce to AdamW, the subspace-momentum decomposition, reference parity for every switch
combination, and the memory the paper claims."""

from __future__ import annotations

import pytest
import torch

import optimlab
from optimlab.optim.subset_norm import largest_divisor_at_most, subset_shape
from tests import _harness as H
from tests.reference.subset_norm import adamw_sn as reference


def test_grouping_rules():
    assert subset_shape((6, 2), None) == (6, 1)  # m ≥ n: one subset per row (size n)
    assert subset_shape((4, 5), None) == (1, 5)  # m < n: one per column (size m)
    assert subset_shape((2, 3, 4), None) == (1, 12)  # seen as 2 × 12
    assert subset_shape((7,), None) is None  # vectors stay coordinate-wise
    assert subset_shape((4, 5), 4) == (5, 1)  # 20 = 5 subsets of 4
    assert subset_shape((4, 5), 6) == (4, 1)  # largest divisor of 20 that is ≤ 6 is 5
    assert subset_shape((3,), 100) == (1, 1)  # one subset: AdamW-Norm per tensor
    assert [largest_divisor_at_most(12, k) for k in (1, 5, 7, 12, 99)] == [1, 4, 6, 12, 12]


def _run(name, params, steps=8, **hp):
    opt = optimlab.create(name, params, **hp)
    for t in range(steps):
        opt.zero_grad()
        H.objective(params, t).backward()
        opt.step()
    return opt


def test_subsets_of_size_one_are_adamw():
    """subset_size = 1 shares nothing: the trajectory is AdamW's (only v's storage shape differs)."""
    a = [p.requires_grad_(True) for p in H.make_params()]
    b = [p.detach().clone().requires_grad_(True) for p in a]
    _run("adamw_sn", a, subset_size=1, weight_decay=0.1, eps=1e-8)
    _run("adamw", b, weight_decay=0.1)
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_subspace_momentum_without_momentum_is_subset_norm_sgd():
    """β1 = 0: P·Pᵀg + (g − P·Pᵀg) = g, so SN-SM steps exactly as SN does (the projection cancels)."""
    a = [p.requires_grad_(True) for p in H.make_params()]
    b = [p.detach().clone().requires_grad_(True) for p in a]
    opt = _run("adamw_snsm", a, rank=1, update_proj_gap=3, betas=(0.0, 0.99))
    _run("adamw_sn", b, betas=(0.0, 0.99))
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
    assert opt.state[a[1]]["exp_avg"].shape == (1, 5)  # momentum lives in the rank-1 subspace


@pytest.mark.parametrize(
    "hp",
    [
        dict(subset_norm=False, rank=1, update_proj_gap=4),  # Subspace-Momentum alone
        dict(subset_norm=True, subset_size=3, rank=1, update_proj_gap=2),
        dict(subset_norm=True, rank=2, rank_fraction=0.5, update_proj_gap=5),
        dict(subset_norm=True, subset_size=None, rank=None),
    ],
)
def test_reference_parity_for_every_switch(hp):
    spec = optimlab.spec("adamw_snsm")
    full = {**spec.defaults, "lr": 1e-2, "betas": (0.8, 0.95), "weight_decay": 0.1, **hp}
    params0 = H.make_params(shapes=[(6, 8), (9, 4), (2, 3, 4), (5,)])
    ref_params, ref_states = H.run_reference(reference, params0, full, 12)
    params = [p.clone().requires_grad_(True) for p in params0]
    opt = H.run_optimizer(lambda ps: spec.cls(H.split_groups(ps, full), **full), params, 12)
    for i, (p, rp) in enumerate(zip(params, ref_params)):
        torch.testing.assert_close(p.detach(), rp, rtol=1e-10, atol=1e-12, msg=f"param {i}")
        for key, value in opt.state[p].items():
            if key != "step":
                torch.testing.assert_close(value, ref_states[i][key], rtol=1e-10, atol=1e-12, msg=key)


def test_momentum_is_reset_when_the_subspace_is_refreshed():
    p = torch.randn(8, 12, requires_grad=True)
    opt = optimlab.create("adamw_snsm", [p], rank=2, update_proj_gap=3)
    seen = []
    for t in range(4):
        p.grad = torch.randn(8, 12, generator=torch.Generator().manual_seed(t))
        before = opt.state[p]["exp_avg"].clone() if opt.state[p] else None
        opt.step()
        seen.append((before, opt.state[p]["exp_avg"].clone(), opt.state[p]["projector"].clone()))
    # step 4 refreshes (t = 1, 4, ...): the new momentum is (1 − β1)·Pᵀg alone, whatever it held before
    P = seen[3][2]
    g = torch.randn(8, 12, generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(seen[3][1], 0.1 * (P.T @ g))
    assert not torch.equal(seen[3][0], torch.zeros_like(seen[3][0]))


def test_state_memory_matches_the_paper():
    """A 512×512 matrix: AdamW keeps 2·262144 numbers; SN keeps m (262144) + 512 subset norms; SN-SM at r = 64
    (m/8) keeps 64·512 momentum + 512·64 projector + 512 norms — under 20% of AdamW's (the paper's headline claim)."""
    shape = (512, 512)
    adamw = optimlab.spec("adamw").state_bytes(shape)
    sn = optimlab.spec("adamw_sn").state_bytes(shape)
    snsm = optimlab.spec("adamw_snsm").state_bytes(shape, rank=64)
    assert sn == (262144 + 512) * 4 + 4
    assert snsm == (64 * 512 + 512 * 64 + 512) * 4 + 4
    assert sn / adamw < 0.51 and snsm / adamw < 0.2
    p = torch.zeros(shape, requires_grad=True)
    opt = optimlab.create("adamw_snsm", [p], rank=64)
    p.grad = torch.randn(shape)
    opt.step()
    assert optimlab.state_bytes(opt) == snsm


def test_trains_an_mlp():
    torch.manual_seed(0)
    x = torch.randn(256, 16)
    y = (x[:, :4].sum(1, keepdim=True) > 0).float()
    for name, extra in (("adamw_sn", {}), ("adamw_snsm", {"rank": 4, "update_proj_gap": 20})):
        torch.manual_seed(1)
        model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1))
        opt = optimlab.create(name, model.parameters(), lr=1e-2, **extra)
        losses = []
        for _ in range(150):
            opt.zero_grad()
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        assert losses[-1] < 0.35 * losses[0], (name, losses[0], losses[-1])
