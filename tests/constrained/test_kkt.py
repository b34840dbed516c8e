"""Known answers: convex QPs whose KKT point (x*, λ*, μ*) is known in closed form (built from it, and checked with
scipy's SLSQP); every method and formulation converges to it, the quadratic penalty to its closed-form x_ρ."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from optimlab import constrained as C

TOL = 1e-6


def _qp():
    """min ½xᵀQx + cᵀx  s.t.  A x ≤ b (rows 0, 1 active, row 2 inactive), E x = d; n = 4."""
    g = torch.Generator().manual_seed(3)
    m = torch.randn(4, 4, generator=g, dtype=torch.float64)
    q = m @ m.T / 4 + torch.eye(4, dtype=torch.float64)
    a = torch.randn(3, 4, generator=g, dtype=torch.float64)
    e = torch.randn(1, 4, generator=g, dtype=torch.float64)
    x_star = torch.tensor([0.5, -1.0, 0.25, 1.0], dtype=torch.float64)
    lam_star = torch.tensor([0.8, 0.3, 0.0], dtype=torch.float64)
    mu_star = torch.tensor([-0.6], dtype=torch.float64)
    b = a @ x_star + torch.tensor([0.0, 0.0, 0.5], dtype=torch.float64)
    d = e @ x_star
    c = -(q @ x_star + a.T @ lam_star + e.T @ mu_star)  # stationarity of the Lagrangian at (x*, λ*, μ*)
    return dict(q=q, a=a, b=b, e=e, d=d, c=c, x=x_star, lam=lam_star, mu=mu_star)


def test_the_known_answer_is_scipys_solution():
    scipy_opt = pytest.importorskip("scipy.optimize")
    p = {k: v.numpy() for k, v in _qp().items()}
    res = scipy_opt.minimize(
        lambda x: 0.5 * x @ p["q"] @ x + p["c"] @ x,
        np.zeros(4),
        jac=lambda x: p["q"] @ x + p["c"],
        constraints=[
            {"type": "ineq", "fun": lambda x: p["b"] - p["a"] @ x, "jac": lambda x: -p["a"]},
            {"type": "eq", "fun": lambda x: p["e"] @ x - p["d"], "jac": lambda x: p["e"]},
        ],
        method="SLSQP",
        options={"ftol": 1e-14, "maxiter": 500},
    )
    assert res.success
    np.testing.assert_allclose(res.x, p["x"], atol=1e-7)


def _solve(formulation, method, primal, dual, steps, schedule=None):
    p = _qp()
    x = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    dual_opt = None if dual is None else dual(formulation.dual_parameters())
    pd = C.PrimalDual(formulation, primal([x]), dual_opt, method=method, penalty_schedule=schedule)

    def closure():
        f = 0.5 * x @ p["q"] @ x + p["c"] @ x
        return f, {"ineq": p["a"] @ x - p["b"], "eq": p["e"] @ x - p["d"]}

    for _ in range(steps):
        pd.step(closure)
    return p, x.detach(), formulation


def _constraints():
    return [C.Constraint("ineq", size=3), C.Constraint("eq", kind=C.EQUALITY)]


def _sgd(lr, **kw):
    return lambda params: torch.optim.SGD(params, lr=lr, **kw)


def _nupi(lr):
    return lambda params: C.NuPI(params, lr=lr, kp=1.0, ki=1.0, ema_nu=0.0, maximize=True)


#: formulation, method, primal optimizer, dual optimizer, steps (each reaches 1e-7 about 20% before its budget)
CASES = {
    "gda": (C.Lagrangian, "simultaneous", _sgd(0.1), _sgd(0.1, maximize=True), 850),
    "gda_minimizing_dual": (C.Lagrangian, "simultaneous", _sgd(0.1), _sgd(0.1), 850),
    "alternating": (C.Lagrangian, "alternating", _sgd(0.2), _sgd(0.2, maximize=True), 450),
    "extragradient": (C.Lagrangian, "extragradient", _sgd(0.2), _sgd(0.2, maximize=True), 450),
    "extrapolation_from_past": (C.Lagrangian, "extrapolation_from_past", _sgd(0.2), _sgd(0.2, maximize=True), 400),
    "nupi": (C.Lagrangian, "simultaneous", _sgd(0.2), _nupi(0.2), 450),
    "augmented": (C.AugmentedLagrangian, "simultaneous", _sgd(0.2), _sgd(1.0, maximize=True), 150),
}


@pytest.mark.parametrize("case", list(CASES))
def test_converges_to_the_kkt_point(case):
    cls, method, primal, dual, steps = CASES[case]
    kw = {"penalty": 1.0} if cls is C.AugmentedLagrangian else {}
    p, x, form = _solve(cls(_constraints(), dtype=torch.float64, **kw), method, primal, dual, steps)
    torch.testing.assert_close(x, p["x"], atol=TOL, rtol=0)
    torch.testing.assert_close(form.multipliers["ineq"].detach(), p["lam"], atol=TOL, rtol=0)
    torch.testing.assert_close(form.multipliers["eq"].detach(), p["mu"], atol=TOL, rtol=0)


def _penalty_run(p, rho, lr, steps, schedule=None):
    form = C.QuadraticPenalty([C.Constraint("ineq", size=3), C.Constraint("eq", kind=C.EQUALITY)], penalty=rho)
    x = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    pd = C.PrimalDual(form.double(), torch.optim.SGD([x], lr=lr), penalty_schedule=schedule)
    for _ in range(steps):
        pd.step(lambda: (0.5 * x @ p["q"] @ x + p["c"] @ x, {"ineq": p["a"] @ x - p["b"], "eq": p["e"] @ x - p["d"]}))
    return x.detach(), form


def test_quadratic_penalty_reaches_its_closed_form_minimizer():
    """Equality-only penalty: x_ρ solves (Q + ρ EᵀE) x = −c + ρ Eᵀd; a growing ρ (schedule) ends at x_ρmax, nearer
    the constrained optimum."""
    p = _qp()
    p["b"] = p["b"] + 100.0  # inequalities far from active: the problem is equality-constrained

    def x_rho(rho):
        return torch.linalg.solve(p["q"] + rho * p["e"].T @ p["e"], -p["c"] + rho * p["e"].T @ p["d"])

    kkt = torch.cat([torch.cat([p["q"], p["e"].T], 1), torch.cat([p["e"], torch.zeros(1, 1, dtype=torch.float64)], 1)])
    x_eq = torch.linalg.solve(kkt, torch.cat([-p["c"], p["d"]]))[:4]
    x, _ = _penalty_run(p, 4.0, 0.15, 300)
    torch.testing.assert_close(x, x_rho(4.0), atol=1e-12, rtol=0)
    schedule = C.PenaltySchedule(growth=2.0, every=100, max=32.0, tolerance=1e-8)
    y, form = _penalty_run(p, 1.0, 0.015, 1200, schedule)
    assert float(form.penalty_of("eq")) == 32.0 and float(form.penalty_of("ineq")) == 1.0  # ineq never violated
    torch.testing.assert_close(y, x_rho(32.0), atol=1e-6, rtol=0)
    assert float((y - x_eq).norm()) < float((x - x_eq).norm()) / 5


def test_augmented_lagrangian_penalty_schedule_converges():
    form = C.AugmentedLagrangian(_constraints(), penalty=0.5, dtype=torch.float64)
    schedule = C.PenaltySchedule(growth=2.0, every=20, max=2.0)
    p, x, form = _solve(form, "simultaneous", _sgd(0.2), _sgd(1.0, maximize=True), 200, schedule)
    assert float(form.penalty_of("eq")) == 2.0
    torch.testing.assert_close(x, p["x"], atol=TOL, rtol=0)
    torch.testing.assert_close(form.multipliers["ineq"].detach(), p["lam"], atol=TOL, rtol=0)
