"""Adam / AdamW (Kingma & Ba 2015, Algorithm 1; Loshchilov & Hutter 2019, Algorithm 2) and AMSGrad
(Reddi et al. 2018, Algorithm 2)."""

import torch


def _moments(grad, state, beta1, beta2):
    t = state.get("step", 0) + 1
    m = state.get("exp_avg", torch.zeros_like(grad))
    v = state.get("exp_avg_sq", torch.zeros_like(grad))
    m = beta1 * m + (1 - beta1) * grad  # biased first moment
    v = beta2 * v + (1 - beta2) * grad * grad  # biased second raw moment
    return t, m, v


def adam(param, grad, state, *, lr, betas, eps, weight_decay, amsgrad=False):
    beta1, beta2 = betas
    g = grad + weight_decay * param  # L2 regularisation: gradient of f + λ/2‖θ‖²
    t, m, v = _moments(g, state, beta1, beta2)
    m_hat = m / (1 - beta1**t)
    new = {"step": t, "exp_avg": m, "exp_avg_sq": v}
    second = v
    if amsgrad:
        second = torch.maximum(state.get("max_exp_avg_sq", torch.zeros_like(v)), v)
        new["max_exp_avg_sq"] = second
    v_hat = second / (1 - beta2**t)
    return param - lr * m_hat / (torch.sqrt(v_hat) + eps), new


def adamw(param, grad, state, *, lr, betas, eps, weight_decay, amsgrad=False):
    beta1, beta2 = betas
    # the schedule multiplier η_t is the learning rate itself; decay is applied to θ_{t-1}, not via g
    decayed = param - lr * weight_decay * param
    stepped, new = adam(param, grad, state, lr=lr, betas=betas, eps=eps, weight_decay=0.0, amsgrad=amsgrad)
    return decayed + (stepped - param), new


def amsgrad(param, grad, state, *, lr, betas, eps, weight_decay, bias_correction=False, decoupled=False):
    beta1, beta2 = betas
    g = grad if decoupled else grad + weight_decay * param
    t, m, v = _moments(g, state, beta1, beta2)
    v_max = torch.maximum(state.get("max_exp_avg_sq", torch.zeros_like(v)), v)
    new = {"step": t, "exp_avg": m, "exp_avg_sq": v, "max_exp_avg_sq": v_max}
    if bias_correction:
        direction = (m / (1 - beta1**t)) / (torch.sqrt(v_max / (1 - beta2**t)) + eps)
    else:  # the paper's Algorithm 2: x_{t+1} = x_t - α m_t / sqrt(v̂_t)
        direction = m / (torch.sqrt(v_max) + eps)
    base = param - lr * weight_decay * param if decoupled else param
    return base - lr * direction, new


def adamax(param, grad, state, *, lr, betas, eps, weight_decay):
    """Kingma & Ba (2015), Algorithm 2 (AdaMax), with eps added to |g| inside the max (torch's convention; the
    paper has no eps). u needs no bias correction; only m's is folded into the step size."""
    beta1, beta2 = betas
    g = grad + weight_decay * param
    t = state.get("step", 0) + 1
    m = beta1 * state.get("exp_avg", torch.zeros_like(g)) + (1 - beta1) * g
    u = torch.maximum(beta2 * state.get("exp_inf", torch.zeros_like(g)), torch.abs(g) + eps)
    new_param = param - (lr / (1 - beta1**t)) * m / u
    return new_param, {"step": t, "exp_avg": m, "exp_inf": u}
