"""AdamW with Subset-Norm and Subspace-Momentum (Nguyen & Nguyen 2024, arXiv:2411.07120), from the paper's updates.

Subset-Norm: coordinates are partitioned into subsets S_i; b_i ← β2 b_i + (1 − β2)·Σ_{j∈S_i} g_j² and every
coordinate of S_i shares the step η/(√b̂_i + ε). The partition is given here explicitly, as a subset id per
coordinate (rows or columns of the matrix view for the heuristic, contiguous runs of the largest divisor k' ≤ k of
numel for an integer subset size), and summed with index_add (no reshapes).
Subspace-Momentum: P = top-r singular vectors of the gradient (GaLore's side), refreshed at t = 1, T + 1, ...,
momentum reset to 0 on each refresh; m ← β1 m + (1 − β1)·Pᵀg; numerator = P·m/(1 − β1ᵗ) + (g − PPᵀg).
Decoupled weight decay applied before the step; eps added to √v̂.
"""

import math

import torch

from tests.reference.adam import adamw


def _subset_ids(shape, subset_size):
    """(subset id of each coordinate in row-major order, number of subsets, state shape) or None (coordinate)."""
    numel = math.prod(shape)
    if subset_size is None:
        if len(shape) < 2:
            return None
        m, n = shape[0], numel // shape[0]
        rows = torch.arange(m).repeat_interleave(n)
        cols = torch.arange(n).repeat(m)
        return (rows, m, (m, 1)) if m >= n else (cols, n, (1, n))
    k = max(i for i in range(1, min(subset_size, numel) + 1) if numel % i == 0)
    return torch.arange(numel) // k, numel // k, (numel // k, 1)


def _svd_basis(M, r):
    U, S, Vh = torch.linalg.svd(M, full_matrices=False)
    return U[:, :r] if M.shape[0] < M.shape[1] else Vh[:r, :].T


def adamw_sn(
    param,
    grad,
    state,
    *,
    lr,
    betas,
    eps,
    weight_decay,
    subset_norm=True,
    subset_size=None,
    rank=None,
    rank_fraction=None,
    update_proj_gap=200,
):
    shape = tuple(param.shape)
    ids = _subset_ids(shape, subset_size) if subset_norm else None
    if rank is not None and rank_fraction is not None and len(shape) >= 2:
        rank = max(1, int(min(shape[0], math.prod(shape[1:])) * rank_fraction))
    sm = rank is not None and len(shape) >= 2 and rank < min(shape[0], math.prod(shape[1:]))
    if ids is None and not sm:
        return adamw(param, grad, state, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)
    beta1, beta2 = betas
    t = state.get("step", 0) + 1
    new = {"step": t}

    # momentum
    if sm:
        M = grad.reshape(shape[0], -1)
        left = M.shape[0] < M.shape[1]
        d, k = (M.shape[0], M.shape[1]) if left else (M.shape[1], M.shape[0])
        P = state.get("projector", torch.zeros(d, rank, dtype=grad.dtype))
        m = state.get("exp_avg", torch.zeros(rank, k, dtype=grad.dtype))
        if (t - 1) % update_proj_gap == 0:
            P = _svd_basis(M, rank)
            m = torch.zeros_like(m)
        G = M if left else M.T
        low = P.T @ G
        m = beta1 * m + (1 - beta1) * low
        numer = P @ (m / (1 - beta1**t)) + (G - P @ low)
        numer = (numer if left else numer.T).reshape(shape)
        new["projector"] = P
    else:
        m = state.get("exp_avg", torch.zeros_like(grad))
        m = beta1 * m + (1 - beta1) * grad
        numer = m / (1 - beta1**t)
    new["exp_avg"] = m

    # adaptive denominator
    if ids is None:
        v = state.get("exp_avg_sq", torch.zeros_like(grad))
        v = beta2 * v + (1 - beta2) * grad * grad
        denom = torch.sqrt(v / (1 - beta2**t)) + eps
        new["exp_avg_sq"] = v
    else:
        sid, count, vshape = ids
        v = state.get("exp_avg_sq", torch.zeros(vshape, dtype=grad.dtype)).reshape(-1)
        sums = torch.zeros(count, dtype=grad.dtype).index_add(0, sid, (grad * grad).reshape(-1))
        v = beta2 * v + (1 - beta2) * sums
        denom = (torch.sqrt(v / (1 - beta2**t)) + eps)[sid].reshape(shape)
        new["exp_avg_sq"] = v.reshape(vshape)
    return param * (1 - lr * weight_decay) - lr * numer / denom, new
