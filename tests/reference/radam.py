"""RAdam (Liu et al. 2020, Algorithm 2): Adam's moments; while the approximated SMA length ρ_t is at most the
threshold the step is momentum SGD with the bias-corrected m, afterwards the adaptive step times the variance
rectification r_t. Threshold and eps placement follow torch.optim.RAdam (see the registry notes)."""

import math

import torch


def radam(param, grad, state, *, lr, betas, eps, weight_decay, decoupled_weight_decay, rho_threshold=5.0):
    beta1, beta2 = betas
    t = state.get("step", 0) + 1
    if decoupled_weight_decay:
        base, g = param * (1 - lr * weight_decay), grad
    else:
        base, g = param, grad + weight_decay * param
    m = beta1 * state.get("exp_avg", torch.zeros_like(g)) + (1 - beta1) * g
    v = beta2 * state.get("exp_avg_sq", torch.zeros_like(g)) + (1 - beta2) * g * g
    m_hat = m / (1 - beta1**t)
    rho_inf = 2 / (1 - beta2) - 1
    rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
    if rho_t > rho_threshold:
        l_t = math.sqrt(1 - beta2**t) / (torch.sqrt(v) + eps)  # adaptive learning rate √((1 − β2ᵗ)/v)
        r_t = math.sqrt((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t))
        new_param = base - lr * r_t * m_hat * l_t
    else:
        new_param = base - lr * m_hat
    return new_param, {"step": t, "exp_avg": m, "exp_avg_sq": v}
