"""AMP (Zheng et al. 2021, Algorithm 1): Δ₀ = 0; Δₙ₊₁ = Π_ε(Δₙ + ζ ∇L(w + Δₙ)) for n < N, with
Π_ε(Δ) = εΔ/‖Δ‖ when ‖Δ‖ > ε; the base optimizer steps from w with ∇L(w + Δ_N). ‖·‖ is over the whole
parameter vector (the paper), or over each tensor with ``per_tensor`` (the authors' code). A group with fewer
inner steps keeps its Δ once its steps are done; ε of a group scales that group under the global norm."""

import torch

from tests.reference import whole_model
from tests.reference.sam import base_step, grads_at

OWN = ("base", "epsilon", "inner_lr", "inner_steps", "per_tensor")
DEFAULTS = {"epsilon": 0.5, "inner_lr": 1.0, "inner_steps": 1, "per_tensor": False}


@whole_model
def amp(params, loss_fn, states, hparams):
    hp = [{**DEFAULTS, **h} for h in hparams]
    n_steps = max(h["inner_steps"] for h in hp)
    delta = [torch.zeros_like(p) for p in params]
    for n in range(n_steps):
        g = grads_at(loss_fn, [p + d for p, d in zip(params, delta)])
        moving = [n < h["inner_steps"] for h in hp]
        new = [
            d + h["inner_lr"] * (-gi if h.get("maximize", False) else gi) if m else d
            for d, gi, h, m in zip(delta, g, hp, moving)
        ]
        total = sum((d**2).sum() for d, h, m in zip(new, hp, moving) if m and not h["per_tensor"]) ** 0.5
        for i, (d, h, m) in enumerate(zip(new, hp, moving)):
            if not m:
                continue
            norm = torch.sqrt((d**2).sum()) if h["per_tensor"] else total
            if h["epsilon"] / (norm + 1e-12) < 1:
                d = d * (h["epsilon"] / (norm + 1e-12))
            delta[i] = d
    g = grads_at(loss_fn, [p + d for p, d in zip(params, delta)])
    return base_step(params, g, states, hp, OWN)
