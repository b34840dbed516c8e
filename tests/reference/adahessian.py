"""AdaHessian (Yao et al. 2021, arXiv:2006.00719): Algorithm 1 with Eqs. 9–11, in the authors' code conventions
(github.com/amirgholami/adahessian): D = z ⊙ Hz with Rademacher z; spatial averaging of |D| over a conv kernel's
spatial dims; m_t, v_t debiased EMAs of g and (D⁽ˢ⁾)²; step lr·m̂/(v̂^{k/2} + eps); decoupled weight decay
p − lr·λ·p. With update period N the Hessian is estimated at steps 1, N+1, ...: v advances only then and is
debiased by the number of estimates."""

import torch

from tests.reference import whole_model
from tests.reference._hessian import grads_with_graph, hutchinson


def spatial(d):
    """|d| averaged over the spatial dims of a (out, in, *spatial) kernel; |d| for 0/1/2-D tensors."""
    if d.dim() <= 2:
        return d.abs()
    return d.abs().mean(dim=tuple(range(2, d.dim())), keepdim=True).expand_as(d)


@whole_model
def adahessian(params, loss_fn, states, hparams):
    leaves, _, grads = grads_with_graph(params, loss_fn)
    t = states[0].get("step", 0) + 1
    hp0 = hparams[0]
    period = hp0["update_period"]
    due = (t - 1) % period == 0
    if due:
        diags = hutchinson(leaves, grads, t, hp0["hessian_samples"], hp0["hessian_distribution"])
    new_params, new_states = [], []
    for i, (p, g, state, hp) in enumerate(zip(params, grads, states, hparams)):
        g = g.detach()
        beta1, beta2 = hp["betas"]
        m = beta1 * state.get("exp_avg", torch.zeros_like(p)) + (1 - beta1) * g
        v = state.get("exp_hessian_diag_sq", torch.zeros_like(p))
        if due:
            d = spatial(diags[i]) if hp["spatial_average"] else diags[i]
            v = beta2 * v + (1 - beta2) * d * d
        n = (t - 1) // period + 1
        m_hat = m / (1 - beta1**t)
        denom = (v / (1 - beta2**n)) ** (hp["hessian_power"] / 2) + hp["eps"]
        new_params.append(p - hp["lr"] * hp["weight_decay"] * p - hp["lr"] * m_hat / denom)
        new_states.append({"step": t, "exp_avg": m, "exp_hessian_diag_sq": v})
    return new_params, new_states
