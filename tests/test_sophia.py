"""Sophia-H and Sophia-G invariants: the per-coordinate step never exceeds lr (plus the decay term), the refresh
schedule, the negative-curvature fallback, Sophia-G's closure contract (logits), parity of the Gauss–Newton–Bartlett
path with the paper's reference, the create_graph requirement, exact resume between two refreshes."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from optimlab.optim.sophia import SophiaG, SophiaH
from tests import _second_order as S
from tests import optim_db as DB
from tests.reference.sophia import sophia_g_gnb, sophia_h

HP_H = DB.test_hparams("sophia_h")
HP_G = {**DB.test_hparams("sophia_g"), "estimator": "gnb"}


def _relative_moves(cls, hp, logits, steps=12):
    """max over coordinates of |p_new − p_old·(1 − lr·λ)| / lr, per step and parameter."""
    params = [p.requires_grad_(True) for p in S.mlp_params()]
    opt = S.make(cls, params, **hp)
    moves = []
    for t in range(steps):
        before = [p.detach().clone() for p in params]
        S.run(opt, params, 1, start=t, logits=logits)
        for i, (p, b) in enumerate(zip(params, before)):
            group = opt.param_groups[0 if i < 2 else 1]
            lr, wd = group["lr"], group["weight_decay"]
            moves.append(((p.detach() - b * (1 - lr * wd)).abs() / lr).max().item())
    return moves


@pytest.mark.parametrize("cls,hp,logits", [(SophiaH, HP_H, False), (SophiaG, HP_G, True)])
def test_per_coordinate_step_never_exceeds_lr(cls, hp, logits):
    # a large lr and a tiny rho: most coordinates are clipped, so the bound is attained
    moves = _relative_moves(cls, {**hp, "lr": 0.3, "rho": 1e-4}, logits)
    assert max(moves) <= 1 + 1e-12
    assert max(moves) > 1 - 1e-9  # clipped coordinates move by exactly lr


def test_negative_curvature_falls_back_to_a_sign_step():
    """On a concave function the Hessian estimate is negative: max(ρh, eps) = eps, so |Δx| = lr exactly."""
    x = torch.tensor([0.3, -0.2, 1.0], dtype=torch.float64, requires_grad=True)
    opt = SophiaH([x], lr=0.01, weight_decay=0.0, update_period=1)
    for _ in range(3):
        before = x.detach().clone()

        def closure():
            opt.zero_grad()
            loss = -(x**2).sum()
            loss.backward(create_graph=True)
            return loss

        opt.step(closure)
        assert (opt.state[x]["hessian"] < 0).all()
        torch.testing.assert_close((x.detach() - before).abs(), torch.full((3,), 0.01, dtype=torch.float64))


def test_hessian_refreshed_every_k_steps_and_refresh_due():
    params = [p.requires_grad_(True) for p in S.mlp_params()]
    opt = S.make(SophiaH, params, **{**HP_H, "update_period": 4})
    due, changed, last = [], [], opt.state[params[0]].get("hessian")
    for t in range(9):
        due.append(opt.refresh_due())
        S.run(opt, params, 1, start=t)
        h = opt.state[params[0]]["hessian"].clone()
        changed.append(last is None or not torch.equal(h, last))
        last = h
    expected = [t % 4 == 0 for t in range(9)]  # steps 1, 5, 9
    assert due == expected and changed == expected


def test_sophia_h_matches_the_reference_on_a_problem_with_cross_terms():
    params0 = S.mlp_params()
    ref_params, ref_states = S.reference_run(sophia_h, params0, HP_H, 8)
    params = [p.clone().requires_grad_(True) for p in params0]
    opt = S.run(S.make(SophiaH, params, **HP_H), params, 8)
    S.assert_matches_reference(opt, params, ref_params, ref_states)


def test_sophia_g_gauss_newton_bartlett_matches_the_reference():
    params0 = S.mlp_params()
    ref = [p.clone() for p in params0]
    states = [{} for _ in ref]
    per_param = [
        {**HP_G, **({"lr": HP_G["lr"] / 2, "weight_decay": HP_G["weight_decay"] / 2} if i >= 2 else {})}
        for i in range(4)
    ]
    for t in range(7):
        ref, states = sophia_g_gnb(ref, lambda ps, t=t: S.mlp_logits(ps, t), S.mlp_labels(t), states, per_param)
    params = [p.clone().requires_grad_(True) for p in params0]
    opt = S.run(S.make(SophiaG, params, **HP_G), params, 7, logits=True)
    S.assert_matches_reference(opt, params, ref, states)
    # between refreshes the closure may return the bare loss
    assert not opt.refresh_due()
    S.run(opt, params, 1, start=7)


def test_sophia_g_needs_logits_with_their_graph():
    params = [p.requires_grad_(True) for p in S.mlp_params()]
    opt = S.make(SophiaG, params, **HP_G)
    with pytest.raises(RuntimeError, match=r"\(loss, logits\)"):
        S.run(opt, params, 1)  # bare loss on a refresh step

    def freed():
        opt.zero_grad()
        logits = S.mlp_logits(params, 0)
        loss = F.cross_entropy(logits, S.mlp_labels(0))
        loss.backward()  # no retain_graph: the graph is gone
        return loss, logits

    with pytest.raises(RuntimeError, match="retain_graph=True"):
        opt.step(freed)


def test_sophia_g_mask_counts_only_the_kept_positions():
    """A mask that keeps every position is the same as no mask; the estimate scales with the kept count."""
    outs = []
    for mask in (None, torch.ones(24, dtype=torch.bool)):
        params = [p.requires_grad_(True) for p in S.mlp_params()]
        opt = SophiaG(params, **{**HP_G, "update_period": 1})

        def closure(opt=opt, params=params, mask=mask):
            opt.zero_grad()
            logits = S.mlp_logits(params, 0)
            loss = F.cross_entropy(logits, S.mlp_labels(0))
            loss.backward(retain_graph=True)
            return (loss, logits) if mask is None else (loss, logits, mask)

        opt.step(closure)
        outs.append([opt.state[p]["hessian"].clone() for p in params])
    for a, b in zip(*outs):
        assert torch.equal(a, b)


def test_sophia_h_without_create_graph_raises_a_clear_error():
    params = [p.requires_grad_(True) for p in S.mlp_params()]
    with pytest.raises(RuntimeError, match="create_graph=True"):
        S.run(S.make(SophiaH, params, **HP_H), params, 1, create_graph=False)


@pytest.mark.parametrize("cls,hp,logits", [(SophiaH, HP_H, False), (SophiaG, HP_G, True)])
def test_exact_resume_between_two_refreshes(cls, hp, logits):
    """update_period=3: refreshes at steps 1, 4, 7; checkpoint after step 5; step 7's probes (Sophia-H) or
    sampled labels (Sophia-G) must be those of the uninterrupted run."""
    hp = {**hp, "update_period": 3}
    straight = S.assert_exact_resume(lambda ps: S.make(cls, ps, **hp), S.mlp_params(torch.float32), 5, 3, logits=logits)
    other = [p.clone().requires_grad_(True) for p in S.mlp_params(torch.float32)]
    S.run(S.make(cls, other, seed=1, **hp), other, 8, logits=logits)
    assert not all(torch.equal(a, b) for a, b in zip(straight, other))


def test_bf16_parameters_keep_fp32_state_with_gnb():
    params = [p.to(torch.bfloat16).requires_grad_(True) for p in S.mlp_params()]
    opt = S.run(S.make(SophiaG, params, **HP_G), params, 4, logits=True)
    assert all(p.dtype == torch.bfloat16 for p in params)
    assert all(v.dtype == torch.float32 for p in params for k, v in opt.state[p].items() if k != "step")
