"""Grams (Cao, Li & Song 2024, arXiv:2412.17107, Algorithm 1), from the paper's update rule:

m_t = β1 m_{t-1} + (1 − β1) g_t;  v_t = β2 v_{t-1} + (1 − β2) g_t²;  m̂_t = m_t/(1 − β1ᵗ);  v̂_t = v_t/(1 − β2ᵗ);
u_t = m̂_t/(√v̂_t + ε);  û_t = sign(g_t) ⊙ |u_t|;  θ_t = θ_{t-1} − η (û_t + λ θ_{t-1}).
"""

import torch


def grams(param, grad, state, *, lr, betas, eps, weight_decay):
    beta1, beta2 = betas
    t = state.get("step", 0) + 1
    m = beta1 * state.get("exp_avg", torch.zeros_like(param)) + (1 - beta1) * grad
    v = beta2 * state.get("exp_avg_sq", torch.zeros_like(param)) + (1 - beta2) * grad * grad
    u = (m / (1 - beta1**t)) / (torch.sqrt(v / (1 - beta2**t)) + eps)
    u_hat = torch.sign(grad) * torch.abs(u)
    return param - lr * (u_hat + weight_decay * param), {"step": t, "exp_avg": m, "exp_avg_sq": v}
