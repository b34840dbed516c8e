"""AdEMAMix (Pagliardini, Ablin & Grangier 2024, arXiv:2409.03137), Algorithm 1 with the paper's schedulers:

f_α(t) = min(t α / T, α);  f_β3(t) = min(exp(ln β_start · ln β3 / ((1 − t/T) ln β3 + (t/T) ln β_start)), β3),
β_start = β1, T = t_alpha_beta3 (None: α and β3 constant);
m1 = β1 m1 + (1 − β1) g;  m2 = β3(t) m2 + (1 − β3(t)) g;  ν = β2 ν + (1 − β2) g²;
θ = θ − η ((m1/(1 − β1ᵗ) + α(t) m2)/(√(ν/(1 − β2ᵗ)) + ε) + λ θ).
"""

import math

import torch


def schedules(t, alpha, beta1, beta3, T):
    if T is None:
        return alpha, beta3
    alpha_t = min(t * alpha / T, alpha)
    ln_start, ln_b3 = math.log(beta1), math.log(beta3)
    beta3_t = min(math.exp(ln_start * ln_b3 / ((1 - t / T) * ln_b3 + (t / T) * ln_start)), beta3)
    return alpha_t, beta3_t


def ademamix(param, grad, state, *, lr, betas, alpha, t_alpha_beta3, eps, weight_decay):
    beta1, beta2, beta3 = betas
    t = state.get("step", 0) + 1
    alpha_t, beta3_t = schedules(t, alpha, beta1, beta3, t_alpha_beta3)
    m1 = beta1 * state.get("exp_avg", torch.zeros_like(param)) + (1 - beta1) * grad
    m2 = beta3_t * state.get("exp_avg_slow", torch.zeros_like(param)) + (1 - beta3_t) * grad
    nu = beta2 * state.get("exp_avg_sq", torch.zeros_like(param)) + (1 - beta2) * grad * grad
    m1_hat = m1 / (1 - beta1**t)
    nu_hat = nu / (1 - beta2**t)
    new = param - lr * ((m1_hat + alpha_t * m2) / (torch.sqrt(nu_hat) + eps) + weight_decay * param)
    return new, {"step": t, "exp_avg": m1, "exp_avg_slow": m2, "exp_avg_sq": nu}
