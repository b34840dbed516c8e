"""FSAM (Zhong et al. 2022): SAM whose perturbation ε = ρ (m ⊙ g)/‖g‖ is restricted to a binary mask m that
keeps the top ⌊n(1 − s)⌋ entries of the empirical Fisher F = g² of each param group; the mask is recomputed at
steps 1, 1 + T_m, 1 + 2T_m, ... and kept in between."""

import math

import torch

from tests.reference import whole_model
from tests.reference.sam import SAM_DEFAULTS, base_step, grads_at

OWN = ("base", "rho", "adaptive", "eta", "normalize", "perturb", "sparsity", "mask_interval")


def _groups(hparams):
    """Indices of the parameters of each param group (consecutive parameters with the same hyperparameters)."""
    groups, current = [], [0]
    for i in range(1, len(hparams)):
        if hparams[i] == hparams[i - 1]:
            current.append(i)
        else:
            groups.append(current)
            current = [i]
    groups.append(current)
    return groups


def _top_k_mask(scores, sparsity):
    flat = torch.cat([s.reshape(-1) for s in scores])
    k = int(math.floor(round(flat.numel() * (1.0 - sparsity), 6)))
    order = torch.argsort(flat, descending=True, stable=True)
    keep = torch.zeros(flat.numel(), dtype=torch.bool)
    keep[order[:k]] = True
    masks, offset = [], 0
    for s in scores:
        masks.append(keep[offset : offset + s.numel()].reshape(s.shape))
        offset += s.numel()
    return masks


@whole_model
def fsam(params, loss_fn, states, hparams):
    hp = [{**SAM_DEFAULTS, "sparsity": 0.9, "mask_interval": 100, **h} for h in hparams]
    g = grads_at(loss_fn, params)
    t = states[0].get("step", 0)  # steps taken so far
    masks = [s.get("fisher_mask") for s in states]
    if t % hp[0]["mask_interval"] == 0:
        for idx in _groups(hparams):
            new = _top_k_mask([g[i] ** 2 for i in idx], hp[idx[0]]["sparsity"])
            for i, m in zip(idx, new):
                masks[i] = m
    norm = torch.sqrt(sum((gi**2).sum() for gi in g))
    eps = [h["rho"] * (gi * m.to(gi.dtype)) / (norm + 1e-12) for gi, m, h in zip(g, masks, hp)]
    sam_grads = grads_at(loss_fn, [p + e for p, e in zip(params, eps)])
    new_params, new_states = base_step(params, sam_grads, states, hp, OWN)
    for s, m in zip(new_states, masks):
        s["fisher_mask"] = m
    return new_params, new_states
