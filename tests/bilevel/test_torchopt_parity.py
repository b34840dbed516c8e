"""Optional comparison with TorchOpt's implicit differentiation (``torchopt.diff.implicit.custom_root``) on the
ridge problem. TorchOpt's function works with ``.backward()`` but not under ``torch.func`` transforms (its
autograd.Function has no ``setup_context``: metaopt/torchopt #223), which is what optimlab.bilevel adds."""

from __future__ import annotations

import warnings

import pytest
import torch

from optimlab import bilevel as B
from tests.bilevel._problems import F64, ridge

torchopt = pytest.importorskip("torchopt", reason="torchopt is not installed (optional parity extra)")


def _torchopt_solution_map(problem):
    solve = torchopt.linear_solve.solve_cg(maxiter=200, rtol=1e-13)

    @torchopt.diff.implicit.custom_root(lambda w, lam: torch.func.grad(problem.inner)(w, lam), argnums=1, solve=solve)
    def solution(init, lam):
        return problem.solution(lam.detach())

    return solution


def test_same_hypergradient_as_torchopt_on_ridge():
    torch.set_num_threads(1)
    problem = ridge()
    lam = torch.log(torch.full((10,), 0.2, dtype=F64))
    init = torch.zeros(10, dtype=F64)
    leaf = lam.clone().requires_grad_(True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torchopt calls the deprecated functorch.vjp
        problem.outer(_torchopt_solution_map(problem)(init, leaf), leaf).backward()
    ours = B.implicit_hypergradient(problem.problem, problem.solution(lam), lam)
    exact = problem.hypergradient(lam)
    torch.testing.assert_close(leaf.grad, exact, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ours, leaf.grad, rtol=1e-9, atol=1e-12)


def test_torchopt_does_not_compose_with_torch_func_but_ours_does():
    problem = ridge()
    lam = torch.log(torch.full((10,), 0.2, dtype=F64))
    init = torch.zeros(10, dtype=F64)
    theirs = _torchopt_solution_map(problem)
    with pytest.raises(RuntimeError, match="setup_context"):
        torch.func.grad(lambda l: problem.outer(theirs(init, l), l))(lam)

    @B.custom_argmin(problem.inner)
    def ours(init_, lam_):
        return problem.solution(lam_)

    got = torch.func.grad(lambda l: problem.outer(ours(init, l), l))(lam)
    torch.testing.assert_close(got, problem.hypergradient(lam), rtol=1e-9, atol=1e-12)
