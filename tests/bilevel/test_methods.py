"""The outer-loop methods: trajectory parity with the references, the analytic solution of a quadratic bilevel
problem reached by every method, exact resume through state_dict, and bad hyperparameters."""

from __future__ import annotations

import functools
import io

import pytest
import torch

from optimlab import bilevel as B
from tests.bilevel._problems import F64, logistic, quadratic
from tests.reference import bilevel_first_order as RF
from tests.reference import bilevel_hoag as RH
from tests.reference import bilevel_ift as R
from tests.reference import bilevel_unroll as RU


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


LAM0 = torch.tensor([-1.0, 0.5, 0.0, -2.0], dtype=F64)
W0 = torch.zeros(4, dtype=F64)
STEPS = 5

# name -> (factory(problem, lam, w), reference(f, g, lam, w, steps) -> [(lam, w)])
METHODS = {
    "aid-cg": (
        lambda p, lam, w: B.AID(p, lam, w, outer_lr=2.0, inner_lr=0.5, inner_steps=3),
        lambda f, g, lam, w, n: R.aid(f, g, lam, w, n, 2.0, 0.5, 3, R.cg_hypergradient),
    ),
    "aid-neumann": (
        lambda p, lam, w: B.AID(
            p,
            lam,
            w,
            outer_lr=2.0,
            inner_lr=0.5,
            inner_steps=3,
            linear_solve=functools.partial(B.neumann, terms=6, alpha=0.5),
        ),
        lambda f, g, lam, w, n: R.aid(
            f, g, lam, w, n, 2.0, 0.5, 3, lambda *a: R.neumann_hypergradient(*a, terms=6, alpha=0.5)
        ),
    ),
    "unroll": (
        lambda p, lam, w: B.TruncatedUnroll(p, lam, w, outer_lr=2.0, inner_lr=0.5, inner_steps=4, truncate=2),
        lambda f, g, lam, w, n: RU.truncated_unroll(f, g, lam, w, n, 2.0, 0.5, 4, 2),
    ),
    "hoag": (
        lambda p, lam, w: B.HOAG(p, lam, w, outer_lr=2.0, inner_lr=0.5, tol=0.05, decay=0.5),
        lambda f, g, lam, w, n: RH.hoag(f, g, lam, w, n, 2.0, 0.5, 0.05, 0.5),
    ),
    "f2sa": (
        lambda p, lam, w: B.F2SA(
            p,
            lam,
            w,
            outer_lr=0.5,
            inner_lr=0.5,
            inner_steps=3,
            multiplier=2.0,
            multiplier_increment=3.0,
            max_multiplier=9.0,
        ),
        lambda f, g, lam, w, n: RF.f2sa(f, g, lam, w, n, 0.5, 0.5, 3, 2.0, 3.0, 9.0),
    ),
    "penalty": (
        lambda p, lam, w: B.PenaltyBilevel(p, lam, w, outer_lr=0.1, inner_lr=0.5, penalty=5.0, inner_steps=3),
        lambda f, g, lam, w, n: RF.pbgd(f, g, lam, w, n, 0.1, 0.5, 5.0, 3),
    ),
}


@pytest.mark.parametrize("name", METHODS)
def test_trajectory_parity_with_reference(name):
    problem = logistic()
    make, reference = METHODS[name]
    method = make(problem.problem, LAM0, W0)
    want = reference(problem.outer, problem.inner, LAM0.clone(), W0.clone(), STEPS)
    for k, (lam, w) in enumerate(want):
        method.step()
        torch.testing.assert_close(method.lam, lam, rtol=1e-9, atol=1e-12, msg=f"{name} λ at step {k + 1}")
        torch.testing.assert_close(method.w, w, rtol=1e-9, atol=1e-12, msg=f"{name} w at step {k + 1}")
    assert int(method.outer_step) == STEPS


def _penalized_solution(q, gamma):
    """Exact minimizer over (x, w) of f(w, x) + γ(g(w, x) − min_z g(z, x)) (a quadratic: one linear solve)."""
    m = torch.linalg.solve(q.a, q.b)
    nx = q.b.shape[1]

    def objective(v):
        x, w = v[:nx], v[nx:]
        return q.outer(w, x) + gamma * (q.inner(w, x) - q.inner(m @ x, x))

    zero = torch.zeros(nx + q.a.shape[0], dtype=F64)
    h = torch.autograd.functional.hessian(objective, zero)
    grad = torch.func.grad(objective)(zero)
    return torch.linalg.solve(h, -grad)[:nx], h


def test_penalized_solution_approaches_the_bilevel_solution():
    q = quadratic(rho=1.0)
    errors = [float((_penalized_solution(q, g)[0] - q.solution()).norm()) for g in (1.0, 10.0, 100.0, 1000.0)]
    assert all(b < a / 5 for a, b in zip(errors, errors[1:])), errors  # O(1/γ)


# (factory, outer steps, relative tolerance to the bilevel solution x*)
QUADRATIC_RUNS = {
    "aid-cg": (lambda p, x, w, lr: B.AID(p, x, w, outer_lr=lr, inner_lr=0.5, inner_steps=10), 40, 1e-7),
    "aid-neumann": (
        lambda p, x, w, lr: B.AID(
            p,
            x,
            w,
            outer_lr=lr,
            inner_lr=0.5,
            inner_steps=10,
            linear_solve=functools.partial(B.neumann, terms=30, alpha=0.5),
        ),
        40,
        1e-7,
    ),
    "aid-direct": (
        lambda p, x, w, lr: B.AID(p, x, w, outer_lr=lr, inner_lr=0.5, inner_steps=10, linear_solve=B.direct),
        40,
        1e-7,
    ),
    "unroll": (lambda p, x, w, lr: B.TruncatedUnroll(p, x, w, outer_lr=lr, inner_lr=0.5, inner_steps=30), 40, 1e-7),
    "hoag": (lambda p, x, w, lr: B.HOAG(p, x, w, outer_lr=lr, inner_lr=0.5, tol=0.1, decay=0.7), 40, 1e-6),
    "f2sa": (
        lambda p, x, w, lr: B.F2SA(
            p,
            x,
            w,
            outer_lr=lr,
            inner_lr=0.5,
            inner_steps=10,
            multiplier=10.0,
            multiplier_increment=100.0,
            max_multiplier=1e4,
        ),
        40,
        1e-3,  # the O(1/μ) penalty bias at μ = 1e4
    ),
}


