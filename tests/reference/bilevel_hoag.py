"""HOAG written from Pedregosa (2016), *Hyperparameter optimization with approximate gradient*, arXiv:1602.02355,
Algorithm 1, with explicit Hessian blocks: (i) inner gradient descent until ‖∇_w g‖ ≤ ε_k; (ii) CG on
∇²_w g q = ∇_w f to ‖residual‖ ≤ ε_k, warm-started at the previous q; (iii) p = ∇_λ f − ∂²_{λw} g q;
(iv) λ ← λ − p/L. ε_k = tol·decay^k.
"""

import torch

from .bilevel_ift import conjugate_gradient, grads, hessian_blocks


def hoag(f, g, lam, w, outer_steps, outer_lr, inner_lr, tol, decay, max_inner_steps=1000, max_cg_steps=100):
    q = torch.zeros(w.numel(), dtype=w.dtype)
    out = []
    for k in range(outer_steps):
        eps = tol * decay**k
        for _ in range(max_inner_steps):
            gw = grads(g, w, lam)[0]
            if torch.linalg.vector_norm(gw) <= eps:
                break
            w = w - inner_lr * gw.reshape(w.shape)
        fw, fl = grads(f, w, lam)
        h, cross = hessian_blocks(g, w, lam)
        q = conjugate_gradient(h, fw, x0=q, maxiter=max_cg_steps, tol=eps)
        lam = lam - outer_lr * (fl - cross @ q).reshape(lam.shape)
        out.append((lam.clone(), w.clone()))
    return out
