"""optimlab.curvature: power iteration and Lanczos against torch.linalg.eigvalsh / eigh."""

from __future__ import annotations

import functools

import pytest
import torch

from optimlab import curvature as C


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny: one thread avoids OpenMP barrier stalls when the machine is oversubscribed."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SHAPES = [(10,), (4, 5), (20,)]  # d = 50 split over three "parameters"
D = 50


def _spd(eigenvalues, seed=0):
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(len(eigenvalues), len(eigenvalues), generator=g, dtype=torch.float64))
    return (Q * torch.as_tensor(eigenvalues, dtype=torch.float64)) @ Q.T


def _params(dtype=torch.float64, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g, dtype=torch.float64).to(dtype).requires_grad_(True) for s in SHAPES]


def _quadratic_hvp(A, params):
    """HVP operator of f(θ) = ½ θᵀAθ, through real double backward (not a matmul by A)."""
    theta = C.flatten(params)
    loss = 0.5 * theta @ (A.to(theta.dtype) @ theta)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    return functools.partial(C.hvp, grads, params)


def _spectrum(seed=0):
    g = torch.Generator().manual_seed(seed)
    # distinct, well separated at the top, both signs (an indefinite "Hessian")
    return torch.cat(
        [torch.tensor([10.0, 7.0, 5.0]), torch.rand(D - 5, generator=g) * 3 - 1, torch.tensor([-4.0, -6.0])]
    )


def test_lanczos_full_dimension_recovers_the_whole_spectrum():
    A = _spd(_spectrum())
    params = _params()
    res = C.lanczos(_quadratic_hvp(A, params), params, C.make_generator(0), k=D, num_iters=D)
    expected = torch.linalg.eigvalsh(A).flip(0)
    torch.testing.assert_close(res.eigenvalues, expected, rtol=1e-9, atol=1e-9)
    assert res.num_hvps == D


@pytest.mark.parametrize("which", ["largest", "smallest", "magnitude"])
def test_lanczos_top_k_from_a_small_krylov_space(which):
    A = _spd(_spectrum(), seed=3)
    params = _params()
    res = C.lanczos(_quadratic_hvp(A, params), params, C.make_generator(1), k=2, num_iters=30, which=which)
    evals = torch.linalg.eigvalsh(A)
    expected = {
        "largest": evals.flip(0)[:2],
        "smallest": evals[:2],
        "magnitude": evals[evals.abs().argsort(descending=True)][:2],
    }[which]
    torch.testing.assert_close(res.eigenvalues, expected, rtol=1e-8, atol=1e-8)
    # Ritz vectors are unit eigenvectors: ‖A v − λ v‖ small, and orthogonal to each other
    V = res.eigenvectors
    assert V.shape == (2, D)
    torch.testing.assert_close(V @ V.T, torch.eye(2, dtype=torch.float64), atol=1e-8, rtol=0)
    residual = (V @ A - res.eigenvalues[:, None] * V).norm(dim=1)
    assert (residual < 1e-5).all(), residual


def test_lanczos_on_a_nonlinear_loss_matches_autograd_hessian():
    g = torch.Generator().manual_seed(4)
    X = torch.randn(30, 6, generator=g, dtype=torch.float64)
    y = torch.randn(30, generator=g, dtype=torch.float64)
    w = torch.randn(6, generator=g, dtype=torch.float64) * 0.3

    def loss_fn(w):
        return (torch.tanh(X @ w) - y).pow(2).mean() + 0.1 * (w**4).sum()

    H = torch.autograd.functional.hessian(loss_fn, w)
    params = [w.clone().requires_grad_(True)]
    grads = torch.autograd.grad(loss_fn(params[0]), params, create_graph=True)
    res = C.lanczos(functools.partial(C.hvp, grads, params), params, C.make_generator(0), k=6, num_iters=6)
    torch.testing.assert_close(res.eigenvalues, torch.linalg.eigvalsh(H).flip(0), rtol=1e-9, atol=1e-11)
    lam_max = C.sharpness(functools.partial(C.hvp, grads, params), params, C.make_generator(0))
    torch.testing.assert_close(lam_max, torch.linalg.eigvalsh(H)[-1], rtol=1e-9, atol=1e-11)


def test_lanczos_finds_repeated_eigenvalues_with_multiplicity():
    spectrum = torch.cat([torch.full((3,), 5.0), torch.full((D - 3,), 1.0)])  # two distinct values
    A = _spd(spectrum, seed=5)
    params = _params()
    res = C.lanczos(_quadratic_hvp(A, params), params, C.make_generator(2), k=4, num_iters=8)
    torch.testing.assert_close(res.eigenvalues, torch.tensor([5.0, 5.0, 5.0, 1.0], dtype=torch.float64))
    V = res.eigenvectors
    torch.testing.assert_close(V @ V.T, torch.eye(4, dtype=torch.float64), atol=1e-8, rtol=0)


@pytest.mark.parametrize("k", [1, 3])
def test_power_iteration_top_k_by_magnitude(k):
    spectrum = torch.cat([torch.tensor([20.0, -12.0, 6.0]), torch.linspace(-2, 2, D - 3)])
    A = _spd(spectrum, seed=6)
    params = _params()
    res = C.power_iteration(_quadratic_hvp(A, params), params, C.make_generator(3), k=k, max_iters=500, tol=1e-12)
    torch.testing.assert_close(
        res.eigenvalues, torch.tensor([20.0, -12.0, 6.0], dtype=torch.float64)[:k], rtol=1e-6, atol=0
    )
    V = res.eigenvectors
    residual = (V @ A - res.eigenvalues[:, None] * V).norm(dim=1)
    assert (residual < 1e-3).all(), residual


def test_eigen_solvers_are_deterministic_given_the_generator_and_work_in_float32():
    A = _spd(_spectrum(), seed=7)
    params = _params(torch.float32)
    op = _quadratic_hvp(A, params)
    a = C.lanczos(op, params, C.make_generator(9), k=2)
    b = C.lanczos(op, params, C.make_generator(9), k=2)
    assert torch.equal(a.eigenvalues, b.eigenvalues) and torch.equal(a.eigenvectors, b.eigenvectors)
    assert a.eigenvalues.dtype == torch.float32
    torch.testing.assert_close(a.eigenvalues, torch.tensor([10.0, 7.0]), rtol=1e-4, atol=1e-4)
    p = C.power_iteration(op, params, C.make_generator(9), max_iters=200)
    q = C.power_iteration(op, params, C.make_generator(9), max_iters=200)
    assert torch.equal(p.eigenvalues, q.eigenvalues)
    torch.testing.assert_close(p.eigenvalues, torch.tensor([10.0]), rtol=1e-3, atol=0)
    # unflatten gives the eigenvector in the parameters' shapes
    pieces = C.unflatten(a.eigenvectors[0], params)
    assert [t.shape for t in pieces] == [p.shape for p in params]


def test_eigen_argument_checks():
    params = _params()
    with pytest.raises(ValueError, match="which"):
        C.lanczos(lambda v: v, params, C.make_generator(0), which="top")
    with pytest.raises(ValueError, match="k"):
        C.lanczos(lambda v: v, params, C.make_generator(0), k=D + 1)
    with pytest.raises(ValueError, match="k"):
        C.power_iteration(lambda v: v, params, C.make_generator(0), k=0)
