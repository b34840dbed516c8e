"""SANIA (Abdukhakimov et al., arXiv:2312.17369) as in the authors' code (github.com/fxrshed/SANIA):

    B_t: AdaGrad-SQR Σ g⊙g | Adam-SQR v_t/(1 − βᵗ) | Hutchinson |D_t/(1 − βᵗ)| | identity;  B̂ = max(B, eps)
    s = B̂⁻¹ g;  ‖g‖² = ⟨g, s⟩;  step = 1;  if 2(f − f*) ≤ ‖g‖² and det = 1 − 2(f − f*)/‖g‖² > 0: step = 1 − √det
    w ← w − lr · step · s

with this library's conventions: one step size for all parameters, and no step while f ≤ f*."""

import math

import torch

from tests.reference import whole_model
from tests.reference._hessian import grads_with_graph, hutchinson


@whole_model
def sania(params, loss_fn, states, hparams):
    hp0 = hparams[0]
    kind = hp0["preconditioner"]
    t = states[0].get("step", 0) + 1
    if kind == "hutchinson":
        leaves, loss, graph_grads = grads_with_graph(params, loss_fn)
        estimates = hutchinson(leaves, graph_grads, t, hp0["hessian_samples"], hp0["hessian_distribution"])
        grads = [g.detach() for g in graph_grads]
    else:
        leaves = [p.clone().requires_grad_(True) for p in params]
        loss = loss_fn(leaves)
        grads = torch.autograd.grad(loss, leaves)
    new_states, directions = [], []
    for i, (p, g, state, hp) in enumerate(zip(params, grads, states, hparams)):
        new = {"step": t}
        if kind == "adagrad_sqr":
            new["sum_sq"] = state.get("sum_sq", torch.zeros_like(p)) + g * g
            b = new["sum_sq"]
        elif kind == "adam_sqr":
            new["exp_avg_sq"] = hp["beta"] * state.get("exp_avg_sq", torch.zeros_like(p)) + (1 - hp["beta"]) * g * g
            b = new["exp_avg_sq"] / (1 - hp["beta"] ** t)
        elif kind == "hutchinson":
            d = state.get("hessian_diag", torch.zeros_like(p))
            new["hessian_diag"] = hp["beta"] * d + (1 - hp["beta"]) * estimates[i]
            b = (new["hessian_diag"] / (1 - hp["beta"] ** t)).abs()
        else:
            b = torch.ones_like(p)
        directions.append(g / (torch.clamp(b, min=hp["eps"]) if kind != "identity" else b))
        new_states.append(new)
    grad_norm = float(sum((s * g).sum() for s, g in zip(directions, grads)))
    f = float(loss.detach()) - hp0["f_star"]
    step_size = 0.0
    if f > 0 and grad_norm > 0:
        step_size = 1.0
        if 2 * f <= grad_norm:
            det = 1 - 2 * f / grad_norm
            if det > 0.0:
                step_size = 1 - math.sqrt(det)
    new_params = [p - hp["lr"] * step_size * s for p, s, hp in zip(params, directions, hparams)]
    return new_params, new_states
