"""MeZO's ZO-SGD (Malladi et al., 2023, arXiv:2305.17333, Algorithm 1, n-SPSA), written plainly: every direction is
materialised, every loss is evaluated at a fresh copy θ ± εz (no in-place perturbation), and the update uses the
explicit average gradient estimate. Random convention of optimlab.zo: per step, n seeds
``randint(0, 2**62, (n,))`` from a CPU generator seeded with ``seed``; the direction of a seed is one
``randn(p.shape)`` per parameter, in order, from a generator seeded with it."""

import torch


def direction(params, seed):
    g = torch.Generator().manual_seed(int(seed))
    return [torch.randn(p.shape, generator=g, dtype=p.dtype) for p in params]


def spsa_estimate(params, loss_fn, seeds, *, eps, two_sided):
    """(1/n) Σ_i c_i z_i and the coefficients c_i, with c_i the finite difference along z_i."""
    coefs, zs = [], []
    for s in seeds:
        z = direction(params, s)
        plus = float(loss_fn([p + eps * zi for p, zi in zip(params, z)]))
        if two_sided:
            minus = float(loss_fn([p - eps * zi for p, zi in zip(params, z)]))
            c = (plus - minus) / (2 * eps)
        else:
            c = (plus - float(loss_fn(params))) / eps
        coefs.append(c)
        zs.append(z)
    grad = [sum(c * z[j] for c, z in zip(coefs, zs)) / len(seeds) for j in range(len(params))]
    return grad, coefs


def zo_sgd(params, loss_fn, *, steps, lr, eps, n, two_sided, weight_decay, seed):
    """θ ← θ − lr (ĝ + λ θ) for ``steps`` steps; returns the final parameters (a list of new tensors).
    ``lr`` and ``weight_decay``: one number, or one per parameter (param groups)."""
    lr = lr if isinstance(lr, (list, tuple)) else [lr] * len(params)
    weight_decay = weight_decay if isinstance(weight_decay, (list, tuple)) else [weight_decay] * len(params)
    stream = torch.Generator().manual_seed(seed)
    theta = [p.detach().clone() for p in params]
    for _ in range(steps):
        seeds = torch.randint(0, 2**62, (n,), generator=stream, dtype=torch.int64).tolist()
        grad, _ = spsa_estimate(theta, loss_fn, seeds, eps=eps, two_sided=two_sided)
        theta = [p - a * (g + w * p) for p, g, a, w in zip(theta, grad, lr, weight_decay)]
    return theta
