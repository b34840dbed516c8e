"""Adam+CM: the buffer's replacement rule on a hand-worked sequence, reduction to Adam, and the group priority."""

from __future__ import annotations

import math

import pytest
import torch

from optimlab.optim.adam_cm import AdamCM
from tests import _harness as H
from tests.reference.adam_cm import adam_cm

INF = math.inf


def test_buffer_follows_the_hand_worked_priority_queue():
    """β1 = 0 (so m_t = g_t), C = 2, λ = 0.5, gradients 3, 1, 2, 0.5, -0.1:
    t=1 free slot ← 3 (priority 3), t=2 free slot ← 1 (1); t=3 ‖g‖=2 beats the smallest priority 0.5 → replaces
    the 1; t=4 0.5 beats 0.375 → replaces the 3; t=5 0.1 < 0.25 → no change. Priorities are halved after each
    insertion."""
    w = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = AdamCM([w], lr=0.1, betas=(0.0, 0.999), capacity=2, priority_decay=0.5, priority="tensor")
    expected = [
        ([3.0, 0.0], [1.5, -INF]),
        ([3.0, 1.0], [0.75, 0.5]),
        ([3.0, 2.0], [0.375, 1.0]),
        ([0.5, 2.0], [0.25, 0.5]),
        ([0.5, 2.0], [0.125, 0.25]),
    ]
    means_before = [0.0, 3.0, 2.0, 2.5, 1.25]
    for g, mean, (buf, prio) in zip([3.0, 1.0, 2.0, 0.5, -0.1], means_before, expected):
        w.grad = torch.tensor([g], dtype=torch.float64)
        v_before = opt.state[w]["exp_avg_sq"].clone() if opt.state[w] else torch.zeros(1, dtype=torch.float64)
        opt.step()
        state = opt.state[w]
        assert state["critical_momenta"].flatten().tolist() == buf
        assert state["priorities"].tolist() == prio
        # the second moment is the EMA of the aggregate m_t + mean(buffer before insertion) squared
        torch.testing.assert_close(state["exp_avg_sq"], 0.999 * v_before + 0.001 * (g + mean) ** 2)


def test_zero_capacity_and_beta1_zero_is_adamw():
    """With no buffer the aggregate is m_t, and with β1 = 0 that is g_t: v is then Adam's EMA of g², so the
    trajectory is torch.optim.AdamW's with betas (0, β2)."""
    hp = dict(lr=1e-2, betas=(0.0, 0.95), eps=1e-6, weight_decay=0.1)
    params0 = H.make_params()
    ours = [p.clone().requires_grad_(True) for p in params0]
    theirs = [p.clone().requires_grad_(True) for p in params0]
    opt = H.run_optimizer(lambda ps: AdamCM(H.split_groups(ps, hp), capacity=0, **hp), ours, H.STEPS)
    H.run_optimizer(lambda ps: torch.optim.AdamW(H.split_groups(ps, hp), foreach=False, **hp), theirs, H.STEPS)
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
    assert set(opt.state[ours[0]]) == {"step", "exp_avg", "exp_avg_sq"}


def test_first_step_with_an_empty_buffer_equals_the_bufferless_step():
    a = [p.requires_grad_(True) for p in H.make_params()]
    b = [p.clone().detach().requires_grad_(True) for p in a]
    H.run_optimizer(lambda ps: AdamCM(ps, lr=0.1, capacity=4), a, 1)
    H.run_optimizer(lambda ps: AdamCM(ps, lr=0.1, capacity=0), b, 1)
    for p, q in zip(a, b):
        assert torch.equal(p, q)


def _group_reference(params0, hp, steps):
    """The reference with the group's Σ‖g_i‖ as every tensor's priority (the authors' ``synced=True``)."""
    params = [p.detach().clone() for p in params0]
    states = [{} for _ in params]
    groups = [range(0, 2), range(2, len(params))]
    for t in range(steps):
        leaves = [p.clone().requires_grad_(True) for p in params]
        grads = torch.autograd.grad(H.objective(leaves, t), leaves)
        for gi, idx in enumerate(groups):
            key = sum(torch.linalg.vector_norm(grads[i]) for i in idx)
            for i in idx:
                params[i], states[i] = adam_cm(
                    params[i], grads[i], states[i], **H.group_hparams(hp, gi), priority_value=key
                )
    return params, states


GROUP_HP = dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, capacity=3, priority_decay=0.7)


def test_group_priority_matches_the_reference():
    params0 = H.make_params()
    ref_params, ref_states = _group_reference(params0, GROUP_HP, H.STEPS)
    params = [p.clone().requires_grad_(True) for p in params0]
    opt = H.run_optimizer(
        lambda ps: AdamCM(H.split_groups(ps, GROUP_HP), priority="group", **GROUP_HP), params, H.STEPS
    )
    for i, (p, rp) in enumerate(zip(params, ref_params)):
        torch.testing.assert_close(p.detach(), rp, rtol=1e-10, atol=1e-12, msg=f"param {i}")
        for key, value in opt.state[p].items():
            if key != "step":
                torch.testing.assert_close(value, ref_states[i][key], rtol=1e-10, atol=1e-12, msg=f"{key} of {i}")
    # every tensor of a group saw the same priorities, so their buffers hold entries from the same steps
    assert torch.equal(opt.state[params[0]]["priorities"], opt.state[params[1]]["priorities"])


def test_group_priority_resumes_exactly():
    n = 4
    params0 = H.make_params(torch.float32)
    make = lambda ps: AdamCM(H.split_groups(ps, GROUP_HP), **GROUP_HP)  # noqa: E731
    straight = [p.clone().requires_grad_(True) for p in params0]
    H.run_optimizer(make, straight, 2 * n)
    first = [p.clone().requires_grad_(True) for p in params0]
    opt = H.run_optimizer(make, first, n)
    saved = H.roundtrip({"params": [p.detach() for p in first], "optim": opt.state_dict()})
    resumed = [p.clone().requires_grad_(True) for p in saved["params"]]
    opt2 = make(resumed)
    opt2.load_state_dict(saved["optim"])
    H.run_optimizer(None, resumed, n, start=n, opt=opt2)
    for p, q in zip(straight, resumed):
        assert torch.equal(p, q)


def test_group_priority_ignores_a_skipped_non_finite_gradient():
    a = torch.ones(3, requires_grad=True)
    b = torch.ones(2, requires_grad=True)
    opt = AdamCM([a, b], capacity=2)
    a.grad = torch.tensor([3.0, 0.0, 4.0])
    b.grad = torch.tensor([float("nan"), 1.0])
    opt.step()
    assert opt.param_groups[0]["nonfinite_skips"] == 1
    assert opt.state[a]["priorities"].tolist() == pytest.approx([5.0 * 0.7, -INF])
    assert float(opt.state[b]["step"]) == 0 and opt.state[b]["priorities"].tolist() == [-INF, -INF]


@pytest.mark.compile
def test_group_priority_compiled_matches_eager():
    params0 = H.make_params(torch.float32)
    eager = [p.clone().requires_grad_(True) for p in params0]
    comp = [p.clone().requires_grad_(True) for p in params0]
    H.run_optimizer(lambda ps: AdamCM(H.split_groups(ps, GROUP_HP), **GROUP_HP), eager, 6)
    H.run_optimizer(lambda ps: AdamCM(H.split_groups(ps, GROUP_HP), **GROUP_HP, compile=True), comp, 6)
    for p, q in zip(eager, comp):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