@pytest.mark.parametrize("name", QUADRATIC_RUNS)
def test_every_method_reaches_the_analytic_solution(name):
    q = quadratic(rho=1.0)
    x_star = q.solution()
    m = torch.linalg.solve(q.a, q.b)
    lr = 1.0 / (float(torch.linalg.eigvalsh(m.T @ m).max()) + q.rho)  # 1/L of the outer objective
    make, steps, tol = QUADRATIC_RUNS[name]
    method = make(q.problem, torch.zeros(3, dtype=F64), torch.zeros(4, dtype=F64), lr)
    for _ in range(steps):
        method.step()
    assert float((method.lam - x_star).norm() / x_star.norm()) < tol


def test_penalty_method_reaches_the_penalized_solution():
    """V-PBGD with the paper's single step α = inner_lr/γ converges to the penalized problem's solution, which is
    within O(1/γ) of x*."""
    q = quadratic(rho=1.0)
    gamma = 10.0
    x_gamma, hessian = _penalized_solution(q, gamma)
    eig = torch.linalg.eigvalsh(hessian)
    alpha = 1.0 / float(eig[-1])  # the paper's single step 1/L of the penalized objective
    steps = int(12.0 / (alpha * float(eig[0]))) + 1  # contraction (1 − α λ_min) per step: e^-12
    x0, w0 = torch.zeros(3, dtype=F64), torch.zeros(4, dtype=F64)
    method = B.PenaltyBilevel(q.problem, x0, w0, outer_lr=alpha, inner_lr=alpha * gamma, penalty=gamma, inner_steps=5)
    for _ in range(steps):
        method.step()
    assert float((method.lam - x_gamma).norm() / x_gamma.norm()) < 1e-4
    assert float((method.lam - q.solution()).norm() / q.solution().norm()) < 0.1


@pytest.mark.parametrize("name", METHODS)
def test_exact_resume(name):
    problem = logistic()
    make, _ = METHODS[name]
    straight = make(problem.problem, LAM0, W0)
    for _ in range(4):
        straight.step()
    first = make(problem.problem, LAM0, W0)
    for _ in range(2):
        first.step()
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    resumed = make(problem.problem, torch.zeros(4, dtype=F64), torch.ones(4, dtype=F64))
    resumed.load_state_dict(torch.load(buffer, weights_only=True))
    for _ in range(2):
        resumed.step()
    for key, value in straight.state_dict().items():
        assert torch.equal(resumed.state_dict()[key], value), key


@pytest.mark.parametrize(
    "cls, kwargs, field",
    [
        (B.AID, {"outer_lr": 0.0, "inner_lr": 0.1}, "outer_lr"),
        (B.AID, {"outer_lr": 0.1, "inner_lr": -1.0}, "inner_lr"),
        (B.AID, {"outer_lr": 0.1, "inner_lr": 0.1, "inner_steps": -1}, "inner_steps"),
        (B.TruncatedUnroll, {"outer_lr": 0.1, "inner_lr": 0.1, "inner_steps": 3, "truncate": 4}, "truncate"),
        (B.HOAG, {"outer_lr": 0.1, "inner_lr": 0.1, "decay": 1.0}, "decay"),
        (B.HOAG, {"outer_lr": 0.1, "inner_lr": 0.1, "tol": 0.0}, "tol"),
        (B.HOAG, {"outer_lr": 0.1, "inner_lr": 0.1, "schedule": "constant"}, "schedule"),
        (B.HOAG, {"outer_lr": 0.1, "inner_lr": 0.1, "max_cg_steps": 0}, "max_cg_steps"),
        (B.F2SA, {"outer_lr": 0.1, "inner_lr": 0.1, "multiplier": 0.0}, "multiplier"),
        (B.F2SA, {"outer_lr": 0.1, "inner_lr": 0.1, "multiplier": 5.0, "max_multiplier": 1.0}, "max_multiplier"),
        (B.F2SA, {"outer_lr": 0.1, "inner_lr": 0.1, "multiplier_increment": -1.0}, "multiplier_increment"),
        (B.PenaltyBilevel, {"outer_lr": 0.1, "inner_lr": 0.1, "penalty": float("inf")}, "penalty"),
    ],
)
def test_bad_hyperparameters_raise(cls, kwargs, field):
    with pytest.raises(ValueError, match=field):
        cls(logistic().problem, LAM0, W0, **kwargs)


def test_hoag_tolerances_are_summable():
    geometric = sum(B.hoag_tolerance(k, tol=1.0, decay=0.9) for k in range(10_000))
    quadratic_ = sum(B.hoag_tolerance(k, tol=1.0, schedule="quadratic") for k in range(10_000))
    assert abs(geometric - 10.0) < 1e-9 and abs(quadratic_ - torch.pi**2 / 6) < 1e-3


def test_step_returns_the_direction_it_used():
    problem = logistic()
    method = B.AID(problem.problem, LAM0, W0, outer_lr=0.5, inner_lr=0.5, inner_steps=2)
    before = method.lam.clone()
    p = method.step()
    torch.testing.assert_close(method.lam, before - 0.5 * p)
