"""Finite-difference gradient regularization (Karakida et al. 2023): the gradient of L + (γ/2)‖∇L‖² is
g + γHg, and Hg is replaced by a finite difference along g with step h:
forward  Hg ≈ (∇L(w + hg) − g)/h  →  g + (γ/h)(∇L(w + hg) − g);
backward Hg ≈ (g − ∇L(w − hg))/h  →  g + (γ/h)(g − ∇L(w − hg))."""

from tests.reference import whole_model
from tests.reference.sam import base_step, grads_at

OWN = ("base", "gamma", "h", "variant")
DEFAULTS = {"gamma": 0.01, "h": 0.1, "variant": "forward"}


@whole_model
def fdgr(params, loss_fn, states, hparams):
    hp = [{**DEFAULTS, **h} for h in hparams]
    g = grads_at(loss_fn, params)
    sign = [1.0 if h["variant"] == "forward" else -1.0 for h in hp]
    direction = [(-gi if h.get("maximize", False) else gi) for gi, h in zip(g, hp)]
    g2 = grads_at(loss_fn, [p + s * h["h"] * d for p, s, h, d in zip(params, sign, hp, direction)])
    combined = []
    for gi, g2i, h in zip(g, g2, hp):
        c = h["gamma"] / h["h"]
        hg_times_h = (g2i - gi) if h["variant"] == "forward" else (gi - g2i)  # h · (Hg)
        combined.append(gi + c * hg_times_h)
    return base_step(params, combined, states, hp, OWN)
