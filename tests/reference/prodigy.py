"""Prodigy (Mishchenko & Defazio, arXiv:2306.06101, Algorithm 4 "Prodigy (Adam version)") and D-Adaptation Adam
(Defazio & Mishchenko, arXiv:2301.07733, Algorithm 6 "Adam D-Adaptation"), written from the papers with the
authors' packages' conventions (bias correction option folded into the step size, ``d_coef``, ``growth_rate``,
ε scaled by d in Prodigy, decoupled / coupled decay, m and v updated with the d of before the update).
One global d over all parameters; each parameter's own group hyperparameters otherwise."""

import math

import torch

from tests.reference import whole_model


def _grads(params, loss_fn, hparams):
    leaves = [p.clone().requires_grad_(True) for p in params]
    grads = torch.autograd.grad(loss_fn(leaves), leaves)
    return [g if hp.get("decouple", True) else g + hp["weight_decay"] * p for p, g, hp in zip(params, grads, hparams)]


def _dlr(hp, d, k):
    b1, b2 = hp["betas"]
    bc = math.sqrt(1 - b2 ** (k + 1)) / (1 - b1 ** (k + 1)) if hp["use_bias_correction"] else 1.0
    return d * hp["lr"] * bc


def _scal(v, like):
    return torch.tensor([v], dtype=like.dtype)


@whole_model
def prodigy(params, loss_fn, states, hparams):
    grads = _grads(params, loss_fn, hparams)
    hp0 = hparams[0]
    k = states[0].get("step", 0)
    d0 = hp0["d0"]
    d = float(states[0].get("d", _scal(d0, params[0])))
    d_max = float(states[0].get("d_max", _scal(d0, params[0])))
    r = float(states[0].get("d_numerator", _scal(0.0, params[0])))
    beta3 = [hp["beta3"] if hp.get("beta3") is not None else math.sqrt(hp["betas"][1]) for hp in hparams]
    delta, s_l1, new_s = 0.0, 0.0, []
    for p, g, st, hp, b3 in zip(params, grads, states, hparams, beta3):
        x0 = st.get("p0", p)
        dlr = _dlr(hp, d, k)
        delta += (d / d0) * dlr * float((g * (x0 - p)).sum())
        s = b3 * st.get("s", torch.zeros_like(p)) + (d / d0) * (d if hp["safeguard_warmup"] else dlr) * g
        new_s.append(s)
        s_l1 += float(s.abs().sum())
    d_old = d
    r = beta3[0] * r + delta
    d_hat = hp0["d_coef"] * r / s_l1
    if d == d0:
        d = max(d, d_hat)
    d_max = max(d_max, d_hat)
    d = min(d_max, d * hp0["growth_rate"])
    new_params, new_states = [], []
    for p, g, st, hp, s in zip(params, grads, states, hparams, new_s):
        b1, b2 = hp["betas"]
        dlr = _dlr(hp, d_old, k)
        v = b2 * st.get("exp_avg_sq", torch.zeros_like(p)) + d_old * d_old * (1 - b2) * g * g
        denom = v.sqrt() + d * hp["eps"]
        q = p - hp["weight_decay"] * dlr * p if hp["decouple"] else p
        new = {"step": k + 1, "p0": st.get("p0", p), "s": s, "exp_avg_sq": v}
        new.update(d=_scal(d, p), d_max=_scal(d_max, p), d_numerator=_scal(r, p))
        if b1 > 0:
            m = b1 * st.get("exp_avg", torch.zeros_like(p)) + d_old * (1 - b1) * g
            new["exp_avg"] = m
            q = q - dlr * m / denom
        else:
            q = q - dlr * d * g / denom
        new_params.append(q)
        new_states.append(new)
    return new_params, new_states


@whole_model
def dadapt_adam(params, loss_fn, states, hparams):
    grads = _grads(params, loss_fn, hparams)
    hp0 = hparams[0]
    k = states[0].get("step", 0)
    d = float(states[0].get("d", _scal(hp0["d0"], params[0])))
    numerator = float(states[0].get("numerator_weighted", _scal(0.0, params[0])))
    sb2 = math.sqrt(hp0["betas"][1])
    acc, s_l1, new_s = 0.0, 0.0, []
    for p, g, st, hp in zip(params, grads, states, hparams):
        dlr = _dlr(hp, d, k)
        s_old = st.get("s", torch.zeros_like(p))
        v_old = st.get("exp_avg_sq", torch.zeros_like(p))
        acc += dlr * float((g * s_old / (v_old.sqrt() + hp["eps"])).sum())
        s = sb2 * s_old + dlr * (1 - sb2) * g
        new_s.append(s)
        s_l1 += float(s.abs().sum())
    numerator = sb2 * numerator + (1 - sb2) * acc
    d_new = max(d, min(numerator / ((1 - sb2) * s_l1), d * hp0["growth_rate"]))
    new_params, new_states = [], []
    for p, g, st, hp, s in zip(params, grads, states, hparams, new_s):
        b1, b2 = hp["betas"]
        dlr = _dlr(hp, d, k)
        m = b1 * st.get("exp_avg", torch.zeros_like(p)) + dlr * (1 - b1) * g
        v = b2 * st.get("exp_avg_sq", torch.zeros_like(p)) + (1 - b2) * g * g
        q = p - hp["weight_decay"] * dlr * p if hp["decouple"] else p
        new_params.append(q - m / (v.sqrt() + hp["eps"]))
        new = {"step": k + 1, "s": s, "exp_avg": m, "exp_avg_sq": v}
        new.update(d=_scal(d_new, p), numerator_weighted=_scal(numerator, p))
        new_states.append(new)
    return new_params, new_states
