"""OASIS (Jahani et al., arXiv:2109.05198), Algorithm 1 with the adaptive learning rate, stochastic form:

    D_k = β D_{k−1} + (1 − β) z ⊙ ∇²F(w_k) z,    D̂_k = max(|D_k|, α)                     (Eqs. 7, 9)
    η_k = min{ √(1 + θ_{k−1}) η_{k−1},  ‖w_k − w_{k−1}‖_{D̂_k} / (2 ‖∇F(w_k) − ∇F(w_{k−1})‖*_{D̂_k}) }
    w_{k+1} = w_k − η_k D̂_k⁻¹ ∇F(w_k),   θ_k = η_k / η_{k−1}
    first step: w_1 = w_0 − η_0 D̂_0⁻¹ ∇F(w_0), D_0 = mean of init_samples estimates, θ_0 = +∞

Both gradients of the Lipschitz ratio use the current objective (lipschitz='same_batch') or the previous step's
gradient is reused ('previous_gradient'). Each param group has its own η sequence; ``lr`` multiplies η."""

import math

import torch

from tests.reference import whole_model
from tests.reference._hessian import grads_with_graph, hutchinson


@whole_model
def oasis(params, loss_fn, states, hparams):
    leaves, _, grads = grads_with_graph(params, loss_fn)
    grads_now = [g.detach() for g in grads]
    t = states[0].get("step", 0) + 1
    hp0 = hparams[0]
    samples = hp0["init_samples"] if t == 1 else hp0["hessian_samples"]
    estimates = hutchinson(leaves, grads, t, samples, hp0["hessian_distribution"])
    diags = []
    for est, state, hp in zip(estimates, states, hparams):
        diags.append(est if t == 1 else hp["beta"] * state["hessian_diag"] + (1 - hp["beta"]) * est)
    if t > 1 and hp0["lipschitz"] == "same_batch":
        prev = [s["prev_param"].clone().requires_grad_(True) for s in states]
        grads_prev = [g.detach() for g in torch.autograd.grad(loss_fn(prev), prev)]
    elif t > 1:
        grads_prev = [s["prev_grad"] for s in states]
    # one step-size sequence per param group (the harness's groups: params 0-1 and 2-4)
    groups = {}
    for i in range(len(hparams)):
        groups.setdefault(0 if i < 2 else 1, []).append(i)
    etas, thetas = {}, {}
    for key, index in groups.items():
        hp = hparams[index[0]]
        if t == 1:
            etas[key], thetas[key] = hp["eta0"], math.inf
            continue
        d_hat = {i: torch.clamp(diags[i].abs(), min=hp["alpha"]) for i in index}
        num = sum(((params[i] - states[i]["prev_param"]) ** 2 * d_hat[i]).sum() for i in index)
        den = sum(((grads_now[i] - grads_prev[i]) ** 2 / d_hat[i]).sum() for i in index)
        eta_prev, theta_prev = float(states[index[0]]["eta"]), float(states[index[0]]["theta"])
        eta = min(math.sqrt(1 + theta_prev) * eta_prev, 0.5 * math.sqrt(num / den))
        etas[key], thetas[key] = eta, eta / eta_prev
    new_params, new_states = [], []
    for i, (p, g, d, hp) in enumerate(zip(params, grads_now, diags, hparams)):
        key = 0 if i < 2 else 1
        d_hat = torch.clamp(d.abs(), min=hp["alpha"])
        new_params.append(p - hp["lr"] * etas[key] * g / d_hat)
        state = {
            "step": t,
            "hessian_diag": d,
            "prev_param": p,
            "eta": torch.tensor(etas[key], dtype=torch.float64),
            "theta": torch.tensor(thetas[key], dtype=torch.float64),
        }
        if hp["lipschitz"] == "previous_gradient":
            state["prev_grad"] = g
        new_states.append(state)
    return new_params, new_states
