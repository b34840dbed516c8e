"""Muon (Jordan et al. 2024, https://kellerjordan.github.io/posts/muon/; KellerJordan/Muon ``muon_update`` and
``zeropower_via_newtonschulz5``), written from the post's pseudo-code, with the scalings of torch.optim.Muon's
``adjust_lr_fn`` ("original" = Keller Jordan's √max(1, A/B), "match_rms_adamw" = Moonlight's 0.2·√max(A, B)).

Non-matrix parameters go to the fallback's own reference (AdamW by default) with the group's lr and decay.
Every hyperparameter must be given explicitly (the reference knows nothing of presets). Each parameter keeps the
state of the algorithm that updates it, and only that.
"""

import math

import torch

import optimlab
from tests import optim_db as DB
from tests._harness import load_reference

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}


def newton_schulz(G, coefficients, steps, eps, eps_mode, dtype):
    """X₀ = G/‖G‖_F (eps-guarded), transposed to be wide; X ← aX + b(XXᵀ)X + c(XXᵀ)²X, `steps` times."""
    a, b, c = coefficients
    X = G.to(dtype)
    tall = X.shape[0] > X.shape[1]
    if tall:
        X = X.T
    norm = torch.linalg.norm(X)
    X = X / (norm + eps) if eps_mode == "add" else X / torch.clamp(norm, min=eps)
    for _ in range(steps):
        A = X @ X.T
        X = a * X + b * (A @ X) + c * (A @ (A @ X))
    return (X.T if tall else X).to(G.dtype)


def _fallback_reference(fallback, fallback_options, lr, weight_decay):
    spec = optimlab.spec(fallback)
    hp = {**spec.defaults, **fallback_options, "lr": lr, "weight_decay": weight_decay}
    return load_reference(DB.info(fallback).reference), hp


def muon(
    param,
    grad,
    state,
    *,
    lr,
    momentum,
    nesterov,
    weight_decay,
    ns_coefficients,
    ns_steps,
    eps,
    eps_mode,
    adjust_lr,
    ns_dtype,
    fallback,
    fallback_options,
    use_muon=None,
    preset=None,
):
    matrix = param.ndim >= 2 if use_muon is None else use_muon
    if not matrix:
        ref, hp = _fallback_reference(fallback, fallback_options, lr, weight_decay)
        return ref(param, grad, state, **hp)
    t = state.get("step", 0) + 1
    buf = momentum * state.get("momentum_buffer", torch.zeros_like(param)) + (1 - momentum) * grad
    u = (1 - momentum) * grad + momentum * buf if nesterov else buf
    rows, cols = param.shape[0], math.prod(param.shape[1:])
    O = newton_schulz(u.reshape(rows, cols), ns_coefficients, ns_steps, eps, eps_mode, DTYPES[ns_dtype])
    if adjust_lr == "original":
        scale = max(1.0, rows / cols) ** 0.5
    elif adjust_lr == "match_rms_adamw":
        scale = 0.2 * max(rows, cols) ** 0.5
    else:
        scale = 1.0
    new = param * (1 - lr * weight_decay) - lr * scale * O.reshape(param.shape)
    return new, {"step": t, "momentum_buffer": buf}
