"""Shampoo (Gupta, Koren & Singer 2018, arXiv:1802.09568, Algorithm 1 for matrices; order-1 tensors per
Algorithm 2 with exponent −1/2), the TF implementation's diagonal statistics for long sides and its momentum on
the gradient, with optional AdaGrad norm grafting (Agarwal et al. 2020, arXiv:2002.11803)."""

import math

import torch


def _power(S, p, eps, diagonal):
    """(S + εI)^p through the eigendecomposition (elementwise for a diagonal statistic)."""
    if diagonal:
        return (torch.clamp(S, min=0) + eps) ** p
    lam, U = torch.linalg.eigh(S.double())
    return (U @ torch.diag((torch.clamp(lam, min=0) + eps) ** p) @ U.T).to(S.dtype)


def shampoo(
    param,
    grad,
    state,
    *,
    lr,
    momentum,
    beta2,
    eps,
    weight_decay,
    update_freq=1,
    max_precond_dim=768,
    root_dtype="float64",
    grafting="none",
    graft_eps=1e-10,
):
    t = state.get("step", 0) + 1
    g = grad + weight_decay * param
    if param.ndim >= 2:
        rows, cols, order = param.shape[0], math.prod(param.shape[1:]), 2
    else:
        rows, cols, order = 1, param.numel(), 1
    G = g.reshape(rows, cols)
    w = 1.0 if beta2 == 1.0 else 1 - beta2
    new = {"step": t}
    diag_l, diag_r = rows > max_precond_dim, cols > max_precond_dim
    if order == 2:
        stat = torch.sum(G * G, dim=1) if diag_l else G @ G.T
        new["L"] = beta2 * state.get("L", torch.zeros_like(stat)) + w * stat
    else:
        new["L"] = torch.zeros(0, dtype=param.dtype)
    stat = torch.sum(G * G, dim=0) if diag_r else G.T @ G
    new["R"] = beta2 * state.get("R", torch.zeros_like(stat)) + w * stat
    if (t - 1) % update_freq == 0:
        new["L_inv_root"] = _power(new["L"], -1 / (2 * order), eps, diag_l) if order == 2 else new["L"]
        new["R_inv_root"] = _power(new["R"], -1 / (2 * order), eps, diag_r)
    else:
        new["L_inv_root"], new["R_inv_root"] = state["L_inv_root"], state["R_inv_root"]
    M = momentum * state.get("momentum_buffer", torch.zeros_like(param)) + g
    new["momentum_buffer"] = M
    Lr = new["L_inv_root"]
    D = M.reshape(rows, cols)
    if order == 2:
        D = (Lr[:, None] * D) if diag_l else Lr @ D
    D = (D * new["R_inv_root"][None, :]) if diag_r else D @ new["R_inv_root"]
    if grafting == "adagrad":
        A = beta2 * state.get("graft_acc", torch.zeros_like(param)) + w * g * g
        new["graft_acc"] = A
        a = M / (torch.sqrt(A) + graft_eps)
        D = D * torch.linalg.norm(a) / torch.linalg.norm(D)
    return param - lr * D.reshape(param.shape), new
