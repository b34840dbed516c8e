"""Plain IFT hypergradients with explicit matrices, written from the papers' formulas.

Implicit-function theorem (Pedregosa 2016, arXiv:1602.02355, eq. 3; Lorraine et al. 2020, arXiv:1911.02590,
eq. 4): ∇F(λ) = ∇_λ f − (∂²g/∂λ∂w) [∂²g/∂w²]⁻¹ ∇_w f, everything at (w, λ). The Hessian blocks are built entry by
entry with ``torch.autograd.functional.hessian``; the inverse is ``torch.linalg.solve``, the Neumann series
``α Σ_{j=0}^{K} (I − αH)^j`` a sum of explicit matrix powers, and CG the textbook recurrence (Hestenes & Stiefel
1952) with its early exit. ``f`` and ``g`` take ``(w, λ)`` (tensors of any shape); results are flat.
"""

import torch


def grads(fn, w, lam):
    """(∇_w fn, ∇_λ fn) flattened."""
    w_, lam_ = w.detach().clone().requires_grad_(True), lam.detach().clone().requires_grad_(True)
    gw, gl = torch.autograd.grad(fn(w_, lam_), (w_, lam_), allow_unused=True, materialize_grads=True)
    return gw.reshape(-1), gl.reshape(-1)


def hessian_blocks(g, w, lam):
    """(H_ww, H_λw): the inner Hessian (n × n) and the mixed block ∂²g/∂λ∂w (m × n)."""
    n = w.numel()

    def joint(v):
        return g(v[:n].reshape(w.shape), v[n:].reshape(lam.shape))

    h = torch.autograd.functional.hessian(joint, torch.cat([w.reshape(-1), lam.reshape(-1)]).detach())
    return h[:n, :n], h[n:, :n]


def ift_hypergradient(f, g, w, lam):
    fw, fl = grads(f, w, lam)
    h, cross = hessian_blocks(g, w, lam)
    return fl - cross @ torch.linalg.solve(h, fw)


def neumann_inverse(h, terms, alpha):
    eye = torch.eye(h.shape[0], dtype=h.dtype)
    step = eye - alpha * h
    return alpha * sum(torch.linalg.matrix_power(step, j) for j in range(terms + 1))


def neumann_hypergradient(f, g, w, lam, terms, alpha):
    fw, fl = grads(f, w, lam)
    h, cross = hessian_blocks(g, w, lam)
    return fl - cross @ (neumann_inverse(h, terms, alpha) @ fw)


def conjugate_gradient(a, b, x0=None, maxiter=100, tol=0.0):
    """Textbook CG on an explicit SPD matrix: stop when ‖r‖ ≤ tol or after maxiter products."""
    x = torch.zeros_like(b) if x0 is None else x0.clone()
    r = b - a @ x
    p = r.clone()
    for _ in range(maxiter):
        if torch.linalg.vector_norm(r) <= tol:
            break
        ap = a @ p
        alpha = (r @ r) / (p @ ap)
        x = x + alpha * p
        r_new = r - alpha * ap
        p = r_new + (r_new @ r_new) / (r @ r) * p
        r = r_new
    return x


def cg_hypergradient(f, g, w, lam, maxiter=100):
    fw, fl = grads(f, w, lam)
    h, cross = hessian_blocks(g, w, lam)
    return fl - cross @ conjugate_gradient(h, fw, maxiter=maxiter)


def gradient_descent(g, w, lam, steps, lr):
    for _ in range(steps):
        w = w - lr * grads(g, w, lam)[0].reshape(w.shape)
    return w


def aid(f, g, lam, w, outer_steps, outer_lr, inner_lr, inner_steps, hypergradient):
    """Lorraine et al. (2020) Algorithm 2 with the hypergradient ``hypergradient(f, g, w, lam)`` (IFT + Neumann or
    + CG): warm-started inner descent, then one outer step. Returns the (λ, w) trajectory."""
    out = []
    for _ in range(outer_steps):
        w = gradient_descent(g, w, lam, inner_steps, inner_lr)
        lam = lam - outer_lr * hypergradient(f, g, w, lam).reshape(lam.shape)
        out.append((lam.clone(), w.clone()))
    return out
