"""EXAdam: the default (constant step size) branch against the reference, and the version-1 dynamic step size."""

from __future__ import annotations

import math

import torch

import optimlab
from optimlab.optim.exadam import dynamic_step_factor
from tests import _harness as H
from tests.reference.exadam import exadam as reference


def test_default_branch_matches_reference():
    """The registry's test_hparams exercise dynamic_step_size=True; this covers the default False branch."""
    hp = dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, dynamic_step_size=False)
    params0 = H.make_params()
    ref_params, ref_states = H.run_reference(reference, params0, hp, H.STEPS)
    params = [p.clone().requires_grad_(True) for p in params0]
    opt = H.run_optimizer(lambda ps: optimlab.EXAdam(H.split_groups(ps, hp), **hp), params, H.STEPS)
    for i, (p, rp) in enumerate(zip(params, ref_params)):
        torch.testing.assert_close(p.detach(), rp, rtol=1e-10, atol=1e-12)
        for key in ("exp_avg", "exp_avg_sq"):
            torch.testing.assert_close(opt.state[p][key], ref_states[i][key], rtol=1e-10, atol=1e-12)


def test_dynamic_step_factor():
    for t in (1, 2, 10, 1000):
        expected = math.log(math.sqrt(2) * math.sqrt(t + 1))
        assert math.isclose(dynamic_step_factor(t), expected, rel_tol=1e-15)
        assert math.isclose(dynamic_step_factor(torch.tensor(float(t))).item(), expected, rel_tol=1e-6)


def test_dynamic_step_scales_the_first_step_by_ln2():
    start = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    moves = []
    for dynamic in (False, True):
        p = start.clone().requires_grad_(True)
        opt = optimlab.create("exadam", [p], lr=1e-2, dynamic_step_size=dynamic)
        p.grad = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
        opt.step()
        moves.append(p.detach() - start)
    torch.testing.assert_close(moves[1], moves[0] * math.log(2), rtol=1e-12, atol=0)
