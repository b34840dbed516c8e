"""Exact resume: N steps, ``torch.save`` the PrimalDual state (multipliers, ρ, both optimizers, step count, past
extrapolation gradients), load it with ``weights_only=True`` into fresh objects, N more steps == 2N uninterrupted,
bit for bit; for every method, with stateful optimizers on both sides (Adam, νPI) and a growing penalty."""

from __future__ import annotations

import pytest
import torch

from optimlab import constrained as C
from tests.constrained import _problems as P

N = 4


def _build(form_name, method):
    if form_name == "augmented":
        form = C.AugmentedLagrangian(P.constraints(), penalty=0.5, dtype=torch.float64)
        schedule = C.PenaltySchedule(growth=1.5, every=2, max=10.0)
    else:
        form = C.Lagrangian(P.constraints(resilience=2.0), dtype=torch.float64)
        schedule = None
    x = torch.nn.Parameter(torch.zeros(P.DIM, dtype=torch.float64))
    primal = torch.optim.Adam([x], lr=0.05)
    dual = C.NuPI(form.dual_parameters(), lr=0.2, kp=1.0, ki=1.0, ema_nu=0.5, maximize=True)
    return x, form, C.PrimalDual(form, primal, dual, method=method, penalty_schedule=schedule)


def _run(x, pd, start, steps):
    counter = [start]
    closure = P.closure_for(x, counter)
    for t in range(start, start + steps):
        counter[0] = t
        pd.step(closure)


@pytest.mark.parametrize("form_name", ["lagrangian", "augmented"])
@pytest.mark.parametrize("method", C.METHODS)
def test_resume_is_bit_exact(tmp_path, form_name, method):
    x, form, pd = _build(form_name, method)
    _run(x, pd, 0, 2 * N)

    y, form_a, pd_a = _build(form_name, method)
    _run(y, pd_a, 0, N)
    torch.save({"model": y.detach().clone(), "pd": pd_a.state_dict()}, tmp_path / "ckpt.pt")
    ckpt = torch.load(tmp_path / "ckpt.pt", weights_only=True)
    z, form_b, pd_b = _build(form_name, method)
    with torch.no_grad():
        z.copy_(ckpt["model"])
    pd_b.load_state_dict(ckpt["pd"])
    _run(z, pd_b, N, N)

    assert torch.equal(x.detach(), z.detach())
    for name in form.multipliers:
        assert torch.equal(form.multipliers[name], form_b.multipliers[name])
    assert torch.equal(form.penalty, form_b.penalty)
    assert int(pd_b.steps) == 2 * N
    if form_name == "augmented":
        assert float(form.penalty.max()) > 0.5  # the schedule moved ρ, and the checkpoint carried it
    if method == "extrapolation_from_past":
        assert "past_primal" in ckpt["pd"]
