"""NAdam (Dozat 2016, Algorithm 2): Adam's EMAs, with the first-moment step replaced by a Nesterov look-ahead under
the momentum schedule μ_t = β1(1 − ½·0.96^(tψ)), each part debiased by the running product of the μ's.

The product Π μ_i is kept as a 0-d float32 tensor ``mu_product`` (the storage torch.optim.NAdam uses, so that state
parity with torch holds); everything else is in the parameter's precision.
"""

import torch


def _mu(beta1, t, psi):
    return beta1 * (1 - 0.5 * 0.96 ** (t * psi))


def nadam(param, grad, state, *, lr, betas, eps, weight_decay, momentum_decay, decoupled_weight_decay):
    beta1, beta2 = betas
    t = state.get("step", 0) + 1
    if decoupled_weight_decay:
        base, g = param * (1 - lr * weight_decay), grad
    else:
        base, g = param, grad + weight_decay * param
    mu_t, mu_next = _mu(beta1, t, momentum_decay), _mu(beta1, t + 1, momentum_decay)
    prod_t = state.get("mu_product", torch.ones((), dtype=torch.float32)) * mu_t  # Π_{i≤t} μ_i (float32)
    prod_next = prod_t.item() * mu_next  # Π_{i≤t+1} μ_i
    m = beta1 * state.get("exp_avg", torch.zeros_like(g)) + (1 - beta1) * g
    v = beta2 * state.get("exp_avg_sq", torch.zeros_like(g)) + (1 - beta2) * g * g
    g_hat = g / (1 - prod_t.item())
    m_hat = m / (1 - prod_next)
    v_hat = v / (1 - beta2**t)
    m_bar = (1 - mu_t) * g_hat + mu_next * m_hat
    new_param = base - lr * m_bar / (torch.sqrt(v_hat) + eps)
    return new_param, {"step": t, "exp_avg": m, "exp_avg_sq": v, "mu_product": prod_t}
