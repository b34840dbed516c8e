"""Optimistic AMSGrad (Wang, Li & Li 2019, arXiv:1903.01435, Algorithm 2 "OPTIMISTIC-AMSGRAD") with the
gradient predictor of its Algorithm 3 (regularized approximate minimal polynomial extrapolation, RMPE, after
Scieur, d'Aspremont & Bach 2016).

Per step t, with g_t the gradient at the played point w_t and m_t the prediction of g_t made at step t-1:

    θ_t      = β1 θ_{t-1} + (1 - β1) g_t
    v_t      = β2 v_{t-1} + (1 - β2) (g_t - m_t)²
    v̂_t      = max(v̂_{t-1}, v_t)
    w_{t+½}  = w_{t-½} - η θ_t / √v̂_t                      (auxiliary sequence, starts at w_½ = w_1)
    m_{t+1}  = prediction of g_{t+1}
    h_{t+1}  = β1 θ_{t-1} + (1 - β1) m_{t+1}
    w_{t+1}  = w_{t+½} - η h_{t+1} / √v̂_t                  (the next point played)

eps is added to √v̂ (the paper instead starts v̂ at eps); ``bias_correction=True`` rescales as torch's Adam
does. Plain Python, slow and obvious; the state holds the same tensors as the optimizer.
"""

import torch


def rmpe(xs, lam):
    """RMPE on x_0..x_r: U = [x_1 - x_0, ..., x_r - x_{r-1}], (UᵀU + λ·tr(UᵀU)/r · I) z = 1, c = z / Σz,
    output Σ_{i<r} c_i x_i (an estimate of the limit of the sequence)."""
    r = len(xs) - 1
    cols = [(xs[i + 1] - xs[i]).reshape(-1) for i in range(r)]
    gram = torch.tensor([[float(torch.dot(a, b)) for b in cols] for a in cols], dtype=torch.float64)
    scale = float(torch.trace(gram)) / r
    if scale == 0.0:  # all points equal: every affine combination gives that point
        c = [1.0 / r] * r
    else:
        z = torch.linalg.solve(
            gram + lam * scale * torch.eye(r, dtype=torch.float64), torch.ones(r, dtype=torch.float64)
        )
        c = (z / z.sum()).tolist()
    out = torch.zeros_like(xs[0])
    for i in range(r):
        out = out + c[i] * xs[i]
    return out


def optimistic_amsgrad(
    param,
    grad,
    state,
    *,
    lr,
    betas,
    eps,
    weight_decay,
    predictor="extrapolation",
    span=5,
    rna_lambda=1e-3,
    bias_correction=False,
):
    beta1, beta2 = betas
    t = state.get("step", 0) + 1
    g = grad + weight_decay * param  # L2 term folded into the gradient at the played point w_t
    zeros = torch.zeros_like(param)
    theta_prev = state.get("exp_avg", zeros)
    v = state.get("exp_avg_sq", zeros)
    v_hat = state.get("max_exp_avg_sq", zeros)
    w_half = state.get("half_iterate", param)  # w_{1/2} = w_1: the auxiliary sequence starts at the initial point
    m_t = state.get("predicted_grad", zeros)  # m_1 = 0: nothing is known before the first gradient

    theta = beta1 * theta_prev + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * (g - m_t) ** 2
    v_hat = torch.maximum(v_hat, v)
    if bias_correction:
        step_size = lr / (1 - beta1**t)
        denom = torch.sqrt(v_hat / (1 - beta2**t)) + eps
    else:
        step_size = lr
        denom = torch.sqrt(v_hat) + eps
    w_half = w_half - step_size * theta / denom

    new = {"step": t, "exp_avg": theta, "exp_avg_sq": v, "max_exp_avg_sq": v_hat, "half_iterate": w_half}
    if predictor == "last":
        m_next = g
    else:
        history = state.get("grad_history", torch.zeros((span + 1, *param.shape), dtype=param.dtype))
        history = torch.cat([history[1:], g.unsqueeze(0)])  # the span + 1 latest gradients, oldest first
        new["grad_history"] = history
        m_next = g if t <= span else rmpe(list(history), rna_lambda)  # warm-up: too few gradients yet
    new["predicted_grad"] = m_next

    h = beta1 * theta_prev + (1 - beta1) * m_next
    return w_half - step_size * h / denom, new
