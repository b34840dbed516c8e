"""Prodigy and D-Adaptation Adam: float64 parity with the authors' prodigyopt and dadaptation packages."""

import math

import pytest
import torch

import optimlab
from tests import _harness as H


def _pair(make_ours, make_theirs, steps=60):
    params0 = H.make_params()
    a = [p.clone().requires_grad_(True) for p in params0]
    b = [p.clone().requires_grad_(True) for p in params0]
    opt_a = make_ours([{"params": a[:2]}, {"params": a[2:]}])
    opt_b = make_theirs([{"params": b[:2]}, {"params": b[2:]}])
    for t in range(steps):
        H.run_optimizer(None, a, 1, start=t, opt=opt_a)
        H.run_optimizer(None, b, 1, start=t, opt=opt_b)
    return a, b, opt_a, opt_b


PRODIGY_CASES = [
    {},
    dict(d0=1e-3, weight_decay=0.05, use_bias_correction=True),
    dict(betas=(0.0, 0.99), weight_decay=0.1, decouple=False, safeguard_warmup=True, d_coef=0.5, growth_rate=1.05),
]


@pytest.mark.parametrize("kwargs", PRODIGY_CASES)
def test_prodigy_float64_parity_with_prodigyopt(kwargs):
    prodigyopt = pytest.importorskip("prodigyopt", reason="the authors' prodigyopt package is not installed")
    a, b, opt_a, opt_b = _pair(
        lambda g: optimlab.create("prodigy", g, **kwargs), lambda g: prodigyopt.Prodigy(g, **kwargs)
    )
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
    assert math.isclose(float(opt_a.state[a[0]]["d"]), opt_b.param_groups[0]["d"], rel_tol=1e-10)
    assert float(opt_a.state[a[0]]["d"]) > 10 * kwargs.get("d0", 1e-6)  # d actually adapted


DADAPT_CASES = [{}, dict(d0=1e-3, weight_decay=0.05, use_bias_correction=True), dict(weight_decay=0.1, decouple=True)]


@pytest.mark.parametrize("kwargs", DADAPT_CASES)
def test_dadapt_adam_float64_parity_with_dadaptation(kwargs):
    dadaptation = pytest.importorskip("dadaptation", reason="the authors' dadaptation package is not installed")
    a, b, opt_a, opt_b = _pair(
        lambda g: optimlab.create("dadapt_adam", g, **kwargs), lambda g: dadaptation.DAdaptAdam(g, **kwargs)
    )
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
    assert math.isclose(float(opt_a.state[a[0]]["d"]), opt_b.param_groups[0]["d"], rel_tol=1e-10)


@pytest.mark.parametrize("name", ["prodigy", "dadapt_adam"])
def test_d_never_decreases_and_zero_gradients_leave_parameters(name):
    x = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64, requires_grad=True)
    opt = optimlab.create(name, [x])
    ds = []
    for _ in range(40):
        H.train(opt, lambda: ((x - 1) ** 2 * torch.tensor([1.0, 5.0, 20.0], dtype=torch.float64)).sum(), 1)
        ds.append(float(opt.state[x]["d"]))
    assert all(b >= a for a, b in zip(ds, ds[1:])) and ds[-1] > 1e3 * 1e-6
    y = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = optimlab.create(name, [y])
    y.grad = torch.zeros(3, dtype=torch.float64)
    opt.step()
    assert torch.equal(y.detach(), torch.ones(3, dtype=torch.float64))
