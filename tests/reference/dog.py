"""DoG / L-DoG (Ivgi et al., arXiv:2302.12022, Algorithm 1 and §3.3) and DoWG (Khaled et al., arXiv:2305.16284,
Algorithm 1), written from the papers, with the authors' package conventions: r_ε = reps_rel·(1 + ‖x_1‖), eps
added to G once, L2 weight decay added to the gradient, ``init_eta`` replacing the first step size.

    r̄_t = max(r_ε, max_{i≤t} ‖x_i − x_1‖);  DoG: G_t = Σ ‖g_i‖², η_t = lr·r̄_t/√G_t;
    DoWG: G_t = Σ r̄_i²‖g_i‖², η_t = lr·r̄_t²/√G_t;  x_{t+1} = x_t − η_t g_t.

DoG and DoWG take the norms over a param group (consecutive parameters with equal hyperparameters here)."""

import math

import torch

from tests.reference import whole_model


def _groups(hparams):
    groups, current = [], [0]
    for i in range(1, len(hparams)):
        if hparams[i] == hparams[i - 1]:
            current.append(i)
        else:
            groups.append(current)
            current = [i]
    return [*groups, current]


def _block(params, grads, states, hp, weighted):
    """One DoG/DoWG step of a block of tensors sharing one step size."""
    g = [gr + hp["weight_decay"] * p for p, gr in zip(params, grads)]
    gsq = sum(float((x * x).sum()) for x in g)
    t = states[0].get("step", 0) + 1
    if t == 1:
        x0 = [p.clone() for p in params]
        reps = 0.0 if hp["init_eta"] is not None else hp["reps_rel"]
        rbar = reps * (1 + math.sqrt(sum(float((p * p).sum()) for p in params)))
        G = hp["eps"]
    else:
        x0 = [s["x0"] for s in states]
        dist = math.sqrt(sum(float(((p - a) ** 2).sum()) for p, a in zip(params, x0)))
        rbar = max(float(states[0]["rbar"]), dist)
        G = float(states[0]["G"])
    G = G + (rbar**2 if weighted else 1.0) * gsq
    eta = hp["lr"] * (rbar**2 if weighted else rbar) / math.sqrt(G)
    if t == 1 and hp["init_eta"] is not None:
        eta = hp["init_eta"]
    new = [p - eta * x for p, x in zip(params, g)]
    scal = lambda v: torch.tensor([v], dtype=torch.float64)  # noqa: E731
    return new, [{"step": t, "x0": a, "rbar": scal(rbar), "G": scal(G)} for a in x0]


def _run(params, loss_fn, states, hparams, weighted, layerwise):
    leaves = [p.clone().requires_grad_(True) for p in params]
    grads = torch.autograd.grad(loss_fn(leaves), leaves)
    blocks = [[i] for i in range(len(params))] if layerwise else _groups(hparams)
    new_params, new_states = list(params), list(states)
    for idx in blocks:
        ps, ss = _block(
            [params[i] for i in idx], [grads[i] for i in idx], [states[i] for i in idx], hparams[idx[0]], weighted
        )
        for i, p, s in zip(idx, ps, ss):
            new_params[i], new_states[i] = p, s
    return new_params, new_states


@whole_model
def dog(params, loss_fn, states, hparams):
    return _run(params, loss_fn, states, hparams, weighted=False, layerwise=False)


@whole_model
def ldog(params, loss_fn, states, hparams):
    return _run(params, loss_fn, states, hparams, weighted=False, layerwise=True)


@whole_model
def dowg(params, loss_fn, states, hparams):
    return _run(params, loss_fn, states, hparams, weighted=True, layerwise=False)
