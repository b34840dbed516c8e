"""DoG / L-DoG / DoWG: float64 parity with the authors' dog-optimizer package, and the step-size invariants."""

import math

import pytest
import torch

import optimlab
from tests import _harness as H


def _run_pair(ours, theirs, steps=60):
    params0 = H.make_params()
    a = [p.clone().requires_grad_(True) for p in params0]
    b = [p.clone().requires_grad_(True) for p in params0]
    opt_a, opt_b = ours([{"params": a[:2]}, {"params": a[2:]}]), theirs([{"params": b[:2]}, {"params": b[2:]}])
    for t in range(steps):
        H.run_optimizer(None, a, 1, start=t, opt=opt_a)
        H.run_optimizer(None, b, 1, start=t, opt=opt_b)
    return a, b


@pytest.mark.parametrize("name,cls", [("dog", "DoG"), ("ldog", "LDoG")])
@pytest.mark.parametrize("kwargs", [{}, dict(reps_rel=1e-3, weight_decay=0.05), dict(init_eta=0.01, eps=1e-6)])
def test_float64_parity_with_dog_optimizer(name, cls, kwargs):
    dog = pytest.importorskip("dog", reason="the authors' dog-optimizer package is not installed")
    a, b = _run_pair(lambda g: optimlab.create(name, g, **kwargs), lambda g: getattr(dog, cls)(g, **kwargs))
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)


def test_first_step_moves_by_reps_and_dog_is_scale_free():
    """Step 1 moves exactly r_ε = reps_rel(1 + ‖x_1‖) (η_1‖g_1‖ = r_ε/√(1 + eps/‖g‖²)); rescaling the objective
    by c leaves DoG's iterates unchanged (η ∝ 1/‖g‖)."""
    x = torch.tensor([3.0, -4.0], dtype=torch.float64, requires_grad=True)
    opt = optimlab.create("dog", [x], reps_rel=1e-2, eps=0.0)
    H.train(opt, lambda: (x**2).sum(), 1)
    moved = float((x.detach() - torch.tensor([3.0, -4.0], dtype=torch.float64)).norm())
    assert math.isclose(moved, 1e-2 * 6.0, rel_tol=1e-12)

    def run(scale):
        y = torch.tensor([1.0, 2.0, -1.0], dtype=torch.float64, requires_grad=True)
        o = optimlab.create("dog", [y], eps=0.0)
        H.train(o, lambda: scale * ((y - 0.5) ** 2 * torch.tensor([1.0, 3.0, 10.0], dtype=torch.float64)).sum(), 50)
        return y.detach()

    torch.testing.assert_close(run(1.0), run(1e4), rtol=1e-10, atol=1e-12)


def test_rbar_is_monotone_and_dowg_weights_by_distance():
    xs = torch.tensor([2.0, -1.0, 0.5], dtype=torch.float64, requires_grad=True)
    opt = optimlab.create("dowg", [xs])
    rbars = []
    for _ in range(30):
        H.train(opt, lambda: ((xs - 1.0) ** 2).sum() + 0.1 * torch.sin(5 * xs).sum(), 1)
        rbars.append(float(opt.state[xs]["rbar"]))
    assert all(b >= a for a, b in zip(rbars, rbars[1:])) and rbars[-1] > 100 * rbars[0]
