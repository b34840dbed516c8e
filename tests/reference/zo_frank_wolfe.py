"""Zeroth-order stochastic Frank–Wolfe, RDSA variant (Sahu, Zaheer & Kar, 2019, arXiv:1810.03233, Algorithm 1),
for one vector x over an ℓp ball or the simplex, written from the pseudo-code with the LMOs solved by brute force
over the vertices (ℓ1, ℓ∞-by-sign, simplex) or in closed form (ℓ2). Directions follow optimlab.zo's convention."""

import itertools

import torch

from .zo_spsa import direction


def lmo(g, constraint, radius):
    """argmin_{v ∈ C} ⟨g, v⟩ by enumerating the candidate vertices."""
    d = g.numel()
    if constraint == "l2":
        n = g.norm()
        return torch.zeros_like(g) if n == 0 else -radius * g / n
    if constraint == "linf":
        return -radius * torch.sign(g)  # separable: each coordinate at the end of its interval
    vertices = []
    for i, s in itertools.product(range(d), (1.0, -1.0) if constraint == "l1" else (1.0,)):
        v = torch.zeros_like(g)
        v[i] = s * radius
        vertices.append(v)
    values = torch.stack([(g * v).sum() for v in vertices])
    return vertices[int(values.argmin())]


def zo_frank_wolfe(x0, loss_fn, *, steps, constraint, radius, seed, a=2.0, b=4.0, c=2.0, o=8.0):
    """The iterates x_0 … x_steps (list of tensors)."""
    stream = torch.Generator().manual_seed(seed)
    d = x0.numel()
    x, m = x0.detach().clone(), torch.zeros_like(x0)
    out = [x.clone()]
    for t in range(steps):
        gamma = a / (t + o)
        rho = min(1.0, b / (d ** (1 / 3) * (t + o) ** (2 / 3)))
        ct = c / (d**1.5 * (t + o) ** (1 / 3))
        s = torch.randint(0, 2**62, (1,), generator=stream, dtype=torch.int64).item()
        (z,) = direction([x], s)
        g = (float(loss_fn(x + ct * z)) - float(loss_fn(x))) / ct * z
        m = (1 - rho) * m + rho * g
        x = (1 - gamma) * x + gamma * lmo(m, constraint, radius)
        out.append(x.clone())
    return out
