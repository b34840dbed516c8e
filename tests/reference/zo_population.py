"""Population methods written plainly, one particle at a time, for one parameter vector (shape (d,)):
CBO (Pinnau et al. 2017; Carrillo et al. 2021; the CBXpy step convention), OpenAI-ES with antithetic pairs
(Salimans et al. 2017) and the truncation GA with elitism (Such et al. 2017). They draw random numbers from one CPU
generator in the order the optimlab.zo classes document: CBO — initial particles, then per step the batch
permutation (if batched) and the noise ξ (rows of the moving particles); ES — the N/2 directions; GA — the
initial mutants (row 0 unmutated), then per step the parent indices and the children's mutations."""

import math

import torch


def cbo(x0, f, *, steps, n, dt, lamda, sigma, alpha, alpha_factor, alpha_max, noise, seed, init_scale,
        batch_size=None, batch_partial=True):  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    X = list((x0.unsqueeze(0) + init_scale * torch.randn((n, *x0.shape), generator=g, dtype=x0.dtype)).unbind(0))
    consensus = []
    for _ in range(steps):
        if batch_size is not None and batch_size < n:
            idx = torch.randperm(n, generator=g)[:batch_size].tolist()
        else:
            idx = list(range(n))
        losses = [float(f(X[i])) for i in idx]
        best = min(losses)
        w = [math.exp(-alpha * (fi - best)) for fi in losses]
        v = sum(wi * X[i] for wi, i in zip(w, idx)) / sum(w)
        moving = idx if (batch_size is not None and batch_size < n and batch_partial) else list(range(n))
        xi = torch.randn((len(moving), *x0.shape), generator=g, dtype=x0.dtype)
        for row, i in enumerate(moving):
            drift = X[i] - v
            kick = drift.norm() * xi[row] if noise == "isotropic" else drift * xi[row]
            X[i] = X[i] - lamda * dt * drift + sigma * math.sqrt(dt) * kick
        consensus.append(v)
        alpha = min(alpha * alpha_factor, alpha_max)
    return consensus, X


def es(x0, f, *, steps, n, lr, sigma, weight_decay, seed):
    g = torch.Generator().manual_seed(seed)
    x = x0.clone()
    for _ in range(steps):
        eps = torch.randn((n // 2, *x0.shape), generator=g, dtype=x0.dtype)
        cands = [x + sigma * e for e in eps] + [x - sigma * e for e in eps]
        losses = [float(f(c)) for c in cands]
        order = sorted(range(n), key=lambda i: (losses[i], i))
        u = [0.0] * n
        for r, i in enumerate(order):
            u[i] = r / (n - 1) - 0.5
        grad = sum((u[k] - u[k + n // 2]) * eps[k] for k in range(n // 2)) / (n * sigma)
        x = x - lr * (grad + weight_decay * x)
    return x


def ga(x0, f, *, steps, n, truncation, sigma, elites, init_scale, seed):
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn((n, *x0.shape), generator=g, dtype=x0.dtype)
    pop = [x0.clone()] + [x0 + init_scale * noise[i] for i in range(1, n)]
    bests = []
    for _ in range(steps):
        losses = [float(f(p)) for p in pop]
        order = sorted(range(n), key=lambda i: (losses[i], i))
        bests.append((pop[order[0]].clone(), losses[order[0]]))
        parents = torch.randint(0, truncation, (n - elites,), generator=g).tolist()
        mutations = torch.randn((n - elites, *x0.shape), generator=g, dtype=x0.dtype)
        pop = [pop[i] for i in order[:elites]] + [pop[order[p]] + sigma * mutations[k] for k, p in enumerate(parents)]
    return bests
