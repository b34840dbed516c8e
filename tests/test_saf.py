"""SAF's trajectory loss: the authors' formula, the per-example ring of past outputs, checkpoints, and use with a
plain optimizer."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import optimlab
from optimlab.wrappers.saf import TrajectoryLoss
from tests import _harness as H


def _logits(epoch, n=6, c=4):
    return torch.randn(n, c, generator=torch.Generator().manual_seed(100 + epoch))


def test_inactive_until_start_epoch_then_the_authors_term():
    traj = TrajectoryLoss(6, 4, weight=0.3, temperature=2.0, delay=2, start_epoch=2)
    idx = torch.arange(6)
    history = {}
    for epoch in range(6):
        logits = _logits(epoch).requires_grad_(True)
        loss = traj(logits, idx, epoch)
        history[epoch] = logits.detach()
        if epoch <= 2:
            assert float(loss) == 0.0
            continue
        past = history[epoch - 2]
        # SAF_train.py: F.kl_div(log softmax(out/τ), softmax(past/τ)).sum(-1).mean() * τ² * reinforce
        expected = (
            F.kl_div(F.log_softmax(logits / 2.0, -1), F.softmax(past / 2.0, -1), reduction="none").sum(-1).mean()
            * 4.0
            * 0.3
        )
        torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-7)
        (grad,) = torch.autograd.grad(loss, logits)
        assert grad.abs().sum() > 0, "the gradient flows through the current outputs (the past ones are constants)"


def test_only_examples_recorded_delay_epochs_ago_contribute():
    traj = TrajectoryLoss(8, 3, delay=1, start_epoch=0, weight=1.0, temperature=1.0)
    traj(torch.zeros(4, 3), torch.arange(4), epoch=0)  # examples 0..3 seen at epoch 0
    logits = torch.randn(4, 3)
    loss = traj(logits, torch.tensor([2, 3, 4, 5]), epoch=1)  # 4, 5 were not seen at epoch 0
    p = torch.full((2, 3), 1 / 3)
    kl = (p * (p.log() - F.log_softmax(logits[:2], -1))).sum(-1)
    torch.testing.assert_close(loss, kl.sum() / 4)
    assert traj.recorded_epoch[4, 1] == 1 and traj.recorded_epoch[0, 0] == 0


def test_checkpoint_round_trip_resumes_exactly():
    torch.manual_seed(0)
    x = torch.randn(12, 5)
    y = torch.randint(0, 3, (12,))

    def run(epochs, model, traj, opt, start=0):
        for epoch in range(start, epochs):
            for batch in (torch.arange(0, 6), torch.arange(6, 12)):
                logits = model(x[batch])
                loss = F.cross_entropy(logits, y[batch]) + traj(logits, batch, epoch)
                opt.zero_grad()
                loss.backward()
                opt.step()

    def fresh():
        torch.manual_seed(0)
        m = torch.nn.Linear(5, 3)
        return m, TrajectoryLoss(12, 3, delay=2, start_epoch=1), optimlab.create("sgd", m.parameters(), lr=0.5)

    m1, t1, o1 = fresh()
    run(8, m1, t1, o1)
    m2, t2, o2 = fresh()
    run(4, m2, t2, o2)
    saved = H.roundtrip({"model": m2.state_dict(), "opt": o2.state_dict(), "saf": t2.state_dict()})
    m3, t3, o3 = fresh()
    m3.load_state_dict(saved["model"])
    o3.load_state_dict(saved["opt"])
    t3.load_state_dict(saved["saf"])
    run(8, m3, t3, o3, start=4)
    for p, q in zip(m1.parameters(), m3.parameters()):
        assert torch.equal(p, q)
    assert torch.equal(t1.outputs, t3.outputs) and torch.equal(t1.recorded_epoch, t3.recorded_epoch)


def test_reduced_storage_and_validation():
    traj = TrajectoryLoss(4, 2, storage_dtype=torch.bfloat16, start_epoch=-1, delay=1)
    traj(torch.randn(4, 2, dtype=torch.bfloat16), torch.arange(4), 0)
    assert traj.outputs.dtype == torch.bfloat16
    assert traj(torch.randn(4, 2), torch.arange(4), 1).dtype == torch.float32
    for kwargs in ({"delay": 0}, {"temperature": 0.0}, {"weight": -1.0}, {"weight": float("nan")}):
        with pytest.raises(ValueError):
            TrajectoryLoss(4, 2, **kwargs)
    with pytest.raises(ValueError, match="shape"):
        traj(torch.randn(4, 3), torch.arange(4), 0)
    assert "delay=1" in repr(traj)
