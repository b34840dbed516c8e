"""⊥Grad (Prieto et al. 2025): per tensor, g⊥ = g − (⟨w,g⟩/(⟨w,w⟩ + ε)) w, rescaled to ‖g‖ (ε = 1e-30 in
both denominators), then the base optimizer's step on g⊥."""

import torch

import optimlab
from tests import optim_db as DB
from tests._harness import load_reference

OWN = ("base", "ortho_eps", "orthogonalize")


def orthograd(param, grad, state, *, base, ortho_eps=1e-30, orthogonalize=True, **base_hparams):
    g = grad
    if orthogonalize and param.numel() == 1:
        g = grad * (param == 0)  # the complement of a nonzero w in R¹ is {0}
    elif orthogonalize:
        w, gv = param.reshape(-1), grad.reshape(-1)
        perp = gv - (torch.dot(w, gv) / (torch.dot(w, w) + ortho_eps)) * w
        g = (perp * (torch.linalg.vector_norm(gv) / (torch.linalg.vector_norm(perp) + ortho_eps))).reshape(grad.shape)
    spec = optimlab.spec(base)
    return load_reference(DB.info(base).reference)(param, g, state, **{**spec.defaults, **base_hparams})
