"""PSGD-Kron gradient whitening (Li 2024, arXiv:2402.11858; Li 2019, arXiv:1809.10232), written from the
Lie-group fitting rule of the papers as implemented in the author's ``psgd.py`` (``update_precond_kron_eq``):
P = QᵀQ, Q = Q_l ⊗ Q_r upper triangular (or diagonal), criterion E[hᵀPh + vᵀP⁻¹v], dQ = −μ/L·triu(∇)·Q.

Factors are handled as dense matrices here (a diagonal factor is diag(q), an absent one the 1×1 identity) and
inverses are explicit; only the documented random stream (optimlab.optim.psgd.probe_generator: the update coin
first, then v) and the documented factor layout are shared with the optimizer. The parameter's probe key is its
index (every parameter has a gradient at the first step).
"""

import math

import torch

from optimlab.optim.psgd import probe_generator
from tests.reference import whole_model


def _kinds(shape, max_size, max_skew):
    rows, cols = (shape[0], math.prod(shape[1:])) if len(shape) >= 2 else (1, math.prod(shape))

    def kind(n):
        return "diag" if n <= 1 or n > max_size or n * n > max_skew * rows * cols else "dense"

    return rows, cols, ("none" if len(shape) < 2 else kind(rows)), kind(cols)


def _dense(q, kind, n):
    if kind == "none":
        return torch.eye(n, dtype=torch.float64)
    return torch.diag(q) if kind == "diag" else q


def _compact(Q, kind):
    if kind == "none":
        return torch.zeros(0, dtype=Q.dtype)
    return torch.diagonal(Q).clone() if kind == "diag" else Q


def _norm_lower_bound(A):
    """The author's estimate: normalize by max|A|, take the row j of largest norm, x = A a_j, return ‖A x̂‖."""
    m = torch.max(torch.abs(A))
    if m <= 0:
        return m
    An = A / m
    j = torch.argmax(torch.sum(An * An, dim=1))
    x = An @ An[j]
    return m * torch.linalg.norm(An @ (x / torch.linalg.norm(x)))


def _fit(Q, kind, L, T1, T2, lr_preconditioner):
    if kind == "diag":
        ell = torch.max(torch.diagonal(T1 + T2))
        L = torch.maximum(0.9 * L + 0.1 * ell, ell)
        return Q - lr_preconditioner / L * torch.diag(torch.diagonal(T1 - T2)) @ Q, L
    ell = _norm_lower_bound(T1 + T2)
    L = torch.maximum(0.9 * L + 0.1 * ell, ell)
    return Q - lr_preconditioner / L * torch.triu(T1 - T2) @ Q, L


def _one(param, grad, state, key, hp, seed):
    shape = tuple(param.shape)
    rows, cols, kl, kr = _kinds(shape, hp["preconditioner_max_size"], hp["preconditioner_max_skew"])
    t = state.get("step", 0) + 1
    k = 1 if kl == "none" else 2
    if "Ql" not in state:
        s = hp["preconditioner_init_scale"]
        s = 1.0 if s is None else s ** (1 / k)
        Ql = torch.eye(rows, dtype=param.dtype) * (s if kl != "none" else 1.0)
        Qr = torch.eye(cols, dtype=param.dtype) * s
        Ll = Lr = torch.zeros((), dtype=param.dtype)
        m = torch.zeros(rows, cols, dtype=param.dtype)
    else:
        Ql, Qr = _dense(state["Ql"], kl, rows), _dense(state["Qr"], kr, cols)
        Ll, Lr = state["Ll"], state["Lr"]
        m = state["momentum_buffer"].reshape(rows, cols)
    G = grad.reshape(rows, cols)
    if t == 1 and hp["preconditioner_init_scale"] is None and float(torch.mean(G**4)) > 0:  # P₀ = mean(g⁴)^(-1/4)·I
        s = float(torch.mean(G**4)) ** (-1 / 8)
        Ql, Qr = (Ql * s ** (1 / k) if kl != "none" else Ql), Qr * s ** (1 / k)

    gen = probe_generator(seed, key, t)
    fit = float(torch.rand((), generator=gen, dtype=torch.float64)) < hp["preconditioner_update_probability"]
    beta = min((t - 1) / t, hp["momentum"])

    def P(X):
        return Ql.T @ Ql @ X @ Qr.T @ Qr

    def refit(Ql, Qr, Ll, Lr, H):
        V = torch.randn(rows, cols, generator=gen, dtype=param.dtype)
        A = Ql @ H @ Qr.T
        B = torch.linalg.inv(Ql).T @ V @ torch.linalg.inv(Qr)
        if kl != "none":
            Ql, Ll = _fit(Ql, kl, Ll, A @ A.T, B @ B.T, hp["lr_preconditioner"])
        Qr, Lr = _fit(Qr, kr, Lr, A.T @ A, B.T @ B, hp["lr_preconditioner"])
        if kl != "none":  # rebalance: equal largest entries, same Kronecker product
            a, b = torch.max(torch.abs(Ql)), torch.max(torch.abs(Qr))
            c = torch.sqrt(a * b)
            Ql, Qr = Ql * (c / a), Qr * (c / b)
        return Ql, Qr, Ll, Lr

    if hp["whiten_grad"]:
        d = P(G)
        if fit:
            Ql, Qr, Ll, Lr = refit(Ql, Qr, Ll, Lr, G)
        m = beta * m + (1 - beta) * d
        d = m
    else:
        m = beta * m + (1 - beta) * G
        d = P(m)
        if fit:
            Ql, Qr, Ll, Lr = refit(Ql, Qr, Ll, Lr, m)
    lr, wd = hp["lr"], hp["weight_decay"]
    new = param * (1 - lr * wd) - lr * d.reshape(shape)
    return new, {
        "step": t,
        "Ql": _compact(Ql, kl),
        "Qr": _compact(Qr, kr),
        "Ll": Ll,
        "Lr": Lr,
        "momentum_buffer": m.reshape(shape),
        "probe_key": torch.tensor(float(key), dtype=torch.float32),
    }


DEFAULTS = dict(
    momentum=0.0,
    weight_decay=0.0,
    lr_preconditioner=0.1,
    preconditioner_update_probability=1.0,
    preconditioner_max_size=math.inf,
    preconditioner_max_skew=1.0,
    preconditioner_init_scale=None,
    whiten_grad=True,
)


@whole_model
def psgd_kron(params, loss_fn, states, hparams, seed=0):
    leaves = [p.clone().requires_grad_(True) for p in params]
    grads = torch.autograd.grad(loss_fn(leaves), leaves)
    out = [
        _one(p, g, s, i, {**DEFAULTS, **hp}, seed)
        for i, (p, g, s, hp) in enumerate(zip(params, grads, states, hparams))
    ]
    return [o[0] for o in out], [o[1] for o in out]
