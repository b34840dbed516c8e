"""Sophia (Liu et al., ICLR 2024, arXiv:2305.14342), Algorithm 3 with the Hutchinson estimator (Algorithm 1,
Sophia-H) or the Gauss–Newton–Bartlett estimator (Algorithm 2, Sophia-G):

    m_t = β1 m_{t−1} + (1 − β1) g_t
    if t mod k = 1:  h_t = β2 h_{t−k} + (1 − β2) ĥ_t   else  h_t = h_{t−1}        (h_{1−k} = 0)
    θ ← θ − ηλθ;  θ ← θ − η · clip(m_t / max{γ h_t, ε}, 1)

γ is the constructor's ``rho``."""

import torch
import torch.nn.functional as F

from optimlab.optim._second_order import probe_seed
from tests.reference import whole_model
from tests.reference._hessian import grads_with_graph, hutchinson


def _step(p, g, state, estimate, t, due, hp):
    beta1, beta2 = hp["betas"]
    m = beta1 * state.get("exp_avg", torch.zeros_like(p)) + (1 - beta1) * g
    h = state.get("hessian", torch.zeros_like(p))
    if due:
        h = beta2 * h + (1 - beta2) * estimate
    decayed = p - hp["lr"] * hp["weight_decay"] * p
    ratio = torch.clamp(m / torch.clamp(hp["rho"] * h, min=hp["eps"]), -1.0, 1.0)
    return decayed - hp["lr"] * ratio, {"step": t, "exp_avg": m, "hessian": h}


@whole_model
def sophia_h(params, loss_fn, states, hparams):
    leaves, _, grads = grads_with_graph(params, loss_fn)
    t = states[0].get("step", 0) + 1
    hp0 = hparams[0]
    due = (t - 1) % hp0["update_period"] == 0
    est = hutchinson(leaves, grads, t, hp0["hessian_samples"], hp0["hessian_distribution"]) if due else None
    out = [
        _step(p, g.detach(), s, est[i] if due else None, t, due, hp)
        for i, (p, g, s, hp) in enumerate(zip(params, grads, states, hparams))
    ]
    return [o[0] for o in out], [o[1] for o in out]


def sophia_g(param, grad, state, **hp):
    """Sophia-G with estimator='squared_gradient': ĥ = g ⊙ g of the step's own gradient."""
    assert hp["estimator"] == "squared_gradient", "the Gauss-Newton-Bartlett reference is sophia_g_gnb"
    t = state.get("step", 0) + 1
    due = (t - 1) % hp["update_period"] == 0
    return _step(param, grad, state, grad * grad, t, due, hp)


def sophia_g_gnb(params, logits_fn, labels, states, hparams, seed=0):
    """One Sophia-G step with the Gauss–Newton–Bartlett estimator on a softmax model: g from the mean
    cross-entropy on the true labels; on refresh steps ŷ ~ softmax(logits) from the step's generator and
    ĥ = B · (∇ mean CE(logits, ŷ))², B = number of label positions."""
    leaves = [p.clone().requires_grad_(True) for p in params]
    logits = logits_fn(leaves)
    grads = torch.autograd.grad(F.cross_entropy(logits, labels), leaves, retain_graph=True)
    t = states[0].get("step", 0) + 1
    hp0 = hparams[0]
    due = (t - 1) % hp0["update_period"] == 0
    est = None
    if due:
        generator = torch.Generator().manual_seed(probe_seed(seed, t))
        probs = torch.softmax(logits.detach().float(), dim=-1)
        sampled = torch.multinomial(probs, 1, generator=generator).squeeze(-1)
        g_hat = torch.autograd.grad(F.cross_entropy(logits, sampled), leaves)
        est = [logits.shape[0] * g * g for g in g_hat]
    out = [
        _step(p, g, s, est[i] if due else None, t, due, hp)
        for i, (p, g, s, hp) in enumerate(zip(params, grads, states, hparams))
    ]
    return [o[0] for o in out], [o[1] for o in out]
