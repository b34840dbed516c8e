"""SANIA invariants: scale invariance of AdaGrad-SQR / Adam-SQR SANIA on logistic regression with badly scaled
features (the paper's claim), the step-size formula, one-step convergence when the quadratic model is exact,
parity with the authors' update for every preconditioner where the probes matter, the create_graph requirement of
the Hutchinson variant, exact resume."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from optimlab.optim.sania import SANIA, SANIAHutchinson, sania_step_size
from tests import _second_order as S
from tests import optim_db as DB
from tests.reference.sania import sania as reference

HP = DB.test_hparams("sania")
HP_HUTCH = DB.test_hparams("sania_hutchinson")


def _logistic_problem(n=64, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w_true = torch.randn(d, generator=g, dtype=torch.float64)
    y = torch.where(x @ w_true + 0.5 * torch.randn(n, generator=g, dtype=torch.float64) > 0, 1.0, -1.0)
    scales = 10.0 ** torch.linspace(-3, 3, d, dtype=torch.float64)[torch.randperm(d, generator=g)]
    return x, y, scales


def _trajectory(make_opt, x, y, w0, steps=40):
    """Iterates and losses of an optimizer on the logistic loss mean log(1 + exp(−y·xᵀw))."""
    w = w0.clone().requires_grad_(True)
    opt = make_opt([w])
    iterates, losses = [], []
    for _ in range(steps):

        def closure():
            opt.zero_grad()
            loss = F.softplus(-y * (x @ w)).mean()
            loss.backward()
            return loss

        losses.append(float(opt.step(closure).detach()))
        iterates.append(w.detach().clone())
    return torch.stack(iterates), torch.tensor(losses, dtype=torch.float64)


@pytest.mark.parametrize("preconditioner,steps", [("adagrad_sqr", 40), ("adam_sqr", 20)])
def test_scale_invariance_on_logistic_regression(preconditioner, steps):
    """Features x' = x·diag(s), s_j ∈ [1e-3, 1e3]; starting from w'_0 = w_0/s, SANIA's iterates satisfy
    w'_t = w_t/s and the loss curves coincide (eps tiny so the truncation never acts). Adam-SQR's iteration is
    chaotic here (its v shrinks with the gradient, so steps ~ 1/|g|): rounding differences of 1e-16 grow about
    tenfold every three steps, hence the shorter horizon; AdaGrad-SQR stays within 1e-15 for 60 steps."""
    x, y, s = _logistic_problem()
    w0 = 0.1 * torch.ones(x.shape[1], dtype=torch.float64)

    def make(params):
        return SANIA(params, preconditioner=preconditioner, eps=1e-300, beta=0.99)

    w, loss = _trajectory(make, x, y, w0, steps)
    w_scaled, loss_scaled = _trajectory(make, x * s, y, w0 / s, steps)
    assert loss[-1] < 0.6 * loss[0]  # it does optimize
    torch.testing.assert_close(loss_scaled, loss, rtol=1e-9, atol=0)
    torch.testing.assert_close(w_scaled * s, w, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize(
    "make",
    [
        lambda ps: SANIA(ps, preconditioner="identity"),
        lambda ps: torch.optim.Adam(ps, lr=0.1),
    ],
    ids=["sania-identity", "adam"],
)
def test_the_invariance_is_not_trivial(make):
    """Without a squared-scale preconditioner (plain Polyak, or Adam's square root) the trajectory changes."""
    x, y, s = _logistic_problem()
    w0 = 0.1 * torch.ones(x.shape[1], dtype=torch.float64)
    _, loss = _trajectory(make, x, y, w0)
    _, loss_scaled = _trajectory(make, x * s, y, w0 / s)
    assert (loss_scaled - loss).abs().max() > 1e-3


def test_step_size_formula():
    assert sania_step_size(1e-6, 1.0) == pytest.approx(1e-6, rel=1e-5)  # small c: the Polyak step c
    assert sania_step_size(0.3, 1.0) == pytest.approx(1 - math.sqrt(0.4))
    assert sania_step_size(0.5, 1.0) == 1.0  # 1 − 2c = 0
    assert sania_step_size(3.0, 1.0) == 1.0  # no root: the full preconditioned step
    assert sania_step_size(0.0, 1.0) == 0.0 and sania_step_size(-1.0, 1.0) == 0.0  # f ≤ f*
    assert sania_step_size(1.0, 0.0) == 0.0  # g = 0


def test_one_step_when_the_quadratic_model_is_exact():
    """f = ½‖w − w*‖² with the identity preconditioner: c = f/‖g‖² = ½, λ = 1, w_1 = w*."""
    w_star = torch.linspace(-2, 3, 7, dtype=torch.float64)
    w = torch.zeros(7, dtype=torch.float64, requires_grad=True)
    opt = SANIA([w], preconditioner="identity")

    def closure():
        opt.zero_grad()
        loss = 0.5 * ((w - w_star) ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    torch.testing.assert_close(w.detach(), w_star, rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "cls,hp",
    [
        (SANIA, {**HP, "preconditioner": "adagrad_sqr", "eps": 1e-3}),
        (SANIA, {**HP, "preconditioner": "adam_sqr"}),
        (SANIA, {**HP, "preconditioner": "identity", "lr": 0.5}),
        (SANIAHutchinson, HP_HUTCH),
        (SANIAHutchinson, {**HP_HUTCH, "hessian_distribution": "gaussian", "f_star": 0.0}),
    ],
    ids=["adagrad_sqr", "adam_sqr", "identity", "hutchinson", "hutchinson-gaussian"],
)
def test_matches_the_reference(cls, hp):
    params0 = S.mlp_params()
    ref_params, ref_states = S.reference_run(reference, params0, hp, 5)
    params = [p.clone().requires_grad_(True) for p in params0]
    opt = S.run(S.make(cls, params, **hp), params, 5)
    S.assert_matches_reference(opt, params, ref_params, ref_states)


def test_hutchinson_without_create_graph_raises_a_clear_error():
    params = [p.requires_grad_(True) for p in S.mlp_params()]
    with pytest.raises(RuntimeError, match="create_graph=True"):
        S.run(S.make(SANIAHutchinson, params, **HP_HUTCH), params, 1, create_graph=False)


@pytest.mark.parametrize("cls,hp", [(SANIA, HP), (SANIAHutchinson, HP_HUTCH)], ids=["adam_sqr", "hutchinson"])
def test_exact_resume(cls, hp):
    S.assert_exact_resume(lambda ps: S.make(cls, ps, **hp), S.mlp_params(torch.float32), 4, 3)


def test_groups_must_agree_on_f_star_and_maximize():
    a, b = torch.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    opt = SANIA([{"params": [a]}, {"params": [b], "f_star": -1.0}])

    def closure():
        opt.zero_grad()
        loss = (a**2).sum() + (b**2).sum()
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="f_star"):
        opt.step(closure)


def test_no_step_at_or_below_the_target_value():
    w = torch.tensor([1.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = SANIA([w], preconditioner="identity", f_star=10.0)

    def closure():
        opt.zero_grad()
        loss = (w**2).sum()  # 5 < f* = 10
        loss.backward()
        return loss

    opt.step(closure)
    assert torch.equal(w.detach(), torch.tensor([1.0, -2.0], dtype=torch.float64))
