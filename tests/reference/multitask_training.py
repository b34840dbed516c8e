"""Plain references of the stateful multi-task methods, written from the papers' update equations.

* DWA (Liu et al. 2019, Eq. 7): λ_k(t) = K exp(w_k(t−1)/T) / Σ_i exp(w_i(t−1)/T), w_k(t−1) = L_k(t−1)/L_k(t−2)
  from epoch-average losses; λ = 1 for t = 1, 2.
* GradNorm (Chen et al. 2018, Algorithm 1): L_grad built with autograd through ‖∇_W w_i L_i‖ (create_graph),
  differentiated with respect to w only; plain gradient descent on w with step ``lr``; renormalized to Σ w = T.
* Bloop (Hsieh et al. 2024, Algorithm 1) on flat vectors.
* Fish (Shi et al. 2022, Algorithm 2) with plain SGD inner steps on a functional model.
"""

from __future__ import annotations

import math

import torch


def dwa_weights(epoch_averages: list[list[float]], temperature: float) -> list[float]:
    """Weights for the next epoch given the averages of the completed epochs (oldest first)."""
    k = len(epoch_averages[0]) if epoch_averages else None
    if len(epoch_averages) < 2:
        return [1.0] * (k or 1)
    prev, prev2 = epoch_averages[-1], epoch_averages[-2]
    w = [a / b for a, b in zip(prev, prev2)]
    e = [math.exp(x / temperature) for x in w]
    return [len(e) * x / sum(e) for x in e]


def gradnorm_step(weights, losses, initial, layer_grads_fn, alpha, lr):
    """One GradNorm update of the task weights with plain gradient descent.

    ``layer_grads_fn(i)`` returns ∇_W L_i (a tensor with graph allowed); returns the new weights (Σ = T)."""
    T = len(losses)
    w = weights.clone().double().requires_grad_(True)
    G = torch.stack([torch.linalg.vector_norm(w[i] * layer_grads_fn(i).double()) for i in range(T)])
    Lt = torch.tensor([float(x) for x in losses], dtype=torch.float64) / initial.double()
    r = Lt / Lt.mean()
    target = (G.mean() * r**alpha).detach()
    L_grad = (G - target).abs().sum()
    (grad_w,) = torch.autograd.grad(L_grad, w)
    new = (w - lr * grad_w).detach()
    return new * T / new.sum()


def bloop_direction(g_main: torch.Tensor, g_aux: torch.Tensor, ema: torch.Tensor, lam: float, beta: float):
    """Flat vectors; returns (direction, new EMA)."""
    ema = beta * ema + (1 - beta) * g_main
    proj = g_aux - (g_aux @ ema) / (ema @ ema) * ema
    return g_main + lam * proj, ema


def fish_step(theta: list[torch.Tensor], domain_grad_fns, order, inner_lr: float, meta_lr: float):
    """``domain_grad_fns[k](params)`` returns the gradients of domain k's loss at ``params``."""
    inner = [t.clone() for t in theta]
    for k in order:
        grads = domain_grad_fns[k](inner)
        inner = [p - inner_lr * g for p, g in zip(inner, grads)]
    return [t + meta_lr * (p - t) for t, p in zip(theta, inner)]
