"""SAM (Foret et al. 2021, Algorithm 1; m-sharpness §4.1), ASAM (Kwon et al. 2021, Algorithm 1), USAM
(Andriushchenko & Flammarion 2022) and SAM-ON (Mueller et al. 2023: only the normalization parameters are
perturbed, the norm is taken over them alone), with the base optimizer's own reference doing the descent step.

Shared helpers for the other whole-model references of wrappers: :func:`grads_at`, :func:`base_step`."""

import torch

import optimlab
from tests import optim_db as DB
from tests._harness import load_reference
from tests.reference import whole_model

OWN = ("base", "rho", "adaptive", "eta", "normalize", "perturb")
SAM_DEFAULTS = {"rho": 0.05, "adaptive": False, "eta": 0.01, "normalize": True, "perturb": True}


def grads_at(loss_fn, params):
    """∇ loss_fn at ``params`` (a list of tensors), as a list."""
    leaves = [p.detach().clone().requires_grad_(True) for p in params]
    return list(torch.autograd.grad(loss_fn(leaves), leaves))


def base_step(params, grads, states, hparams, own):
    """One step of each parameter's base optimizer (its registry reference) on ``grads``; ``own`` are the
    wrapper's hyperparameter names, the rest of ``hparams[i]`` goes to the base."""
    new_params, new_states = [], []
    for p, g, state, hp in zip(params, grads, states, hparams):
        spec = optimlab.spec(hp["base"])
        base_hp = {**spec.defaults, **{k: v for k, v in hp.items() if k not in own}}
        q, s = load_reference(DB.info(hp["base"]).reference)(p, g, state, **base_hp)
        new_params.append(q)
        new_states.append(s)
    return new_params, new_states


def sam_gradient(params, loss_fn, sam_hp):
    """The gradient at SAM's perturbed point w + ε, ε = ρ T²g/‖Tg‖ (norm over the perturbed params)."""
    grads = grads_at(loss_fn, params)
    g = [(-x if hp.get("maximize", False) else x) for x, hp in zip(grads, sam_hp)]
    # T = |w| + η elementwise for ASAM, the identity otherwise
    t = [(p.abs() + hp["eta"]) if hp["adaptive"] else torch.ones_like(p) for p, hp in zip(params, sam_hp)]
    on = [hp["perturb"] for hp in sam_hp]
    norm = torch.sqrt(sum(((ti * gi) ** 2).sum() for ti, gi, o in zip(t, g, on) if o))
    eps = []
    for gi, ti, hp in zip(g, t, sam_hp):
        if not hp["perturb"]:
            eps.append(torch.zeros_like(gi))
        elif hp["normalize"]:
            eps.append(hp["rho"] * ti**2 * gi / (norm + 1e-12))
        else:
            eps.append(hp["rho"] * gi)
    return grads_at(loss_fn, [p + e for p, e in zip(params, eps)])


@whole_model
def sam(params, loss_fn, states, hparams):
    """hparams[i] are the constructor hyperparameters of param i's group."""
    sam_hp = [{**SAM_DEFAULTS, **hp} for hp in hparams]
    return base_step(params, sam_gradient(params, loss_fn, sam_hp), states, sam_hp, OWN)


def sam_m_sharpness(params, loss_fns, states, hparams):
    """m-sharpness: one SAM perturbation per micro-batch loss in ``loss_fns``; the gradients at the perturbed
    points are averaged and drive one base step."""
    sam_hp = [{**SAM_DEFAULTS, **hp} for hp in hparams]
    per_batch = [sam_gradient(params, fn, sam_hp) for fn in loss_fns]
    mean = [sum(gs) / len(loss_fns) for gs in zip(*per_batch)]
    return base_step(params, mean, states, sam_hp, OWN)
