"""Adam with critical momenta (Adam+CM; Malviya et al. 2023, arXiv:2307.09638, Algorithm 1), with the rules
of the authors' code (chandar-lab/CMOptimizer, ``Adam_CM``) where the paper leaves them open.

Per step t, with a buffer of at most C momenta, each with a priority:

    θ      ← θ (1 - η λ_wd)                                   (decoupled weight decay)
    m_t    = β1 m_{t-1} + (1 - β1) g_t
    m^M_t  = m_t + mean(buffer)                              (buffer as it was before this step; 0 if empty)
    v_t    = β2 v_{t-1} + (1 - β2) (m^M_t)²                   (the second moment is of the aggregate)
    buffer: not full -> add m_t with priority ‖g_t‖;
            full and ‖g_t‖ > smallest priority -> m_t replaces the lowest-priority entry
    priorities ← λ · priorities
    θ      ← θ - η / (1 - β1^t) · m^M_t / (√(v_t / (1 - β2^t)) + eps)

Plain Python over lists of buffer entries; the returned state uses the optimizer's fixed-shape layout (empty
slots hold zeros and priority -inf).
"""

import math

import torch


def adam_cm(
    param,
    grad,
    state,
    *,
    lr,
    betas,
    eps,
    weight_decay,
    capacity=5,
    priority_decay=0.7,
    priority="group",
    priority_value=None,
):
    """``priority_value`` overrides ‖grad‖ (the ``priority="group"`` mode passes the group's Σ‖g_i‖)."""
    beta1, beta2 = betas
    t = state.get("step", 0) + 1
    zeros = torch.zeros_like(param)
    p = param * (1 - lr * weight_decay)
    m = beta1 * state.get("exp_avg", zeros) + (1 - beta1) * grad
    new = {"step": t, "exp_avg": m}

    aggregate = m
    if capacity > 0:
        slots = list(state.get("critical_momenta", torch.zeros((capacity, *param.shape), dtype=param.dtype)))
        prios = state.get("priorities", torch.full((capacity,), -math.inf, dtype=param.dtype)).tolist()
        filled = [i for i in range(capacity) if prios[i] != -math.inf]
        if filled:
            total = zeros
            for i in filled:
                total = total + slots[i]
            aggregate = m + total / len(filled)
        key = float(torch.linalg.vector_norm(grad)) if priority_value is None else float(priority_value)
        if len(filled) < capacity:  # slots fill in order and never empty again
            slots[len(filled)], prios[len(filled)] = m, key
        else:
            smallest = min(range(capacity), key=lambda i: (prios[i], i))  # first index among ties
            if key > prios[smallest]:
                slots[smallest], prios[smallest] = m, key
        prios = [q * priority_decay if q != -math.inf else q for q in prios]
        new["critical_momenta"] = torch.stack(slots)
        new["priorities"] = torch.tensor(prios, dtype=param.dtype)

    v = beta2 * state.get("exp_avg_sq", zeros) + (1 - beta2) * aggregate * aggregate
    new["exp_avg_sq"] = v
    denom = torch.sqrt(v / (1 - beta2**t)) + eps
    return p - lr / (1 - beta1**t) * aggregate / denom, new
