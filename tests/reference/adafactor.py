"""Adafactor (Shazeer & Stern 2018, arXiv:1804.04235, Algorithms 4/5) in torch.optim.Adafactor's documented form.

For t = 1, 2, ...:  β̂ = 1 − t^τ;  ρ = min(lr, 1/√t);  α = max(ε2, RMS(θ_{t−1}))·ρ;  θ ← θ − lr·λ·θ
  matrices (last two dims): R ← β̂R + (1 − β̂)·mean_j g²_ij;  C ← β̂C + (1 − β̂)·mean_i g²_ij;
                            V̂ = R C / max(mean_i R_i, ε1)
  vectors:                  V̂ ← β̂V̂ + (1 − β̂) g²
  U = g / max(√V̂, ε1);  Û = U / max(1, RMS(U)/d);  θ ← θ − α Û
ε1 = None means the dtype's machine epsilon.
"""

import math

import torch


def _rms(x):
    return math.sqrt(float((x * x).sum()) / x.numel())


def adafactor(param, grad, state, *, lr, beta2_decay, eps, d, weight_decay):
    eps1, eps2 = eps
    if eps1 is None:
        eps1 = torch.finfo(param.dtype).eps
    t = state.get("step", 0) + 1
    beta_hat = 1 - t**beta2_decay
    rho = min(lr, 1 / math.sqrt(t))
    alpha = max(eps2, _rms(param)) * rho
    theta = param - lr * weight_decay * param
    g2 = grad * grad
    if grad.dim() > 1:
        R = state.get("row_var", torch.zeros_like(g2.mean(dim=-1, keepdim=True)))
        C = state.get("col_var", torch.zeros_like(g2.mean(dim=-2, keepdim=True)))
        R = beta_hat * R + (1 - beta_hat) * g2.mean(dim=-1, keepdim=True)
        C = beta_hat * C + (1 - beta_hat) * g2.mean(dim=-2, keepdim=True)
        V = R * C / torch.clamp(R.mean(dim=-2, keepdim=True), min=eps1)  # outer product by broadcasting
        new = {"step": t, "row_var": R, "col_var": C}
    else:
        V = state.get("variance", torch.zeros_like(grad))
        V = beta_hat * V + (1 - beta_hat) * g2
        new = {"step": t, "variance": V}
    U = grad / torch.clamp(torch.sqrt(V), min=eps1)
    U_hat = U / max(1.0, _rms(U) / d)
    return theta - alpha * U_hat, new
