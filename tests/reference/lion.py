"""Lion (Chen et al. 2023, arXiv:2302.06675, Algorithm 2) and Lion-κ (Chen, Liu, Liang & Liu 2023,
arXiv:2310.05898), written from the papers' update rules.

Lion:    c_t = β1 m_{t-1} + (1 − β1) g_t;  θ_t = θ_{t-1} − η (sign(c_t) + λ θ_{t-1});  m_t = β2 m_{t-1} + (1 − β2) g_t.
Lion-κ:  the same with sign replaced by ∇κ; κ = ‖·‖₁ (sign), ‖·‖₂ (c/‖c‖₂, 0 at c = 0) or Σ Huber_δ
         (its derivative: c/δ where |c| ≤ δ, sign(c) elsewhere).
"""

import torch


def _nabla_kappa(c, kappa, huber_delta):
    if kappa == "l1":
        return torch.sign(c)
    if kappa == "l2":
        norm = torch.sqrt((c * c).sum())
        return c / norm if norm > 0 else torch.zeros_like(c)
    if kappa == "huber":
        return torch.where(c.abs() <= huber_delta, c / huber_delta, torch.sign(c))
    raise ValueError(kappa)


def lion_kappa(param, grad, state, *, lr, betas, weight_decay, kappa="l2", huber_delta=1.0):
    beta1, beta2 = betas
    t = state.get("step", 0) + 1
    m = state.get("exp_avg", torch.zeros_like(param))
    c = beta1 * m + (1 - beta1) * grad
    new_param = param - lr * (_nabla_kappa(c, kappa, huber_delta) + weight_decay * param)
    return new_param, {"step": t, "exp_avg": beta2 * m + (1 - beta2) * grad}


def lion(param, grad, state, *, lr, betas, weight_decay):
    return lion_kappa(param, grad, state, lr=lr, betas=betas, weight_decay=weight_decay, kappa="l1")
