"""The Jacobian step: blocks equal per-task autograd, the batched backward equals the loop, the Gramian path equals
aggregating the concatenated Jacobian, task parameters get their own task's gradient, Mean equals plain backward."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from optimlab.multitask import MGDA, Mean, UPGrad, gramian, jacobian, jacobian_backward


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 5))
        self.heads = nn.ModuleList([nn.Linear(5, 1), nn.Linear(5, 2), nn.Linear(5, 1)])

    def losses(self, x):
        z = self.trunk(x)
        return torch.stack([h(z).pow(2).mean() * (k + 1) for k, h in enumerate(self.heads)])


def _x():
    return torch.randn(8, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_blocks_equal_per_task_autograd_and_batched_equals_loop():
    model = TwoHeads().double()
    shared = list(model.trunk.parameters())
    losses = model.losses(_x())
    blocks = jacobian(losses, shared, retain_graph=True)
    batched = jacobian(losses, shared, retain_graph=True, batched=True)
    for i in range(3):
        grads = torch.autograd.grad(losses[i], shared, retain_graph=True)
        for b, bb, g in zip(blocks, batched, grads):
            torch.testing.assert_close(b[i], g, rtol=0, atol=0)
            torch.testing.assert_close(bb[i], g, rtol=1e-12, atol=1e-14)
    flat = torch.cat([b.reshape(3, -1) for b in blocks], 1)
    torch.testing.assert_close(gramian(blocks), flat @ flat.T)


def test_backward_writes_the_aggregation_and_task_gradients():
    model = TwoHeads().double()
    shared = list(model.trunk.parameters())
    heads = list(model.heads.parameters())
    losses = model.losses(_x())
    blocks = jacobian(losses, shared, retain_graph=True)
    head_grads = torch.autograd.grad(losses.sum(), heads, retain_graph=True)
    own = [torch.autograd.grad(losses[k], list(h.parameters()), retain_graph=True) for k, h in enumerate(model.heads)]
    J = torch.cat([b.reshape(3, -1) for b in blocks], 1)
    expected = UPGrad()(J)
    w = jacobian_backward(losses, shared, UPGrad(), task_params=heads)
    torch.testing.assert_close(torch.cat([p.grad.reshape(-1) for p in shared]), expected, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(w @ J, expected, rtol=1e-12, atol=1e-14)
    for p, g in zip(heads, head_grads):
        torch.testing.assert_close(p.grad, g)
    for k, h in enumerate(model.heads):  # a head used by one task receives that task's own gradient
        for p, g in zip(h.parameters(), own[k]):
            torch.testing.assert_close(p.grad, g)


def test_plain_callable_aggregator_and_mean_equals_backward():
    model = TwoHeads().double()
    shared = list(model.trunk.parameters())
    jacobian_backward(model.losses(_x()), shared, lambda J: MGDA()(J))  # no .weights: concatenated path
    via_callable = [p.grad.clone() for p in shared]
    model.zero_grad(set_to_none=True)
    assert jacobian_backward(model.losses(_x()), shared, MGDA()) is not None
    for p, g in zip(shared, via_callable):
        torch.testing.assert_close(p.grad, g, rtol=1e-12, atol=1e-14)
    model.zero_grad(set_to_none=True)
    jacobian_backward(model.losses(_x()), shared, Mean())
    mine = [p.grad.clone() for p in shared]
    model.zero_grad(set_to_none=True)
    model.losses(_x()).mean().backward()
    for p, g in zip(shared, mine):
        torch.testing.assert_close(g, p.grad, rtol=1e-12, atol=1e-14)


def test_gradients_accumulate_and_bad_inputs_raise():
    model = TwoHeads().double()
    shared = list(model.trunk.parameters())
    jacobian_backward(model.losses(_x()), shared, Mean())
    once = [p.grad.clone() for p in shared]
    jacobian_backward(model.losses(_x()), shared, Mean())
    for p, g in zip(shared, once):
        torch.testing.assert_close(p.grad, 2 * g)
    with pytest.raises(ValueError, match="losses"):
        jacobian(torch.zeros(2, 2, requires_grad=True), shared)
    with pytest.raises(ValueError, match="shared_params"):
        jacobian_backward(model.losses(_x()), [], Mean())
