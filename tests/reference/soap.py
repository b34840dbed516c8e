"""SOAP (Vyas et al. 2024, arXiv:2409.11321, Algorithm 3) with the authors' code's conventions: first step only
initializes the statistics and eigenbases, eps outside √V, decay after the step, eigenbasis refresh by one
power iteration + QR with columns sorted by estimated eigenvalue (and V permuted the same way).

The Shampoo statistics are symmetrized, (GGᵀ + (GGᵀ)ᵀ)/2, as the optimizer documents. The eigenbasis of a
rank-deficient statistic is not unique; as the optimizer documents, the directions with eigenvalue (estimate) at
or below 100·eps·λ_max are replaced by the eigenvectors of the projector onto them times diag(1..n) times it.
"""

import math

import torch


def _sym_outer(X):
    S = X @ X.T
    return (S + S.T) * 0.5


def _canonical(Q, est):
    """Replace the columns of Q whose (descending) estimate is at rounding level by the canonical null basis."""
    n = Q.shape[0]
    keep = [j for j in range(n) if est[j] > 100 * torch.finfo(Q.dtype).eps * max(float(est[0]), 0.0)]
    if len(keep) == n:
        return Q
    null = Q[:, len(keep) :]
    P = null @ null.T  # the projector onto the null space
    w, V = torch.linalg.eigh(P @ torch.diag(torch.arange(1.0, n + 1, dtype=Q.dtype)) @ P)
    return torch.cat([Q[:, : len(keep)], V[:, len(keep) :].flip(1)], dim=1)


def _eigenbasis(S):
    w, V = torch.linalg.eigh(S)
    return _canonical(V.flip(1), w.flip(0))


def _refresh(S, Q):
    SQ = S @ Q
    est = torch.diagonal(Q.T @ SQ)
    order = torch.argsort(est, descending=True)
    q, r = torch.linalg.qr(SQ[:, order])
    q = q * torch.where(torch.diagonal(r) < 0, -1.0, 1.0).to(q.dtype)
    return _canonical(q, est[order]), order


def soap(
    param,
    grad,
    state,
    *,
    lr,
    betas,
    eps,
    weight_decay,
    precondition_frequency,
    shampoo_beta=None,
    max_precond_dim=10000,
    precondition_1d=False,
    normalize_grads=False,
    correct_bias=True,
):
    b1, b2 = betas
    bs = b2 if shampoo_beta is None else shampoo_beta
    t = state.get("step", 0) + 1
    if param.ndim >= 2:
        rows, cols = param.shape[0], math.prod(param.shape[1:])
        left, right = rows <= max_precond_dim, cols <= max_precond_dim
    else:
        rows, cols = 1, param.numel()
        left, right = False, precondition_1d and cols <= max_precond_dim
    G = grad.reshape(rows, cols)
    empty = torch.zeros(0, dtype=param.dtype)
    if t == 1:
        L = (1 - bs) * _sym_outer(G) if left else empty
        R = (1 - bs) * _sym_outer(G.T) if right else empty
        QL = _eigenbasis(L) if left else empty
        QR = _eigenbasis(R) if right else empty
        zeros = torch.zeros_like(param)
        return param, {"step": 1, "exp_avg": zeros, "exp_avg_sq": zeros, "L": L, "R": R, "QL": QL, "QR": QR}
    QL, QR = state["QL"], state["QR"]
    ql = QL if left else torch.eye(rows, dtype=param.dtype)
    qr = QR if right else torch.eye(cols, dtype=param.dtype)
    s = t - 1
    M = b1 * state["exp_avg"] + (1 - b1) * grad
    Mr = ql.T @ M.reshape(rows, cols) @ qr
    Gr = ql.T @ G @ qr
    V = b2 * state["exp_avg_sq"].reshape(rows, cols) + (1 - b2) * Gr * Gr
    N = ql @ (Mr / (torch.sqrt(V) + eps)) @ qr.T
    if normalize_grads:
        N = N / (1e-30 + torch.sqrt(torch.mean(N**2)))
    step_size = lr * math.sqrt(1 - b2**s) / (1 - b1**s) if correct_bias else lr
    new = param - step_size * N.reshape(param.shape)
    new = new - lr * weight_decay * new
    L = bs * state["L"] + (1 - bs) * _sym_outer(G) if left else empty
    R = bs * state["R"] + (1 - bs) * _sym_outer(G.T) if right else empty
    if s % precondition_frequency == 0:
        if left:
            QL, order = _refresh(L, QL)
            V = V[order, :]
        if right:
            QR, order = _refresh(R, QR)
            V = V[:, order]
    return new, {
        "step": t,
        "exp_avg": M,
        "exp_avg_sq": V.reshape(param.shape),
        "L": L,
        "R": R,
        "QL": QL,
        "QR": QR,
    }
