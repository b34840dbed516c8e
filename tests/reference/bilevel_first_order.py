"""The two first-order penalty methods, written from their papers with plain autograd gradients.

* F2SA — Kwon, Kwon, Wright & Nowak (2023), arXiv:2301.10945, Algorithm 1: per outer step, with multiplier μ_k,
  M steps of z ← z − γ∇_y g(x, z) and y ← y − α_k(∇_y f(x, y) + μ_k ∇_y g(x, y)) (α_k = γ/μ_k here), then
  x ← x − η(∇_x f(x, y) + μ_k(∇_x g(x, y) − ∇_x g(x, z))) and μ_{k+1} = min(μ_k + δ, μ_max).
* V-PBGD — Shen & Chen (2023), arXiv:2302.05185: z ≈ argmin g(x, ·) by T descent steps (warm start), then one
  joint step on (x, y) of f + γ(g(x, y) − g(x, z)); y's step γ_z/γ, x's step η.

(x = λ the hyperparameters, y = w the inner variables, as in the papers' notation.)
"""

from .bilevel_ift import grads


def f2sa(f, g, lam, w, outer_steps, outer_lr, inner_lr, inner_steps, multiplier, increment, max_multiplier):
    x, y, z = lam.clone(), w.clone(), w.clone()
    out = []
    for k in range(outer_steps):
        mu = min(multiplier + k * increment, max_multiplier)
        for _ in range(inner_steps):
            z = z - inner_lr * grads(g, z, x)[0].reshape(z.shape)
            y = y - (inner_lr / mu) * (grads(f, y, x)[0] + mu * grads(g, y, x)[0]).reshape(y.shape)
        hx = grads(f, y, x)[1] + mu * (grads(g, y, x)[1] - grads(g, z, x)[1])
        x = x - outer_lr * hx.reshape(x.shape)
        out.append((x.clone(), y.clone()))
    return out


def pbgd(f, g, lam, w, outer_steps, outer_lr, inner_lr, penalty, inner_steps):
    x, y, z = lam.clone(), w.clone(), w.clone()
    out = []
    for _ in range(outer_steps):
        for _ in range(inner_steps):
            z = z - inner_lr * grads(g, z, x)[0].reshape(z.shape)
        fy, fx = grads(f, y, x)
        gy, gx = grads(g, y, x)
        x_new = x - outer_lr * (fx + penalty * (gx - grads(g, z, x)[1])).reshape(x.shape)
        y = y - (inner_lr / penalty) * (fy + penalty * gy).reshape(y.shape)
        x = x_new
        out.append((x.clone(), y.clone()))
    return out
