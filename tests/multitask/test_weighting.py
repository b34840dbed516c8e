"""Loss weightings, GradNorm, Bloop and Fish: parity with tests/reference/multitask_training.py, their invariants
(GradNorm's weights sum to T, Bloop's auxiliary part is orthogonal to the EMA), and exact resume through
torch.save / torch.load(weights_only=True)."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import optimlab
from optimlab.multitask import DWA, Bloop, EqualWeighting, Fish, GradNorm, UncertaintyWeighting
from tests.reference import multitask_training as ref


def _roundtrip(state):
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def _loss_stream(seed, steps, k=3):
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(k, generator=g, dtype=torch.float64) + 0.1 for _ in range(steps)]


# ----------------------------------------------------------------------------- DWA
def test_dwa_matches_reference_and_resumes_exactly():
    stream = _loss_stream(0, 5 * 4)
    dwa = DWA(3, temperature=2.0)
    averages = []
    for epoch in range(5):
        batch = stream[epoch * 4 : (epoch + 1) * 4]
        expected = torch.tensor(ref.dwa_weights(averages, 2.0), dtype=torch.float64)
        torch.testing.assert_close(dwa.weights(), expected.expand(3) if expected.numel() == 1 else expected)
        for losses in batch:
            torch.testing.assert_close(dwa(losses), (expected * losses).sum())
        dwa.step()
        averages.append([float(x) for x in torch.stack(batch).mean(0)])
    assert abs(float(dwa.weights().sum()) - 3) < 1e-12

    def run(n_epochs, d):
        out = []
        for epoch in range(n_epochs):
            for losses in stream[epoch * 4 : (epoch + 1) * 4]:
                out.append(d(losses))
            d.step()
        return out

    a = DWA(3)
    full = run(5, a)
    b = DWA(3)
    first = run(2, b)
    c = DWA(3)
    c.load_state_dict(_roundtrip(b.state_dict()))
    second = []
    for epoch in range(2, 5):
        for losses in stream[epoch * 4 : (epoch + 1) * 4]:
            second.append(c(losses))
        c.step()
    assert all(torch.equal(x, y) for x, y in zip(full, first + second))
    assert torch.equal(a.history, c.history)


def test_equal_and_uncertainty_weighting():
    losses = torch.tensor([1.0, 2.0, 4.0])
    assert float(EqualWeighting(3)(losses)) == 7.0
    uw = UncertaintyWeighting(3)
    opt = torch.optim.SGD(uw.parameters(), lr=0.1)
    for _ in range(500):
        opt.zero_grad()
        uw(losses).backward()
        opt.step()
    # the learned variances reach the paper's optimum σ_i² = L_i
    torch.testing.assert_close(uw.log_vars.detach().exp(), losses, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="num_tasks"):
        EqualWeighting(0)
    with pytest.raises(ValueError, match="temperature"):
        DWA(2, temperature=0.0)


# ----------------------------------------------------------------------------- GradNorm
class Net(nn.Module):
    def __init__(self, tasks=3):
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 8))
        self.heads = nn.ModuleList([nn.Linear(8, 1) for _ in range(tasks)])

    def losses(self, x, ys):
        z = self.trunk(x)
        return torch.stack([F.mse_loss(h(z).squeeze(-1), y) for h, y in zip(self.heads, ys)])


def _batch(step):
    g = torch.Generator().manual_seed(100 + step)
    x = torch.randn(16, 4, generator=g, dtype=torch.float64)
    return x, [s * torch.sin(x[:, k]) for k, s in enumerate((1.0, 10.0, 0.3))]


def _gradnorm_run(steps, gn=None, model=None, opt=None):
    model = model or Net().double()
    opt = opt or torch.optim.SGD(model.parameters(), lr=0.01)
    gn = gn or GradNorm(3, alpha=1.5, lr=0.05)
    history = []
    for step in range(steps):
        x, ys = _batch(step)
        opt.zero_grad()
        gn.backward(model.losses(x, ys), model.trunk[2].weight)
        opt.step()
        history.append(gn.weights())
    return model, opt, gn, history


def test_gradnorm_matches_reference_with_plain_gradient_descent():
    model = Net().double()
    gn = GradNorm(3, alpha=1.5, lr=0.05, optimizer=lambda ps: torch.optim.SGD(ps, lr=0.05))
    w_ref, initial = torch.ones(3, dtype=torch.float64), None
    layer = model.trunk[2].weight
    for step in range(6):
        x, ys = _batch(step)
        losses = model.losses(x, ys)
        initial = losses.detach().clone() if initial is None else initial

        def grads(i, losses=losses):
            return torch.autograd.grad(losses[i], layer, retain_graph=True, create_graph=True)[0]

        w_ref = ref.gradnorm_step(w_ref, losses.detach(), initial, grads, 1.5, 0.05)
        expected_grads = torch.autograd.grad((gn.weights().double() * losses).sum(), layer, retain_graph=True)[0]
        model.zero_grad()
        gn.backward(losses, layer)
        torch.testing.assert_close(layer.grad, expected_grads)
        torch.testing.assert_close(gn.weights().double(), w_ref, rtol=1e-6, atol=1e-7)
        with torch.no_grad():  # move the model so the losses change
            for p in model.parameters():
                p -= 0.01 * p.grad


def test_gradnorm_weights_sum_to_T_and_balance_and_resume_exactly():
    _, _, gn, history = _gradnorm_run(40)
    for w in history:
        assert abs(float(w.sum()) - 3) < 1e-5 and float(w.min()) > 0
    # the task with the large target scale gets a smaller weight than the small-scale task
    assert float(history[-1][1]) < float(history[-1][2])
    model_a, opt_a, gn_a, _ = _gradnorm_run(12)
    model_b, opt_b, gn_b, _ = _gradnorm_run(6)
    state = _roundtrip({"model": model_b.state_dict(), "opt": opt_b.state_dict(), "gn": gn_b.state_dict()})
    model_c = Net().double()
    model_c.load_state_dict(state["model"])
    opt_c = torch.optim.SGD(model_c.parameters(), lr=0.01)
    opt_c.load_state_dict(state["opt"])
    gn_c = GradNorm(3, alpha=1.5, lr=0.05)
    gn_c.load_state_dict(state["gn"])
    for step in range(6, 12):
        x, ys = _batch(step)
        opt_c.zero_grad()
        gn_c.backward(model_c.losses(x, ys), model_c.trunk[2].weight)
        opt_c.step()
    assert torch.equal(gn_a.weights(), gn_c.weights())
    for p, q in zip(model_a.parameters(), model_c.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="alpha"):
        GradNorm(2, alpha=-1)
    with pytest.raises(ValueError, match="lr"):
        GradNorm(2, lr=0)


# ----------------------------------------------------------------------------- Bloop
def _bloop_problem(step):
    g = torch.Generator().manual_seed(step)
    a = torch.randn(4, 6, generator=g, dtype=torch.float64)
    return a, torch.randn(4, generator=g, dtype=torch.float64)


def _bloop_losses(w, step):
    a, b = _bloop_problem(step)
    return 0.5 * (a @ w - b).pow(2).mean(), 0.5 * (w - 1.0).pow(2).sum()


@pytest.mark.parametrize("beta", [0.0, 0.9])
def test_bloop_matches_reference_and_is_orthogonal(beta):
    w = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    bloop = Bloop([w], lam=0.5, beta=beta)
    w_ref, ema = w.detach().clone(), torch.zeros(6, dtype=torch.float64)
    for step in range(8):
        main, aux = _bloop_losses(w, step)
        w.grad = None
        bloop.backward(main, aux)
        wr = w_ref.clone().requires_grad_(True)
        main_r, aux_r = _bloop_losses(wr, step)
        gm = torch.autograd.grad(main_r, wr)[0]
        ga = torch.autograd.grad(aux_r, wr)[0]
        d, ema = ref.bloop_direction(gm, ga, ema, 0.5, beta)
        torch.testing.assert_close(w.grad, d, rtol=1e-12, atol=1e-14)
        assert abs(float((w.grad - gm) @ ema)) < 1e-10 * float(ema.norm() * (ga.norm() + 1))
        with torch.no_grad():
            w -= 0.1 * w.grad
        w_ref = w_ref - 0.1 * d


def test_bloop_resumes_exactly():
    def run(steps, w=None, bloop=None, start=0):
        w = w if w is not None else torch.zeros(6, dtype=torch.float64, requires_grad=True)
        bloop = bloop or Bloop([w], lam=0.5, beta=0.9)
        for step in range(start, start + steps):
            w.grad = None
            bloop.backward(*_bloop_losses(w, step))
            with torch.no_grad():
                w -= 0.1 * w.grad
        return w, bloop

    w_full, _ = run(10)
    w_half, b_half = run(5)
    state = _roundtrip({"w": w_half.detach(), "bloop": b_half.state_dict()})
    w2 = state["w"].clone().requires_grad_(True)
    b2 = Bloop([w2], lam=0.5, beta=0.9)
    b2.load_state_dict(state["bloop"])
    w2, _ = run(5, w2, b2, start=5)
    assert torch.equal(w_full, w2)
    with pytest.raises(ValueError, match="beta"):
        Bloop([w2], beta=1.0)


# ----------------------------------------------------------------------------- Fish
def _domain_batch(k, step):
    g = torch.Generator().manual_seed(1000 * k + step)
    x = torch.randn(8, 3, generator=g, dtype=torch.float64)
    return x, x @ torch.tensor([1.0, -2.0, 0.5 * (k + 1)], dtype=torch.float64)


def test_fish_matches_reference_with_sgd_and_resumes_exactly():
    torch.manual_seed(0)
    model = nn.Linear(3, 1).double()
    theta = [p.detach().clone() for p in model.parameters()]
    fish = Fish(torch.optim.SGD(model.parameters(), lr=0.1), meta_lr=0.3, seed=7)
    order_gen = torch.Generator().manual_seed(7)
    for step in range(5):
        fns = [
            (lambda k=k, s=step: F.mse_loss(model(_domain_batch(k, s)[0]).squeeze(-1), _domain_batch(k, s)[1]))
            for k in range(3)
        ]
        fish.step(fns)

        def grad_fn(k, step=step):
            def f(params):
                ps = [p.clone().requires_grad_(True) for p in params]
                x, y = _domain_batch(k, step)
                loss = F.mse_loss((x @ ps[0].T + ps[1]).squeeze(-1), y)
                return torch.autograd.grad(loss, ps)

            return f

        order = torch.randperm(3, generator=order_gen).tolist()
        theta = ref.fish_step(theta, [grad_fn(k) for k in range(3)], order, 0.1, 0.3)
        for p, t in zip(model.parameters(), theta):
            torch.testing.assert_close(p.detach(), t, rtol=1e-12, atol=1e-14)

    def run(steps, start=0, state=None):
        torch.manual_seed(0)
        m = nn.Linear(3, 1).double()
        f = Fish(optimlab.create("adamw", m.parameters(), lr=0.05), meta_lr=0.5, seed=3)
        if state is not None:
            m.load_state_dict(state["model"])
            f.load_state_dict(state["fish"])
        for step in range(start, start + steps):
            f.step(
                [
                    (lambda k=k, s=step: F.mse_loss(m(_domain_batch(k, s)[0]).squeeze(-1), _domain_batch(k, s)[1]))
                    for k in range(3)
                ]
            )
        return m, f

    m_full, _ = run(8)
    m_half, f_half = run(4)
    state = _roundtrip({"model": m_half.state_dict(), "fish": f_half.state_dict()})
    m_res, _ = run(4, start=4, state=state)
    for p, q in zip(m_full.parameters(), m_res.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="meta_lr"):
        Fish(torch.optim.SGD(m_full.parameters(), lr=0.1), meta_lr=0.0)
