"""SAM (Foret et al. 2021, Algorithm 1), ASAM (Kwon et al. 2021, Algorithm 1) and USAM (Andriushchenko &
Flammarion 2022), with the base optimizer's own reference doing the descent step."""

import torch

import optimlab
from tests._harness import load_reference
from tests.reference import whole_model

OWN = ("base", "rho", "adaptive", "eta", "normalize")


@whole_model
def sam(params, loss_fn, states, hparams):
    """hparams[i] are the constructor hyperparameters of param i's group."""
    leaves = [p.clone().requires_grad_(True) for p in params]
    grads = torch.autograd.grad(loss_fn(leaves), leaves)
    sam_hp = [{"rho": 0.05, "adaptive": False, "eta": 0.01, "normalize": True, **hp} for hp in hparams]
    # T = |w| + η elementwise for ASAM, the identity otherwise
    t = [(p.abs() + hp["eta"]) if hp["adaptive"] else torch.ones_like(p) for p, hp in zip(params, sam_hp)]
    norm = torch.sqrt(sum(((ti * g) ** 2).sum() for ti, g in zip(t, grads)))
    eps = []
    for g, ti, hp in zip(grads, t, sam_hp):
        if hp["normalize"]:
            eps.append(hp["rho"] * ti**2 * g / (norm + 1e-12))
        else:
            eps.append(hp["rho"] * g)
    perturbed = [(p + e).requires_grad_(True) for p, e in zip(params, eps)]
    sam_grads = torch.autograd.grad(loss_fn(perturbed), perturbed)
    new_params, new_states = [], []
    for p, g, state, hp in zip(params, sam_grads, states, sam_hp):
        base_ref = load_reference(optimlab.spec(hp["base"]).reference)
        base_hp = {**optimlab.spec(hp["base"]).defaults, **{k: v for k, v in hp.items() if k not in OWN}}
        q, s = base_ref(p, g, state, **base_hp)
        new_params.append(q)
        new_states.append(s)
    return new_params, new_states
