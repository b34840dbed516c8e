"""Plain Hutchinson probes for the Hessian-based references (AdaHessian, Sophia-H, OASIS, SANIA-Hutchinson).

Only the random-number convention is shared with the library (``probe_seed``: the probes of step t come from a
generator seeded with probe_seed(seed, t), drawn parameter by parameter in order, one full sweep per sample);
the estimator itself is written out here: diag(H) ≈ mean over probes z of z ⊙ (H z), H z by double backward.
"""

import torch

from optimlab.optim._second_order import probe_seed


def draw(shape, dtype, generator, distribution):
    if distribution == "rademacher":
        return torch.randint(0, 2, shape, generator=generator, dtype=dtype) * 2 - 1
    return torch.randn(shape, generator=generator, dtype=dtype)


def hutchinson(leaves, grads, step, samples, distribution, seed=0):
    """Mean of z ⊙ Hz over ``samples`` probes; ``grads`` were built with create_graph=True from ``leaves``."""
    generator = torch.Generator().manual_seed(probe_seed(seed, step))
    total = [torch.zeros_like(p) for p in leaves]
    for _ in range(samples):
        zs = [draw(p.shape, p.dtype, generator, distribution) for p in leaves]
        hz = torch.autograd.grad(grads, leaves, grad_outputs=zs, retain_graph=True)
        total = [a + z * h for a, z, h in zip(total, zs, hz)]
    return [a / samples for a in total] if samples > 1 else total


def grads_with_graph(params, loss_fn):
    """(leaves, loss, gradients with a graph) at ``params``."""
    leaves = [p.clone().requires_grad_(True) for p in params]
    loss = loss_fn(leaves)
    grads = torch.autograd.grad(loss, leaves, create_graph=True)
    return leaves, loss, grads
