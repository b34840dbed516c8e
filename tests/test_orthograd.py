"""⊥Grad invariants: the gradient the base steps on is orthogonal to the weights (per tensor) with the original
norm, the user's ``.grad`` is untouched, one gradient evaluation per step, and what it converges to."""

from __future__ import annotations

import math

import pytest
import torch

import optimlab
from optimlab.wrappers.orthograd import OrthoGrad, orthogonalize


class _Recorder(torch.optim.Optimizer):
    """A base that records the gradients it is asked to step on (and takes a plain SGD step)."""

    def __init__(self, params, lr=0.1):
        super().__init__(params, dict(lr=lr))
        self.seen: list[list[torch.Tensor]] = []

    @torch.no_grad()
    def step(self, closure=None):
        self.seen.append([p.grad.clone() for g in self.param_groups for p in g["params"] if p.grad is not None])
        for g in self.param_groups:
            for p in g["params"]:
                if p.grad is not None:
                    p.add_(p.grad, alpha=-g["lr"])


def _params(seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_(True) for s in ((4, 5), (7,), (2, 3, 2))]


def _loss(params):
    return sum((torch.sin(3 * p) + p**2 * torch.arange(p.numel(), dtype=p.dtype).view_as(p)).sum() for p in params)


def test_the_base_sees_a_gradient_orthogonal_to_each_weight_tensor_with_the_original_norm():
    params = _params()
    opt = OrthoGrad(params, base=_Recorder, lr=0.05)
    for _ in range(4):
        opt.zero_grad()
        _loss(params).backward()
        weights = [p.detach().clone() for p in params]
        grads = [p.grad for p in params]
        originals = [g.clone() for g in grads]
        opt.step()
        for w, g, perp, orig, p in zip(weights, originals, opt.base.seen[-1], grads, params):
            cos = torch.dot(w.flatten(), perp.flatten()) / (w.norm() * perp.norm())
            assert abs(cos) < 1e-12, "g⊥ is orthogonal to w"
            torch.testing.assert_close(perp.norm(), g.norm(), rtol=1e-12, atol=0)
            assert p.grad is orig and torch.equal(p.grad, g), "the user's .grad is neither replaced nor modified"


def test_matches_the_closed_form_and_handles_the_degenerate_cases():
    w = torch.tensor([3.0, 4.0], dtype=torch.float64)
    g = torch.tensor([1.0, 0.0], dtype=torch.float64)
    # g − (⟨w,g⟩/‖w‖²) w = (1, 0) − 3/25 (3, 4) = (16, −12)/25, rescaled to ‖g‖ = 1
    torch.testing.assert_close(orthogonalize(w, g), torch.tensor([0.8, -0.6], dtype=torch.float64))
    assert torch.equal(orthogonalize(torch.zeros(3), torch.ones(3)), torch.ones(3)), "w = 0: nothing to remove"
    assert torch.equal(orthogonalize(torch.tensor([2.0]), torch.tensor([5.0])), torch.tensor([0.0]))
    assert torch.equal(orthogonalize(w, 2 * w), torch.zeros(2, dtype=torch.float64)), "g ∥ w: nothing left"


def test_groups_can_opt_out_and_low_precision_is_projected_in_fp32():
    p = torch.randn(6, 4, dtype=torch.bfloat16).requires_grad_(True)
    q = torch.randn(5, dtype=torch.float32).requires_grad_(True)
    opt = OrthoGrad([{"params": [p]}, {"params": [q], "orthogonalize": False}], base=_Recorder, lr=0.01)
    (p.float().sin().sum() + (q * q).sum()).backward()
    opt.step()
    perp, q_seen = opt.base.seen[0]
    assert perp.dtype == torch.bfloat16
    cos = torch.dot(p.detach().float().flatten(), perp.float().flatten()) / (p.float().norm() * perp.float().norm())
    assert abs(cos) < 2e-2  # bf16 rounding of g⊥ itself
    assert torch.equal(q_seen, q.grad)


def test_single_pass_without_a_closure_and_state_is_the_bases():
    params = _params()
    opt = optimlab.create("orthograd", params, lr=1e-2)
    calls = []

    def closure():
        calls.append(1)
        opt.zero_grad()
        loss = _loss(params)
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert len(calls) == 1 and loss.ndim == 0
    opt.step()  # the gradients are still there: no closure needed
    assert not opt.state and all(float(opt.base.state[p]["step"]) == 2 for p in params)


def test_with_sgd_the_norm_never_decreases_and_the_minimizer_on_the_sphere_is_reached():
    """⊥Grad + SGD moves tangentially: ‖w‖² grows by lr²‖g⊥‖² per step. Started on the sphere through the
    minimizer x* of ½‖w − x*‖², it rotates onto x* (to O(lr) in the norm)."""
    x_star = torch.tensor([0.6, 0.0, 0.8], dtype=torch.float64)
    w = torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64, requires_grad=True)
    opt = OrthoGrad([w], base="sgd", lr=0.05, momentum=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, 400) / 400)))
    norms = [w.norm().item()]
    for _ in range(400):
        opt.zero_grad()
        (0.5 * ((w - x_star) ** 2).sum()).backward()
        opt.step()
        sched.step()
        norms.append(w.norm().item())
    assert all(b >= a - 1e-15 for a, b in zip(norms, norms[1:]))
    assert (w.detach() - x_star).abs().max() < 3e-2
    direction = w.detach() / w.norm()
    assert (direction - x_star).abs().max() < 1e-3


@pytest.mark.parametrize("base", ["adamw", "sgd", torch.optim.Adam])
def test_any_base(base):
    params = _params()
    opt = OrthoGrad(params, base=base, lr=0.01)
    opt.zero_grad()
    _loss(params).backward()
    before = [p.detach().clone() for p in params]
    opt.step()
    assert all(not torch.equal(p.detach(), b) for p, b in zip(params, before))
