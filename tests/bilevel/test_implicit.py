"""optimlab.bilevel.implicit and linear_solve: IFT gradients of a solution map against the closed form, under every
torch.func transform (grad, vjp, jacrev, jacfwd, hessian, vmap) and plain .backward(); the linear solvers against
torch.linalg.solve and the explicit Neumann series."""

from __future__ import annotations

import functools

import pytest
import torch

from optimlab import bilevel as B
from tests.bilevel._problems import F64, ridge
from tests.reference import bilevel_ift as R


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SOLVES = {"cg": B.cg, "neumann": B.neumann, "direct": B.direct}


def _neumann_for(problem, lam, accuracy=1e-11):
    """The Neumann series with the optimal α = 2/(λ_min + λ_max) and enough terms for ``accuracy``."""
    lo, hi = problem.curvature(lam)
    ratio = (hi - lo) / (hi + lo)
    terms = int(torch.log(torch.tensor(accuracy)) / torch.log(torch.tensor(ratio))) + 1
    return functools.partial(B.neumann, terms=terms, alpha=2 / (lo + hi))


def _maps(problem, solve):
    """(IFT solution map through custom_argmin, the same through custom_root, the closed form)."""

    @B.custom_argmin(problem.inner, linear_solve=solve)
    def argmin(init, lam):
        return problem.solution(lam)  # any solver: here the exact one, whose iterations are never differentiated

    @B.custom_root(lambda w, lam: torch.func.grad(problem.inner)(w, lam), linear_solve=solve)
    def root(init, lam):
        return problem.solution(lam)

    init = torch.zeros(problem.x.shape[1], dtype=F64)
    return (lambda lam: argmin(init, lam)), (lambda lam: root(init, lam)), problem.solution


@pytest.mark.parametrize("solve", SOLVES, ids=str)
def test_jacobians_match_closed_form(solve):
    problem = ridge(d=4)
    lam = 0.3 * torch.randn(4, generator=torch.Generator().manual_seed(1), dtype=F64)
    exact = torch.func.jacrev(problem.solution)(lam)  # autograd through torch.linalg.solve
    tol = 1e-9
    linear_solve = _neumann_for(problem, lam) if solve == "neumann" else SOLVES[solve]
    for fn in _maps(problem, linear_solve)[:2]:
        torch.testing.assert_close(torch.func.jacrev(fn)(lam), exact, rtol=tol, atol=tol)
        torch.testing.assert_close(torch.func.jacfwd(fn)(lam), exact, rtol=tol, atol=tol)


def test_every_transform_composes():
    problem = ridge(d=5)
    argmin, root, closed = _maps(problem, B.cg)
    lam = 0.2 * torch.randn(5, generator=torch.Generator().manual_seed(2), dtype=F64)

    def hyper(fn):
        return lambda lam_: problem.outer(fn(lam_), lam_)

    exact_grad = torch.func.grad(hyper(closed))(lam)
    torch.testing.assert_close(exact_grad, torch.as_tensor(problem.hypergradient(lam)), rtol=1e-10, atol=1e-12)
    for fn in (argmin, root):
        torch.testing.assert_close(torch.func.grad(hyper(fn))(lam), exact_grad, rtol=1e-9, atol=1e-12)
        # second order: the backward is itself differentiable (jacfwd over jacrev)
        torch.testing.assert_close(torch.func.hessian(hyper(fn))(lam), torch.func.hessian(hyper(closed))(lam))
        # vjp with an arbitrary cotangent
        v = torch.linspace(-1, 1, 5, dtype=F64)
        torch.testing.assert_close(torch.func.vjp(fn, lam)[1](v)[0], torch.func.vjp(closed, lam)[1](v)[0])
        # plain autograd
        leaf = lam.clone().requires_grad_(True)
        hyper(fn)(leaf).backward()
        torch.testing.assert_close(leaf.grad, exact_grad, rtol=1e-9, atol=1e-12)


def test_vmap_over_hyperparameters_equals_loop():
    problem = ridge(d=5)
    lams = 0.5 * torch.randn(7, 5, generator=torch.Generator().manual_seed(3), dtype=F64)
    for fn in _maps(problem, B.cg)[:2]:
        hyper = torch.func.grad(lambda lam_, fn=fn: problem.outer(fn(lam_), lam_))
        batched = torch.func.vmap(hyper)(lams)
        looped = torch.stack([hyper(lam) for lam in lams])
        torch.testing.assert_close(batched, looped, rtol=1e-10, atol=1e-13)
        torch.testing.assert_close(batched, torch.stack([problem.hypergradient(lam) for lam in lams]))
        torch.testing.assert_close(torch.func.vmap(fn)(lams), torch.stack([problem.solution(lam) for lam in lams]))


