"""AdaBelief (Zhuang et al. 2020, Algorithm 2, with the bias corrections of its appendix / the authors' package):
s is the EMA of the squared prediction error (g − m)², with eps added to s every step, and the step is
m̂/(√ŝ + eps). Weight decay: L2 folded into g, or decoupled p ← p(1 − lr·λ)."""

import torch


def adabelief(param, grad, state, *, lr, betas, eps, weight_decay, decoupled_weight_decay):
    beta1, beta2 = betas
    t = state.get("step", 0) + 1
    if decoupled_weight_decay:
        base, g = param * (1 - lr * weight_decay), grad
    else:
        base, g = param, grad + weight_decay * param
    m = beta1 * state.get("exp_avg", torch.zeros_like(g)) + (1 - beta1) * g
    s = beta2 * state.get("exp_avg_var", torch.zeros_like(g)) + (1 - beta2) * (g - m) ** 2 + eps
    m_hat = m / (1 - beta1**t)
    s_hat = s / (1 - beta2**t)
    new_param = base - lr * m_hat / (torch.sqrt(s_hat) + eps)
    return new_param, {"step": t, "exp_avg": m, "exp_avg_var": s}
