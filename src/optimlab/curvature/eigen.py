"""Top Hessian eigenpairs from Hessian-vector products: power iteration and Lanczos.

* :func:`power_iteration` — repeated ``v ← Hv/‖Hv‖`` converges to the eigenvector of the eigenvalue of
  largest *magnitude*; further pairs by deflation (each new iterate is kept orthogonal to the pairs already
  found), as in PyHessian (Yao et al. 2020, arXiv:1912.07145). The sharpness λ_max of a loss near a minimum
  (Hessian close to PSD) is the first eigenvalue.
* :func:`lanczos` — Lanczos (1950), *An iteration method for the solution of the eigenvalue problem of linear
  differential and integral operators*: m HVPs build an orthonormal Krylov basis Q and a tridiagonal
  T = QᵀHQ whose eigenvalues (Ritz values) approximate H's extreme eigenvalues, largest and smallest
  (algebraically) first. Full reorthogonalization (classical Gram–Schmidt against the whole basis, applied
  twice) keeps Q orthonormal in floating point, so no spurious copies of converged eigenvalues appear
  (Paige 1971; Golub & Van Loan, *Matrix Computations*, §10.3). This is what FOSI (Sivan et al. 2024,
  arXiv:2302.08484) uses to extract its top-k curvature subspace.

Both take an HVP operator (``vectors -> H vectors`` on lists shaped like the parameters, see
:mod:`optimlab.curvature.hvp`), draw their starting vector from a caller-supplied ``torch.Generator`` (the result
is deterministic given the generator's state) and work in at least float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from .hvp import HVPFn
from .vectors import flatten, unflatten, work_dtype

WHICH = ("largest", "smallest", "magnitude")


class EigenResult(NamedTuple):
    """Eigenpairs: ``eigenvalues`` (k,), ``eigenvectors`` (k, d) flat and unit-norm (row i belongs to value i;
    :func:`optimlab.curvature.vectors.unflatten` gives them the parameters' shapes), and ``num_hvps`` spent."""

    eigenvalues: Tensor
    eigenvectors: Tensor
    num_hvps: int


def _operator(hvp_fn: HVPFn, params: Sequence[Tensor], dtype: torch.dtype):
    params = list(params)

    def apply(q: Tensor) -> Tensor:
        return flatten(list(hvp_fn(unflatten(q, params))), dtype=dtype)

    return apply


def _start(params: Sequence[Tensor], generator: torch.Generator, dtype: torch.dtype) -> Tensor:
    d = sum(p.numel() for p in params)
    v = torch.randn(d, generator=generator, device=generator.device, dtype=torch.float64)
    v = v.to(device=params[0].device, dtype=dtype)
    return v / v.norm()


def _orthogonalize(v: Tensor, basis: Tensor) -> Tensor:
    """Remove the components of ``v`` along the orthonormal rows of ``basis`` (Gram–Schmidt, twice)."""
    if basis.shape[0] == 0:
        return v
    for _ in range(2):
        v = v - basis.T @ (basis @ v)
    return v


def power_iteration(
    hvp_fn: HVPFn,
    params: Sequence[Tensor],
    generator: torch.Generator,
    *,
    k: int = 1,
    max_iters: int = 100,
    tol: float = 1e-6,
) -> EigenResult:
    """The ``k`` eigenpairs of largest magnitude |λ| by power iteration with deflation.

    Each pair iterates ``v ← P Hv/‖P Hv‖`` (P projects out the pairs already found) until the Rayleigh
    quotient changes by less than ``tol`` relative to its size, or ``max_iters`` HVPs. The eigenvalues keep
    their sign. Convergence is geometric in |λ_{i+1}/λ_i|; prefer :func:`lanczos` when eigenvalues cluster.
    """
    if int(k) < 1 or int(max_iters) < 1:
        raise ValueError(f"k and max_iters must be >= 1, got k={k}, max_iters={max_iters}")
    params = list(params)
    dtype = work_dtype(params[0].dtype)
    apply = _operator(hvp_fn, params, dtype)
    d = sum(p.numel() for p in params)
    if k > d:
        raise ValueError(f"k={k} exceeds the dimension {d}")
    values: list[Tensor] = []
    vectors = torch.zeros((0, d), dtype=dtype, device=params[0].device)
    num_hvps = 0
    for _ in range(int(k)):
        v = _orthogonalize(_start(params, generator, dtype), vectors)
        v = v / v.norm()
        lam = None
        for _ in range(int(max_iters)):
            w = _orthogonalize(apply(v), vectors)
            num_hvps += 1
            new = torch.dot(w, v)
            norm = w.norm()
            if norm == 0:  # v lies in the null space of the deflated operator
                lam = new
                break
            v = w / norm
            if lam is not None and abs(float(new - lam)) <= tol * (abs(float(lam)) + 1e-30):
                lam = new
                break
            lam = new
        values.append(lam)
        vectors = torch.cat([vectors, v[None]])
    return EigenResult(torch.stack(values), vectors, num_hvps)


def lanczos(
    hvp_fn: HVPFn,
    params: Sequence[Tensor],
    generator: torch.Generator,
    *,
    k: int = 1,
    num_iters: int | None = None,
    which: str = "largest",
) -> EigenResult:
    """``k`` Ritz pairs of H from ``num_iters`` Lanczos steps with full reorthogonalization.

    Args:
        hvp_fn, params, generator: the HVP operator, tensors giving its shapes, the source of the start vector.
        k: number of eigenpairs returned.
        num_iters: Krylov dimension m (one HVP each); default ``max(20, 4k)``, capped at the dimension d. With
            m = d the result is exact up to rounding. If the Krylov space becomes invariant before m steps
            (H has fewer distinct eigenvalues than m along the start vector), Lanczos restarts from a new
            random direction orthogonal to it, so repeated eigenvalues are found with their multiplicity.
        which: ``"largest"`` (algebraic, default: λ_max first), ``"smallest"`` (λ_min first) or
            ``"magnitude"`` (largest |λ| first).

    Returns:
        :class:`EigenResult`; ``eigenvalues`` sorted as ``which`` asks, ``eigenvectors`` the Ritz vectors.

    Memory: the basis is an m × d matrix in the working dtype (m = 20 for a 10M-parameter model: 800 MB fp32).
    """
    if which not in WHICH:
        raise ValueError(f"which must be one of {WHICH}, got {which!r}")
    params = list(params)
    d = sum(p.numel() for p in params)
    if int(k) < 1 or k > d:
        raise ValueError(f"k must be in [1, {d}], got {k}")
    m = min(d, int(num_iters) if num_iters is not None else max(20, 4 * int(k)))
    if m < k:
        raise ValueError(f"num_iters={num_iters} is smaller than k={k}")
    dtype = work_dtype(params[0].dtype)
    apply = _operator(hvp_fn, params, dtype)
    device = params[0].device
    basis = torch.zeros((m, d), dtype=dtype, device=device)
    alphas: list[Tensor] = []
    betas: list[Tensor] = []
    q = _start(params, generator, dtype)
    scale = 0.0
    breakdown = 1e3 * torch.finfo(dtype).eps
    for j in range(m):
        basis[j] = q
        w = apply(q)
        alpha = torch.dot(w, q)
        alphas.append(alpha)
        w = w - alpha * q
        if j > 0:
            w = w - betas[-1] * basis[j - 1]
        w = _orthogonalize(w, basis[: j + 1])
        beta = w.norm()
        scale = max(scale, abs(float(alpha)), float(beta))
        if j == m - 1:
            break
        if float(beta) <= breakdown * max(scale, 1e-30):
            # the Krylov space is invariant: restart from a fresh direction orthogonal to it (T gets a zero
            # coupling, i.e. a new diagonal block); repeated eigenvalues then appear with their multiplicity
            q = _orthogonalize(_start(params, generator, dtype), basis[: j + 1])
            norm = q.norm()
            if float(norm) <= breakdown:
                break
            betas.append(torch.zeros((), dtype=dtype, device=device))
            q = q / norm
            continue
        betas.append(beta)
        q = w / beta
    n = len(alphas)
    T = torch.diag(torch.stack(alphas).to(torch.float64))
    if n > 1:
        off = torch.stack(betas[: n - 1]).to(torch.float64)
        T = T + torch.diag(off, 1) + torch.diag(off, -1)
    theta, S = torch.linalg.eigh(T)
    if which == "largest":
        order = torch.argsort(theta, descending=True)
    elif which == "smallest":
        order = torch.argsort(theta)
    else:
        order = torch.argsort(theta.abs(), descending=True)
    order = order[: min(int(k), n)]
    values = theta[order].to(dtype=dtype, device=device)
    vectors = (S[:, order].T.to(dtype=dtype, device=device)) @ basis[:n]
    vectors = vectors / vectors.norm(dim=1, keepdim=True)
    return EigenResult(values, vectors, n)


def sharpness(hvp_fn: HVPFn, params: Sequence[Tensor], generator: torch.Generator, *, num_iters: int = 20) -> Tensor:
    """λ_max(H), the sharpness (Cohen et al. 2021, arXiv:2103.00065), by :func:`lanczos`; a 0-d tensor."""
    return lanczos(hvp_fn, params, generator, k=1, num_iters=num_iters).eigenvalues[0]