def test_gradients_reach_extra_arguments():
    """Every params entry gets its IFT gradient: here the training targets y (data-dependent hypergradients)."""
    problem = ridge(d=4)
    lam = torch.zeros(4, dtype=F64)

    def inner(w, lam_, y):
        return 0.5 * ((problem.x @ w - y) ** 2).mean() + 0.5 * (lam_.exp() * w * w).sum()

    def closed(lam_, y):
        return torch.linalg.solve(problem.matrix(lam_), problem.x.T @ y / len(y))

    @B.custom_argmin(inner)
    def solve(init, lam_, y):
        return closed(lam_, y)

    init = torch.zeros(4, dtype=F64)
    got = torch.func.jacrev(lambda y: solve(init, lam, y))(problem.y)
    torch.testing.assert_close(got, torch.func.jacrev(lambda y: closed(lam, y))(problem.y))


# ----------------------------------------------------------------------------- linear solvers


def _spd(n=6, seed=0, cond=20.0):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=F64))
    return q @ torch.diag(torch.logspace(0, torch.log10(torch.tensor(cond)).item(), n, dtype=F64)) @ q.T


def test_cg_solves_and_matches_textbook_reference():
    a = _spd()
    b = torch.randn(6, generator=torch.Generator().manual_seed(4), dtype=F64)
    torch.testing.assert_close(B.cg(lambda v: a @ v, b), torch.linalg.solve(a, b), rtol=1e-9, atol=1e-12)
    for k in (1, 2, 3):  # the same Krylov iterates as the plain recurrence, step by step
        torch.testing.assert_close(B.cg(lambda v: a @ v, b, maxiter=k), R.conjugate_gradient(a, b, maxiter=k))
    x0 = torch.ones(6, dtype=F64)
    torch.testing.assert_close(B.cg(lambda v: a @ v, b, x0=x0, maxiter=2), R.conjugate_gradient(a, b, x0=x0, maxiter=2))


def test_cg_under_vmap_masks_converged_systems():
    a = _spd()
    bs = torch.randn(5, 6, generator=torch.Generator().manual_seed(5), dtype=F64)
    bs[0] = 0.0  # converged from the start: must stay exactly zero (no 0/0)
    batched = torch.func.vmap(lambda b: B.cg(lambda v: a @ v, b, maxiter=30))(bs)
    assert torch.equal(batched[0], torch.zeros(6, dtype=F64))
    torch.testing.assert_close(batched, torch.stack([B.cg(lambda v: a @ v, b, maxiter=30) for b in bs]))


def test_neumann_is_the_explicit_series_and_converges():
    a = _spd(cond=5.0)
    b = torch.randn(6, generator=torch.Generator().manual_seed(6), dtype=F64)
    for terms in (0, 1, 5, 20):
        torch.testing.assert_close(
            B.neumann(lambda v: a @ v, b, terms=terms, alpha=0.3), R.neumann_inverse(a, terms, 0.3) @ b
        )
    torch.testing.assert_close(B.neumann(lambda v: a @ v, b, terms=300, alpha=0.3), torch.linalg.solve(a, b))


def test_direct_handles_matrix_shaped_unknowns():
    a = _spd(n=6)
    b = torch.randn(2, 3, generator=torch.Generator().manual_seed(7), dtype=F64)
    x = B.direct(lambda v: (a @ v.reshape(6)).reshape(2, 3), b)
    torch.testing.assert_close(x.reshape(6), torch.linalg.solve(a, b.reshape(6)))


@pytest.mark.parametrize(
    "call, field",
    [
        (lambda: B.cg(lambda v: v, torch.ones(2), maxiter=0), "maxiter"),
        (lambda: B.cg(lambda v: v, torch.ones(2), rtol=-1.0), "rtol"),
        (lambda: B.cg(lambda v: v, torch.ones(2), atol=float("nan")), "atol"),
        (lambda: B.neumann(lambda v: v, torch.ones(2), terms=-1), "terms"),
        (lambda: B.neumann(lambda v: v, torch.ones(2), alpha=0.0), "alpha"),
    ],
)
def test_bad_solver_options_raise(call, field):
    with pytest.raises(ValueError, match=field):
        call()
