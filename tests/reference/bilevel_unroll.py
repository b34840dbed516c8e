"""Truncated unrolled differentiation by forward-mode accumulation (an independent route to the reverse-mode
result), written from Shaban et al. (2019), *Truncated Back-propagation for Bilevel Optimization*,
arXiv:1810.10667, and Franceschi et al. (2017)'s forward-mode hypergradient (RTRL form).

Inner dynamics w_{t+1} = w_t − η ∇_w g(w_t, λ). Its Jacobian Z_t = dw_t/dλ obeys
Z_{t+1} = (I − η H_t) Z_t − η C_tᵀ with H_t = ∂²g/∂w² and C_t = ∂²g/∂λ∂w at (w_t, λ). Truncation to the last K
steps starts Z at zero at step T − K. Hypergradient: ∇_λ f(w_T, λ) + Z_Tᵀ ∇_w f(w_T, λ).
"""

import torch

from .bilevel_ift import grads, hessian_blocks


def unrolled_hypergradient(f, g, w0, lam, steps, lr, truncate=None):
    k = steps if truncate is None else truncate
    w = w0.clone()
    z = torch.zeros(w.numel(), lam.numel(), dtype=w.dtype)
    for t in range(steps):
        gw = grads(g, w, lam)[0].reshape(w.shape)
        if t >= steps - k:
            h, cross = hessian_blocks(g, w, lam)
            z = (torch.eye(w.numel(), dtype=w.dtype) - lr * h) @ z - lr * cross.T
        w = w - lr * gw
    fw, fl = grads(f, w, lam)
    return fl + z.T @ fw, w


def truncated_unroll(f, g, lam, w, outer_steps, outer_lr, inner_lr, inner_steps, truncate):
    out = []
    for _ in range(outer_steps):
        p, w = unrolled_hypergradient(f, g, w, lam, inner_steps, inner_lr, truncate)
        lam = lam - outer_lr * p.reshape(lam.shape)
        out.append((lam.clone(), w.clone()))
    return out
