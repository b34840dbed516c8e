"""Hypergradients: the ridge closed form (cosine and relative error per method), parity with the explicit-matrix
references on a non-quadratic problem, truncated unrolling against forward-mode accumulation, vmap over λ."""

from __future__ import annotations

import functools

import pytest
import torch

from optimlab import bilevel as B
from tests.bilevel._problems import F64, logistic, ridge
from tests.reference import bilevel_ift as R
from tests.reference import bilevel_unroll as RU


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _cosine(a, b):
    return float(a @ b / (a.norm() * b.norm()))


def _relative_error(a, b):
    return float((a - b).norm() / b.norm())


def ridge_estimates(problem, lam):
    """Each method's hypergradient estimate at λ on the ridge problem (inner problems solved as the method would)."""
    lo, hi = problem.curvature(lam)
    p = problem.problem
    w_star = problem.solution(lam)
    w0 = torch.zeros_like(w_star)
    return {
        "IFT + CG": B.implicit_hypergradient(p, w_star, lam),
        "IFT + Neumann (K=20)": B.implicit_hypergradient(
            p, w_star, lam, linear_solve=functools.partial(B.neumann, terms=20, alpha=1 / hi)
        ),
        "IFT + direct": B.implicit_hypergradient(p, w_star, lam, linear_solve=B.direct),
        "unrolled (T=300)": B.unrolled_hypergradient(p, w0, lam, steps=300, lr=1 / hi)[0],
        "F2SA (μ=1e4)": B.F2SA(
            p, lam, w_star, outer_lr=1.0, inner_lr=1 / hi, inner_steps=500, multiplier=1e4, max_multiplier=1e4
        ).hypergradient(),
        "HOAG (ε=1e-8)": B.HOAG(p, lam, w0, outer_lr=1.0, inner_lr=1 / hi, tol=1e-8).hypergradient(),
    }


# the bound each estimate must meet, from its known error: exact methods to rounding; Neumann's truncation error is
# (1 − λ_min/λ_max)^{K+1}; F2SA's penalty bias is O(1/μ)
RELATIVE_ERROR_BOUND = {
    "IFT + CG": 1e-9,
    "IFT + direct": 1e-9,
    "IFT + Neumann (K=20)": 0.3,
    "unrolled (T=300)": 1e-6,
    "F2SA (μ=1e4)": 1e-2,
    "HOAG (ε=1e-8)": 1e-6,
}


def test_ridge_closed_form_hypergradient(record_property):
    problem = ridge()
    lam = torch.log(torch.full((10,), 0.1, dtype=F64)) + 0.5 * torch.randn(
        10, generator=torch.Generator().manual_seed(1), dtype=F64
    )
    exact = problem.hypergradient(lam)
    lo, hi = problem.curvature(lam)
    for name, estimate in ridge_estimates(problem, lam).items():
        cos, rel = _cosine(estimate, exact), _relative_error(estimate, exact)
        record_property(name, f"cosine {cos:.8f}, relative error {rel:.2e}")
        print(f"{name:24s} cosine {cos:.8f}  relative error {rel:.2e}")
        assert cos > 0.999 or name.startswith("IFT + Neumann"), name
        assert rel <= RELATIVE_ERROR_BOUND[name], (name, rel)
    # Neumann's error shrinks as the series grows and reaches the exact value
    errors = [
        _relative_error(
            B.implicit_hypergradient(
                problem.problem,
                problem.solution(lam),
                lam,
                linear_solve=functools.partial(B.neumann, terms=k, alpha=1 / hi),
            ),
            exact,
        )
        for k in (1, 5, 20, 100, 400)
    ]
    assert all(b < a for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-6, errors


@pytest.mark.parametrize("solver", ["cg", "neumann", "direct"])
def test_ift_parity_with_explicit_reference(solver):
    """A non-quadratic inner problem (ℓ2-logistic), at a non-stationary point too: the formula, not the solution."""
    problem = logistic()
    lam = torch.tensor([-1.0, 0.5, 0.0, -2.0], dtype=F64)
    w = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=F64)
    f, g = problem.outer, problem.inner
    if solver == "cg":
        got, want = (
            B.implicit_hypergradient(problem.problem, w, lam, linear_solve=functools.partial(B.cg, maxiter=3)),
            (R.cg_hypergradient(f, g, w, lam, maxiter=3)),
        )
    elif solver == "neumann":
        solve = functools.partial(B.neumann, terms=7, alpha=0.5)
        got, want = (
            B.implicit_hypergradient(problem.problem, w, lam, linear_solve=solve),
            R.neumann_hypergradient(f, g, w, lam, 7, 0.5),
        )
    else:
        got, want = (
            B.implicit_hypergradient(problem.problem, w, lam, linear_solve=B.direct),
            R.ift_hypergradient(f, g, w, lam),
        )
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("truncate", [None, 1, 4])
def test_unrolled_matches_forward_mode_reference(truncate):
    problem = logistic()
    lam = torch.tensor([-1.0, 0.5, 0.0, -2.0], dtype=F64)
    w0 = torch.zeros(4, dtype=F64)
    got, w_t = B.unrolled_hypergradient(problem.problem, w0, lam, steps=8, lr=0.5, truncate=truncate)
    want, w_ref = RU.unrolled_hypergradient(problem.outer, problem.inner, w0, lam, 8, 0.5, truncate)
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-13)
    torch.testing.assert_close(w_t, w_ref, rtol=1e-12, atol=1e-14)


def test_hypergradients_vmap_over_lambda_equal_a_loop():
    problem = logistic()
    lams = torch.randn(5, 4, generator=torch.Generator().manual_seed(2), dtype=F64) - 1.0
    w = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=F64)
    w0 = torch.zeros(4, dtype=F64)
    fns = {
        "ift-cg": lambda lam: B.implicit_hypergradient(problem.problem, w, lam),
        "ift-neumann": lambda lam: B.implicit_hypergradient(
            problem.problem, w, lam, linear_solve=functools.partial(B.neumann, terms=5, alpha=0.5)
        ),
        "unrolled": lambda lam: B.unrolled_hypergradient(problem.problem, w0, lam, steps=5, lr=0.5, truncate=3)[0],
    }
    for name, fn in fns.items():
        torch.testing.assert_close(torch.func.vmap(fn)(lams), torch.stack([fn(lam) for lam in lams]), msg=name)


@pytest.mark.parametrize(
    "kwargs, field",
    [({"steps": 0}, "steps"), ({"lr": 0.0}, "lr"), ({"truncate": 0}, "truncate"), ({"truncate": 9}, "truncate")],
)
def test_unrolled_bad_arguments_raise(kwargs, field):
    problem = logistic()
    args = {"steps": 8, "lr": 0.1} | kwargs
    with pytest.raises(ValueError, match=field):
        B.unrolled_hypergradient(problem.problem, torch.zeros(4, dtype=F64), torch.zeros(4, dtype=F64), **args)
