"""Linear solvers for the implicit-function theorem: ``A x = b`` given only the product ``x -> A x``.

The IFT needs ``u = A⁻¹ v`` (or ``A⁻ᵀ v``) where ``A = ∂_w F(w*, λ)`` is, for an argmin, the inner Hessian. A is
never formed by the iterative solvers, only applied (HVPs). Three solvers:

* :func:`cg` — conjugate gradient (Hestenes & Stiefel 1952) for symmetric positive-definite ``A``; the IFT +
  CG hypergradient of Pedregosa (2016, HOAG, arXiv:1602.02355) and Rajeswaran et al. (2019, iMAML).
* :func:`neumann` — truncated Neumann series ``A⁻¹ ≈ α Σ_{j=0}^{K} (I − αA)^j`` (Lorraine, Vicol & Duvenaud 2020,
  *Optimizing Millions of Hyperparameters by Implicit Differentiation*, arXiv:1911.02590), valid when the
  spectral radius of ``I − αA`` is below one (``0 < α < 2/λ_max`` for SPD ``A``).
* :func:`direct` — materialize ``A`` column by column (``torch.func.vmap`` over the basis) and call
  ``torch.linalg.solve``: exact, for small problems (n HVPs and O(n³)).

``b`` may be a tensor of any shape; ``matvec`` maps tensors of that shape to the same shape. Every solver is a
pure function of torch operations with a fixed number of iterations when it cannot stop early, so it runs
under ``torch.func.vmap`` / ``grad`` / ``jacrev``: under ``vmap`` the data-dependent early exit of :func:`cg` is
replaced by masked (no-op) updates of converged systems.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

#: ``x -> A x`` on tensors shaped like the right-hand side
MatVec = Callable[[Tensor], Tensor]
#: ``(matvec, b) -> x`` with ``A x ≈ b``; configure a solver's options with ``functools.partial``
LinearSolve = Callable[[MatVec, Tensor], Tensor]


def _vdot(x: Tensor, y: Tensor) -> Tensor:
    return torch.sum(x * y)


def _known_false(flag: Tensor) -> bool:
    """True when ``flag`` is concretely false (eager, ``grad``); False under ``vmap``, where a batched flag has no
    single truth value and the caller keeps iterating with masked updates."""
    try:
        return not bool(flag)
    except RuntimeError:
        return False


def _check_positive_int(name: str, value: int, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}")


def _check_nonnegative(name: str, value: float) -> None:
    if not (value >= 0.0):
        raise ValueError(f"{name} must be ≥ 0, got {value!r}")


def cg(
    matvec: MatVec,
    b: Tensor,
    *,
    x0: Tensor | None = None,
    maxiter: int = 100,
    rtol: float = 1e-10,
    atol: float = 0.0,
) -> Tensor:
    """Conjugate gradient for SPD ``A``: stops when ``‖b − A x‖ ≤ max(rtol·‖b‖, atol)`` or after ``maxiter``.

    Args:
        matvec: ``x -> A x`` (A symmetric positive definite; e.g. an inner-loss HVP).
        b: right-hand side, any shape.
        x0: warm start (HOAG reuses the previous outer step's solution); zeros by default.
        maxiter: most matrix-vector products after the initial residual.
        rtol, atol: relative and absolute tolerances on the residual norm.
    """
    _check_positive_int("maxiter", maxiter, 1)
    _check_nonnegative("rtol", rtol)
    _check_nonnegative("atol", atol)
    x = torch.zeros_like(b) if x0 is None else x0
    r = b - matvec(x) if x0 is not None else b
    p = r
    rs = _vdot(r, r)
    threshold = torch.clamp(rtol * torch.sqrt(_vdot(b, b)), min=atol) ** 2
    for _ in range(maxiter):
        active = rs > threshold
        if _known_false(torch.any(active)):
            break
        ap = matvec(p)
        pap = _vdot(p, ap)
        ok = active & (pap > 0)
        alpha = torch.where(ok, rs / torch.where(ok, pap, torch.ones_like(pap)), torch.zeros_like(rs))
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = _vdot(r, r)
        beta = torch.where(ok, rs_new / torch.where(ok, rs, torch.ones_like(rs)), torch.zeros_like(rs))
        p = r + beta * p
        rs = torch.where(ok, rs_new, rs)
    return x


def neumann(matvec: MatVec, b: Tensor, *, terms: int = 20, alpha: float = 1.0) -> Tensor:
    """Truncated Neumann series ``x = α Σ_{j=0}^{terms} (I − αA)^j b`` (``terms`` matrix-vector products).

    Lorraine et al. (2020) write the series without ``α`` in front, with the Hessian scaled by a learning rate;
    here ``α`` multiplies the sum so that ``x → A⁻¹ b`` as ``terms → ∞`` whatever ``α`` (in the convergent range
    ``0 < α < 2/λ_max(A)``).
    """
    _check_positive_int("terms", terms, 0)
    if not (alpha > 0.0):
        raise ValueError(f"alpha must be > 0, got {alpha!r}")
    term, total = b, b
    for _ in range(terms):
        term = term - alpha * matvec(term)
        total = total + term
    return alpha * total


def direct(matvec: MatVec, b: Tensor) -> Tensor:
    """Exact solve: ``A`` is built from ``n = b.numel()`` products with the basis vectors, then
    ``torch.linalg.solve`` (for small problems: n products and O(n³) work)."""
    n = b.numel()
    basis = torch.eye(n, dtype=b.dtype, device=b.device).reshape(n, *b.shape)
    columns = torch.func.vmap(matvec)(basis).reshape(n, n)  # row i = A e_i, i.e. the transpose of A
    return torch.linalg.solve(columns.mT, b.reshape(n)).reshape(b.shape)
