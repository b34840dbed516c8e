"""EXAdam (Adly 2024, arXiv:2412.20302), from the paper's equations as implemented by the author's code
(AhmedMostafa16/EXAdam): Adam's biased moments m, v, then

d1 = 1 + v/(v + ε)·β2ᵗ;  d2 = 1 + m²/(m² + ε)·β1ᵗ;  m̃ = m/(1 − β1ᵗ)·d1;  ṽ = v/(1 − β2ᵗ)·d2;  g̃ = g/(1 − β1ᵗ)·d1;
θ ← θ − αₜ (m̃ + g̃)/(√ṽ + ε), αₜ = α (current version) or α·ln(√2·√(t + 1)) (paper v1, first code commit);
decoupled weight decay θ ← θ − α λ θ first (official code).
"""

import math

import torch


def exadam(param, grad, state, *, lr, betas, eps, weight_decay, dynamic_step_size=False):
    beta1, beta2 = betas
    t = state.get("step", 0) + 1
    theta = param - lr * weight_decay * param
    m = beta1 * state.get("exp_avg", torch.zeros_like(param)) + (1 - beta1) * grad
    v = beta2 * state.get("exp_avg_sq", torch.zeros_like(param)) + (1 - beta2) * grad * grad
    d1 = 1 + (v / (v + eps)) * beta2**t
    d2 = 1 + (m**2 / (m**2 + eps)) * beta1**t
    m_tilde = m / (1 - beta1**t) * d1
    v_tilde = v / (1 - beta2**t) * d2
    g_tilde = grad / (1 - beta1**t) * d1
    alpha_t = lr * math.log(math.sqrt(2) * math.sqrt(t + 1)) if dynamic_step_size else lr
    theta = theta - alpha_t * (m_tilde + g_tilde) / (torch.sqrt(v_tilde) + eps)
    return theta, {"step": t, "exp_avg": m, "exp_avg_sq": v}
