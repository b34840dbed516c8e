"""AdEMAMix: the α and β3 warm-up schedulers, the no-warm-up branch, and α = 0 = AdamW."""

from __future__ import annotations

import math

import pytest
import torch

import optimlab
from optimlab.optim.ademamix import alpha_schedule, beta3_schedule
from tests import _harness as H
from tests.reference.ademamix import ademamix as reference


def half_life_schedule(t, beta_start, beta_end, T):
    """The β3 warm-up as the authors describe it: the half-life h(β) = ln ½ / ln β grows linearly from h(β_start)
    to h(β_end) over T steps, then stays (written independently of the closed form used by the optimizer)."""
    if t >= T:
        return beta_end
    a = t / T
    h = (1 - a) * math.log(0.5) / math.log(beta_start) + a * math.log(0.5) / math.log(beta_end)
    return 0.5 ** (1 / h)


@pytest.mark.parametrize("beta1,beta3", [(0.9, 0.9999), (0.5, 0.999), (0.95, 0.99)])
def test_beta3_schedule_is_linear_in_half_life(beta1, beta3):
    T = 100
    for t in (1, 2, 17, 50, 99, 100, 101, 1000):
        expected = half_life_schedule(t, beta1, beta3, T)
        assert math.isclose(beta3_schedule(t, beta1, beta3, T), expected, rel_tol=1e-12)
        as_tensors = beta3_schedule(
            torch.tensor(float(t)),
            torch.tensor(beta1, dtype=torch.float64),
            torch.tensor(beta3, dtype=torch.float64),
            torch.tensor(float(T), dtype=torch.float64),
        )
        assert math.isclose(as_tensors.item(), expected, rel_tol=1e-12)
    assert beta3_schedule(T, beta1, beta3, T) <= beta3 and beta3_schedule(10 * T, beta1, beta3, T) <= beta3


def test_beta3_schedule_edge_betas_stay_finite():
    """β1 = 0 (ln 0 = −∞) and β3 = 0 are allowed hyperparameters: no NaN, no ZeroDivisionError, floats == tensors."""
    for beta1, beta3 in [(0.0, 0.999), (0.9, 0.0), (0.0, 0.0)]:
        for t in (1, 5, 10, 11):
            value = beta3_schedule(t, beta1, beta3, 10)
            tensor = beta3_schedule(
                torch.tensor(float(t)), torch.tensor(beta1), torch.tensor(beta3), torch.tensor(10.0)
            )
            assert 0.0 <= value <= beta3 and math.isfinite(value)
            assert math.isclose(tensor.item(), value, rel_tol=1e-6, abs_tol=1e-12)
    assert math.isclose(beta3_schedule(5, 0.0, 0.999, 10), 0.999**2, rel_tol=1e-12)  # β3^(T/t) when β1 = 0


def test_alpha_schedule():
    assert alpha_schedule(1, 5.0, 10) == 0.5
    assert alpha_schedule(10, 5.0, 10) == 5.0
    assert alpha_schedule(30, 5.0, 10) == 5.0
    assert alpha_schedule(torch.tensor(4.0), torch.tensor(5.0), torch.tensor(10.0)).item() == 2.0


def test_no_warmup_branch_matches_reference():
    """The registry's test_hparams use a warm-up (T = 10 < 20 steps); this covers t_alpha_beta3=None."""
    hp = dict(lr=1e-2, betas=(0.8, 0.95, 0.99), alpha=5.0, t_alpha_beta3=None, eps=1e-6, weight_decay=0.1)
    params0 = H.make_params()
    ref_params, ref_states = H.run_reference(reference, params0, hp, H.STEPS)
    params = [p.clone().requires_grad_(True) for p in params0]
    opt = H.run_optimizer(lambda ps: optimlab.AdEMAMix(H.split_groups(ps, hp), **hp), params, H.STEPS)
    for i, (p, rp) in enumerate(zip(params, ref_params)):
        torch.testing.assert_close(p.detach(), rp, rtol=1e-10, atol=1e-12)
        for key in ("exp_avg", "exp_avg_slow", "exp_avg_sq"):
            torch.testing.assert_close(opt.state[p][key], ref_states[i][key], rtol=1e-10, atol=1e-12)


def test_alpha_zero_is_adamw():
    """With α = 0 the slow EMA is tracked but unused: the trajectory is torch.optim.AdamW's."""
    hp = dict(lr=1e-2, eps=1e-6, weight_decay=0.1)
    params0 = H.make_params()
    ours = [p.clone().requires_grad_(True) for p in params0]
    theirs = [p.clone().requires_grad_(True) for p in params0]
    H.run_optimizer(lambda ps: optimlab.AdEMAMix(ps, betas=(0.8, 0.95, 0.99), alpha=0.0, **hp), ours, H.STEPS)
    H.run_optimizer(lambda ps: torch.optim.AdamW(ps, betas=(0.8, 0.95), foreach=False, **hp), theirs, H.STEPS)
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


@pytest.mark.compile
def test_compiled_runs_past_the_warmup():
    """With T = 3 the 6 compiled steps cover the warm-up and the constant phase (the matrix's T = 10 does not)."""
    hp = dict(lr=1e-2, betas=(0.8, 0.95, 0.99), alpha=5.0, t_alpha_beta3=3, eps=1e-6, weight_decay=0.1)
    params0 = H.make_params(torch.float32)
    eager = [p.clone().requires_grad_(True) for p in params0]
    comp = [p.clone().requires_grad_(True) for p in params0]
    H.run_optimizer(lambda ps: optimlab.AdEMAMix(H.split_groups(ps, hp), **hp), eager, 6)
    H.run_optimizer(lambda ps: optimlab.AdEMAMix(H.split_groups(ps, hp), **hp, compile=True), comp, 6)
    for p, q in zip(eager, comp):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
