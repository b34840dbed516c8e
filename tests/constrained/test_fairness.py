"""A fairness-constrained logistic regression on generated data: demographic parity |P̂(ŷ=1 | a=1) − P̂(ŷ=1 | a=0)|
≤ δ on the mean predicted probabilities (two inequality constraints). Full batch, the primal–dual iterates reach the
KKT point scipy's SLSQP finds (weights and multipliers); mini-batch Adam + dual SGD ends near-feasible where the
unconstrained model is far from it."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from optimlab import constrained as C

DELTA, L2 = 0.05, 1e-2


def _data(n=400, seed=0):
    g = torch.Generator().manual_seed(seed)
    a = (torch.rand(n, generator=g) < 0.5).double()
    x = torch.cat([torch.randn(n, 4, generator=g, dtype=torch.float64), a[:, None]], 1)
    logit = 1.5 * x[:, 0] - x[:, 1] + 1.5 * (a - 0.5)  # the label depends on the group
    y = (torch.rand(n, generator=g, dtype=torch.float64) < torch.sigmoid(logit)).double()
    return x, y, a


def _parts(w, x, y, a):
    """Objective (logistic loss + L2) and the two parity violations of weights ``w`` (5 + bias)."""
    s = x @ w[:5] + w[5]
    f = F.binary_cross_entropy_with_logits(s, y) + 0.5 * L2 * (w[:5] ** 2).sum()
    p = torch.sigmoid(s)
    gap = p[a == 1].mean() - p[a == 0].mean()
    return f, torch.stack([gap - DELTA, -gap - DELTA])


@pytest.fixture(scope="module")
def slsqp():
    optimize = pytest.importorskip("scipy.optimize")
    x, y, a = _data()

    def fun(w):
        wt = torch.tensor(w, requires_grad=True)
        f, _ = _parts(wt, x, y, a)
        f.backward()
        return float(f.detach()), wt.grad.numpy()

    def cons(w):  # scipy: c(w) ≥ 0
        return -_parts(torch.tensor(w), x, y, a)[1].numpy()

    def cons_jac(w):
        return -torch.autograd.functional.jacobian(lambda t: _parts(t, x, y, a)[1], torch.tensor(w)).numpy()

    res = optimize.minimize(
        fun, np.zeros(6), jac=True, method="SLSQP", constraints=[{"type": "ineq", "fun": cons, "jac": cons_jac}],
        options={"ftol": 1e-15, "maxiter": 1000},
    )  # fmt: skip
    assert res.success
    free = optimize.minimize(fun, np.zeros(6), jac=True)
    return res, free


def test_unconstrained_model_violates_parity(slsqp):
    _, free = slsqp
    x, y, a = _data()
    gap = float(_parts(torch.tensor(free.x), x, y, a)[1][0]) + DELTA
    assert gap > 3 * DELTA


def test_full_batch_primal_dual_reaches_the_slsqp_kkt_point(slsqp):
    res, _ = slsqp
    x, y, a = _data()
    w = torch.nn.Parameter(torch.zeros(6, dtype=torch.float64))
    form = C.Lagrangian([C.Constraint("parity", size=2)], dtype=torch.float64)
    dual = torch.optim.SGD(form.dual_parameters(), lr=5.0, maximize=True)
    pd = C.PrimalDual(form, torch.optim.SGD([w], lr=1.0), dual, method="alternating")

    def closure():
        f, g = _parts(w, x, y, a)
        return f, {"parity": g}

    for _ in range(200):
        info = pd.step(closure)
    np.testing.assert_allclose(w.detach().numpy(), res.x, atol=1e-6)
    lam = form.multipliers["parity"].detach().numpy()
    if getattr(res, "multipliers", None) is not None:  # scipy >= 1.15 reports SLSQP's multipliers
        np.testing.assert_allclose(lam, np.asarray(res.multipliers), atol=1e-6)
    assert lam[0] > 0.1 and lam[1] == 0.0  # the gap bound is active on one side only
    assert float(info.violations["parity"].max()) < 1e-6


def test_mini_batch_adam_ends_near_feasible():
    x, y, a = _data()
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 1).double()
    form = C.Lagrangian([C.Constraint("parity", size=2)], dtype=torch.float64)
    dual = torch.optim.SGD(form.dual_parameters(), lr=1.0, maximize=True)
    pd = C.PrimalDual(form, torch.optim.Adam(model.parameters(), lr=0.05), dual)
    gen = torch.Generator().manual_seed(1)
    for _ in range(300):
        idx = torch.randint(0, len(y), (100,), generator=gen)
        w = torch.cat([model.weight.reshape(-1), model.bias])
        pd.step(lambda idx=idx, w=w: (lambda f, g: (f, {"parity": g}))(*_parts(w, x[idx], y[idx], a[idx])))
    with torch.no_grad():
        w = torch.cat([model.weight.reshape(-1), model.bias])
        _, g = _parts(w, x, y, a)
        acc = float(((x @ w[:5] + w[5] > 0).double() == y).double().mean())
    assert float(g.max()) < 0.02  # |gap| ≤ δ + 0.02 on the whole data set
    assert acc > 0.7
