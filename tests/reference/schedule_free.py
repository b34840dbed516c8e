"""Schedule-free SGD / AdamW (Defazio et al., arXiv:2405.15682, Algorithm 1), in the paper's three sequences:

    y_t = (1 − β) z_t + β x_t;  g_t = ∇f(y_t);  γ_t = lr·min(1, t/warmup)
    SGD:   z_{t+1} = z_t − γ_t (g_t + λ y_t)
    AdamW: v_t = β₂ v + (1 − β₂) g_t²;  z_{t+1} = z_t − γ_t (g_t/(√(v_t/(1 − β₂ᵗ)) + ε) + λ y_t)
    w_t = t^r (max_{i≤t} γ_i)^p;  c = w_t/Σ_{i≤t} w_i;  x_{t+1} = (1 − c) x_t + c z_{t+1}

The parameter is y (train mode); x and z are kept explicitly here (the optimizer stores z only)."""

import torch


def _sf(param, direction_fn, state, lr, beta, weight_decay, warmup_steps, r, weight_lr_power):
    t = state.get("step", 0) + 1
    x = state.get("x", param.clone())
    z = state.get("z", param.clone())
    y = param
    gamma = lr * min(1.0, t / warmup_steps) if warmup_steps > 0 else lr
    lr_max = max(float(state.get("lr_max", torch.zeros(1))), gamma)
    w = t**r * lr_max**weight_lr_power
    total = float(state.get("weight_sum", torch.zeros(1))) + w
    c = w / total if total > 0 else 0.0
    d, extra = direction_fn(t)
    z = z - gamma * (d + weight_decay * y)
    x = (1 - c) * x + c * z
    new_y = (1 - beta) * z + beta * x
    scal = lambda v: torch.tensor([v], dtype=param.dtype)  # noqa: E731
    return new_y, {"step": t, "x": x, "z": z, "weight_sum": scal(total), "lr_max": scal(lr_max), **extra}


def sf_sgd(param, grad, state, *, lr, momentum, weight_decay, warmup_steps, r, weight_lr_power):
    return _sf(param, lambda t: (grad, {}), state, lr, momentum, weight_decay, warmup_steps, r, weight_lr_power)


def sf_adamw(param, grad, state, *, lr, betas, eps, weight_decay, warmup_steps, r, weight_lr_power):
    beta1, beta2 = betas

    def direction(t):
        v = beta2 * state.get("exp_avg_sq", torch.zeros_like(grad)) + (1 - beta2) * grad * grad
        return grad / ((v / (1 - beta2**t)).sqrt() + eps), {"exp_avg_sq": v}

    return _sf(param, direction, state, lr, beta1, weight_decay, warmup_steps, r, weight_lr_power)


WRAPPER_OWN = ("base", "momentum", "weight_decay_at_y", "r", "weight_lr_power")


def schedule_free_wrapper(param, grad, state, **hp):
    """The schedule-free wrapper: the base optimizer's own reference steps z with the gradient at y (the paper's
    Algorithm 1 with the base's rule in place of z's SGD step); decay λ at y: z ← z − lr·λ·y first."""
    import optimlab
    from tests import optim_db
    from tests._harness import load_reference

    t = state.get("step", 0) + 1
    y = param
    x = state.get("x", param.clone())
    z = state.get("z", param.clone())
    lr, beta = hp["lr"], hp["momentum"]
    z = z - lr * hp["weight_decay_at_y"] * y
    spec = optimlab.spec(hp["base"])
    base_hp = {**spec.defaults, **{k: v for k, v in hp.items() if k not in WRAPPER_OWN}}
    base_state = {k: v for k, v in state.items() if k not in ("x", "z", "weight_sum", "lr_max")}
    z, base_new = load_reference(optim_db.info(hp["base"]).reference)(z, grad, base_state, **base_hp)
    lr_max = max(float(state.get("lr_max", torch.zeros(1))), lr)
    w = t ** hp["r"] * lr_max ** hp["weight_lr_power"]
    total = float(state.get("weight_sum", torch.zeros(1))) + w
    c = w / total if total > 0 else 0.0
    x = (1 - c) * x + c * z
    scal = lambda v: torch.tensor([v], dtype=param.dtype)  # noqa: E731
    new = {**base_new, "step": t, "x": x, "z": z, "weight_sum": scal(total), "lr_max": scal(lr_max)}
    return (1 - beta) * z + beta * x, new
