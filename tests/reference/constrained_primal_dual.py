"""Reference primal–dual methods for constrained learning, written from the papers' formulas on one flat vector.

Lagrangian ``L = f + Σ λ·g`` (Arrow–Hurwicz–Uzawa); quadratic penalty ``f + ρ/2 Σ relu(g)²`` (``h²`` for
equalities, Nocedal & Wright eq. 17.7); augmented Lagrangian ``f + 1/(2ρ) Σ (relu(λ + ρg)² − λ²)`` for
inequalities and ``μ·h + ρ/2 h²`` for equalities (N&W 17.36/17.65) with multiplier gradient ``ρ g``; resilient
slack ``u = λ/α`` (Hounie et al. 2023) so the dual gradient is ``g − λ/α``; per-sample constraints enter the
primal loss as the batch mean of ``λ_i g_i``. Steps: plain SGD on x and projected SGD ascent (or νPI, Sohrabi et
al. 2024) on λ, combined as simultaneous GDA, alternating (dual first), extragradient (Korpelevich) or
extrapolation from the past (Popov; Gidel et al. 2019, Alg. "extrapolation from the past").

A problem is ``evaluate(x, t) -> (f or None, {name: (g, indices or None)})``; ``spec`` is a list of
``(name, kind, size, per_sample, resilience)``.
"""

from __future__ import annotations

import torch


def primal_loss(form, spec, f, obs, lam, rho):
    total = torch.zeros((), dtype=torch.float64) if f is None else f
    for name, kind, _size, per_sample, _res in spec:
        g, idx = obs[name]
        r = rho[name]
        if form == "penalty":
            v = torch.relu(g) if kind == "inequality" else g
            term = 0.5 * r * v**2
        else:
            la = lam[name][idx] if per_sample else lam[name]
            if form == "lagrangian":
                term = la * g
            elif kind == "inequality":  # augmented, inequality
                term = (torch.relu(la + r * g) ** 2 - la**2) / (2 * r)
            else:  # augmented, equality
                term = la * g + 0.5 * r * g**2
        total = total + (term.mean() if per_sample else term.sum())
    return total


def dual_gradient(form, spec, obs, lam, rho):
    out = {}
    for name, _kind, size, per_sample, res in spec:
        g, idx = obs[name]
        g = g.detach()
        la = lam[name][idx] if per_sample else lam[name]
        d = rho[name] * g if form == "augmented" else g
        if res is not None:
            d = d - la / res
        if per_sample:
            dense = torch.zeros(size, dtype=torch.float64)
            for k, i in enumerate(idx.tolist()):
                dense[i] += d[k]
            d = dense
        out[name] = d
    return out


def _project(spec, lam):
    return {n: (lam[n].clamp(min=0) if kind == "inequality" else lam[n]) for n, kind, *_ in spec}


class _Dual:
    """Projected ascent: SGD, or νPI with ξ_{-1} = 0: λ ← Π[λ + η (κ_I e + κ_P (ξ_t − ξ_{t−1}))]."""

    def __init__(self, spec, lr, kp=0.0, ki=1.0, nu=0.0):
        self.spec, self.lr, self.kp, self.ki, self.nu = spec, lr, kp, ki, nu
        self.xi = {n: torch.zeros(size, dtype=torch.float64) for n, _k, size, *_ in spec}

    def step(self, lam, grads):
        new = {}
        for n in lam:
            e = grads[n]
            xi_new = self.nu * self.xi[n] + (1 - self.nu) * e
            new[n] = lam[n] + self.lr * (self.ki * e + self.kp * (xi_new - self.xi[n]))
            self.xi[n] = xi_new
        return _project(self.spec, new)


def run(form, method, spec, evaluate, x0, lam0, *, steps, lr, dual_lr, rho, nupi=None):
    """``steps`` iterations; returns (x, λ, list of primal-loss values at the iterates)."""
    x = x0.clone()
    lam = {n: v.clone() for n, v in lam0.items()}
    dual = _Dual(spec, dual_lr, **(nupi or {}))
    uses_lam = form != "penalty"

    def grads(x, lam, t):
        xr = x.clone().requires_grad_(True)
        f, obs = evaluate(xr, t)
        loss = primal_loss(form, spec, f, obs, lam, rho)
        (gx,) = torch.autograd.grad(loss, xr)
        gl = dual_gradient(form, spec, obs, lam, rho) if uses_lam else {}
        return gx, gl, float(loss.detach()), obs, f

    def apply(x, lam, gx, gl):
        return x - lr * gx, (dual.step(lam, gl) if uses_lam else lam)

    history = []
    past = None
    for t in range(steps):
        if method == "simultaneous":
            gx, gl, value, *_ = grads(x, lam, t)
            x, lam = apply(x, lam, gx, gl)
        elif method == "alternating":
            _, gl, value, obs, f = grads(x, lam, t)
            lam = dual.step(lam, gl)
            xr = x.clone().requires_grad_(True)
            f, obs = evaluate(xr, t)
            (gx,) = torch.autograd.grad(primal_loss(form, spec, f, obs, lam, rho), xr)
            x = x - lr * gx
        elif method == "extragradient":
            gx, gl, value, *_ = grads(x, lam, t)
            xh, lh = apply(x, lam, gx, gl)
            gx2, gl2, *_ = grads(xh, lh, t)
            x, lam = apply(x, lam, gx2, gl2)
        else:  # extrapolation from the past: x̃_t = x_t − η F(x̃_{t−1}); x_{t+1} = x_t − η F(x̃_t)
            xh, lh = (x, lam) if past is None else apply(x, lam, *past)
            gx, gl, value, *_ = grads(xh, lh, t)
            past = (gx, gl)
            x, lam = apply(x, lam, gx, gl)
        history.append(value)
    return x, lam, history
