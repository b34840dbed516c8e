"""PSGD-Kron: preconditioned SGD with a Kronecker-factored preconditioner fitted on a Lie group, random probes.

Li (2018), *Preconditioned Stochastic Gradient Descent*, arXiv:1512.04202 (IEEE TNNLS 2018);
Li (2019), *Preconditioner on Matrix Lie Group for SGD*, arXiv:1809.10232 (ICLR 2019);
Li (2024), *Stochastic Hessian Fittings with Lie Groups*, arXiv:2402.11858. Seed #174.
Authors' code: github.com/lixilinx/psgd_torch ``psgd.py`` (``KronWhiten`` with ``dQ="EQ"``,
``update_precond_kron_eq``, ``norm_lower_bound_herm``); this module follows that form. (Li's current default is
``dQ="QE"``, which integrates the probe out; ``"EQ"`` — "the old PSGD way", with triangular factors and a random
probe — is the form of the 2024 Kron that kron_torch, HeavyBall and pytorch_optimizer adapted.)

The preconditioner is P = QᵀQ with Q = Q_l ⊗ Q_r acting on the gradient viewed as a matrix G (rows × cols:
``(shape[0], prod(shape[1:]))`` for ≥2-D parameters, ``(1, numel)`` for vectors and scalars, whose left factor is
dropped). Each factor is upper triangular (dense), or diagonal (a vector) when the side is 1 long, longer than
``preconditioner_max_size``, or when side² > ``preconditioner_max_skew``·numel (Li's rule; with the default skew
1.0 the longer side of a non-square matrix is diagonal). Q is fitted to the criterion
E[hᵀPh + vᵀP⁻¹v] with h the gradient (or the momentum) and v ~ N(0, I) a random probe (gradient whitening:
P → E[hhᵀ]^(-1/2)). One fitting step, on the connected Lie group of triangular matrices (dQ = E·Q)::

    A = Q_l H Q_rᵀ,   B = Q_l⁻ᵀ V Q_r⁻¹                     (H = h, V = v as rows × cols matrices)
    for each side s with terms T1 = A·Aᵀ / Aᵀ·A and T2 = B·Bᵀ / Bᵀ·B (their diagonals for a diagonal factor):
        ℓ = ‖T1 + T2‖₂ lower bound (Li's estimator; max for a diagonal factor),   L_s ← max(0.9·L_s + 0.1·ℓ, ℓ)
        Q_s ← Q_s − lr_preconditioner / L_s · triu(T1 − T2)·Q_s          (diagonal: elementwise)

and the parameter step, with Li's warm-started momentum β_t = min((t − 1)/t, momentum)::

    whiten_grad=True  (default):  g̃ = P·g (P before this step's fit; fit Q with h = g);  m ← β_t m + (1 − β_t) g̃
    whiten_grad=False:            m ← β_t m + (1 − β_t) g;  g̃ = P·m (fit Q with h = m);  m̃ = g̃
    p ← p·(1 − lr·λ) − lr·(m or g̃)                         (decoupled weight decay; Li's code has none)

The fit runs with probability ``preconditioner_update_probability`` per step and parameter. With
``preconditioner_init_scale=None`` (Li's default) Q starts at identity and is scaled on the first step so that
P₀ = mean(g⁴)^(-1/4)·I (a first gradient of zeros leaves the identity).

**Randomness and exact resume.** Every random number (the update coin, then the probe v) of a parameter at step t
comes from a fresh CPU ``torch.Generator`` seeded with :func:`probe_seed` (``seed``, the parameter's
``probe_key``, t), a SplitMix64 mix; ``probe_key`` (a float32 0-d state tensor) is the order in which the
parameter's state was created (its index in the param groups when every parameter has a gradient on the first
step). No generator state is kept, and a run resumed from a checkpoint draws exactly the probes of the
uninterrupted run (tests/test_psgd.py checks it bit for bit); the optimizer's ``seed=`` decorrelates runs.

Deviations from Li's code, none of which changes the fitted preconditioner in exact arithmetic: the factors are
rebalanced (equal max-abs, product unchanged) after every fit instead of at random with probability 0.01;
≥3-D tensors get two factors of the flattened matrix instead of one per dimension; Li's global gradient-norm
clipping (``grad_clip_max_norm``, default off) is left to ``optimlab.grad``. Under ``compile=True`` the update
runs eagerly (``torch._dynamo.disable``): its cost is in triangular solves and it branches on the coin.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from ..curvature.rng import random_probe
from ._base import Optimizer
from ._rules import BETA, OneOf, Range

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def probe_seed(seed: int, key: int, step: int) -> int:
    """The generator seed for (optimizer seed, parameter key, step): SplitMix64 of the three, in [0, 2⁶³)."""
    return _splitmix64(_splitmix64(_splitmix64(int(seed)) ^ int(key)) ^ int(step)) >> 1


def probe_generator(seed: int, key: int, step: int) -> torch.Generator:
    """A CPU generator seeded with :func:`probe_seed`; the update coin is its first draw, the probe the next."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(probe_seed(seed, key, step))
    return gen


def matrix_view(shape: tuple[int, ...]) -> tuple[int, int]:
    """(rows, cols) of the matrix a parameter is preconditioned as; vectors and scalars are (1, numel)."""
    if len(shape) >= 2:
        return shape[0], math.prod(shape[1:])
    return 1, math.prod(shape)


def factor_kinds(shape: tuple[int, ...], max_size: float, max_skew: float) -> tuple[str, str]:
    """``"dense"`` (upper triangular), ``"diag"`` or ``"none"`` for the (left, right) factor (Li's rule)."""
    rows, cols = matrix_view(shape)
    numel = rows * cols

    def kind(size: int) -> str:
        return "diag" if size <= 1 or size > max_size or size * size > max_skew * numel else "dense"

    return ("none" if len(shape) < 2 else kind(rows)), kind(cols)


def init_factor(size: int, kind: str, scale: float, like: Tensor) -> Tensor:
    if kind == "none":
        return like.new_empty(0)
    if kind == "diag":
        return torch.full((size,), scale, dtype=like.dtype, device=like.device)
    return torch.eye(size, dtype=like.dtype, device=like.device) * scale


def norm_lower_bound(A: Tensor) -> Tensor:
    """Li's cheap lower bound of the spectral norm of a symmetric matrix (``norm_lower_bound_herm``)."""
    max_abs = A.abs().max()
    if max_abs <= 0:
        return max_abs
    A = A / max_abs
    j = torch.argmax((A * A).sum(dim=1))
    x = A @ A[j]
    return max_abs * torch.linalg.vector_norm(A @ (x / torch.linalg.vector_norm(x)))


def _left(Q: Tensor, X: Tensor) -> Tensor:
    """Q·X for a dense, diagonal or absent left factor."""
    if Q.ndim == 2:
        return Q @ X
    return Q[:, None] * X if Q.numel() else X


def _right_t(X: Tensor, Q: Tensor) -> Tensor:
    """X·Qᵀ for a dense or diagonal right factor."""
    return X @ Q.T if Q.ndim == 2 else X * Q[None, :]


def precondition(Ql: Tensor, Qr: Tensor, G: Tensor) -> Tensor:
    """P·G = Q_lᵀ Q_l G Q_rᵀ Q_r."""
    X = _left(Ql, G)
    X = _left(Ql.T, X) if Ql.ndim == 2 else _left(Ql, X)
    X = _right_t(X, Qr)
    return X @ Qr if Qr.ndim == 2 else X * Qr[None, :]


def _fit_factor_(Q: Tensor, L: Tensor, T1: Tensor, T2: Tensor, lr_preconditioner: float) -> None:
    """One normalized Lie-group step of a factor (dense: T1, T2 are matrices; diagonal: their diagonals)."""
    ell = norm_lower_bound(T1 + T2) if Q.ndim == 2 else (T1 + T2).max()
    L.copy_(torch.maximum(0.9 * L + 0.1 * ell, ell))
    if Q.ndim == 2:
        Q.sub_(torch.triu(T1 - T2) @ Q * (lr_preconditioner / L))
    else:
        Q.sub_((T1 - T2) * Q * (lr_preconditioner / L))


def fit_preconditioner_(
    Ql: Tensor, Qr: Tensor, Ll: Tensor, Lr: Tensor, V: Tensor, H: Tensor, lr_preconditioner: float
) -> None:
    """Fit Q = Q_l ⊗ Q_r to the pair (V, H) (module docstring), then rebalance the two factors."""
    A = _right_t(_left(Ql, H), Qr)
    B = V
    if Ql.ndim == 2:
        B = torch.linalg.solve_triangular(Ql.T, B, upper=False)  # Q_l⁻ᵀ V
    elif Ql.numel():
        B = B / Ql[:, None]
    B = torch.linalg.solve_triangular(Qr, B, upper=True, left=False) if Qr.ndim == 2 else B / Qr[None, :]
    if Ql.numel():
        if Ql.ndim == 2:
            T1, T2 = A @ A.T, B @ B.T
        else:
            T1, T2 = (A * A).sum(dim=1), (B * B).sum(dim=1)
        _fit_factor_(Ql, Ll, T1, T2, lr_preconditioner)
    if Qr.ndim == 2:
        T1, T2 = A.T @ A, B.T @ B
    else:
        T1, T2 = (A * A).sum(dim=0), (B * B).sum(dim=0)
    _fit_factor_(Qr, Lr, T1, T2, lr_preconditioner)
    if Ql.numel():  # balance the dynamic ranges; Q_l ⊗ Q_r is unchanged
        nl, nr = Ql.abs().max(), Qr.abs().max()
        gmean = (nl * nr).sqrt()
        Ql.mul_(gmean / nl)
        Qr.mul_(gmean / nr)


@torch._dynamo.disable
def psgd_kron_update_(
    p: Tensor,
    grad: Tensor,
    Ql: Tensor,
    Qr: Tensor,
    Ll: Tensor,
    Lr: Tensor,
    momentum_buffer: Tensor,
    probe_key: Tensor,
    *,
    step: Any,
    lr: Any,
    momentum: Any,
    weight_decay: Any,
    lr_preconditioner: Any,
    preconditioner_update_probability: Any,
    preconditioner_init_scale: Any,
    whiten_grad: bool,
    seed: Any,
) -> None:
    """One PSGD-Kron step on one tensor (module docstring). Runs eagerly, also under ``compile=True``."""
    t = int(step)
    lr, momentum, weight_decay = float(lr), float(momentum), float(weight_decay)
    rows, cols = matrix_view(tuple(p.shape))
    G = grad.reshape(rows, cols)
    if t == 1 and preconditioner_init_scale is None:
        fourth = float(G.abs().pow(4).mean())
        if 0 < fourth < math.inf:  # a zero (or overflowing) first gradient leaves Q = I
            scale = fourth ** (-1 / 8)
            k = 2 if Ql.numel() else 1
            Ql.mul_(scale ** (1 / k))
            Qr.mul_(scale ** (1 / k))
    gen = probe_generator(int(seed), int(probe_key), t)
    fit = float(torch.rand((), generator=gen, dtype=torch.float64)) < float(preconditioner_update_probability)
    beta = min((t - 1) / t, momentum)
    buf = momentum_buffer.view(rows, cols)
    if whiten_grad:
        direction = precondition(Ql, Qr, G)
        if fit:
            fit_preconditioner_(Ql, Qr, Ll, Lr, random_probe(G, gen, "gaussian"), G, float(lr_preconditioner))
        buf.mul_(beta).add_(direction, alpha=1 - beta)
        direction = buf
    else:
        buf.mul_(beta).add_(G, alpha=1 - beta)
        direction = precondition(Ql, Qr, buf)
        if fit:
            fit_preconditioner_(Ql, Qr, Ll, Lr, random_probe(G, gen, "gaussian"), buf, float(lr_preconditioner))
    if weight_decay != 0:
        p.mul_(1 - lr * weight_decay)
    p.add_(direction.view(p.shape), alpha=-lr)


class PSGDKron(Optimizer):
    """PSGD with a Kronecker-product gradient-whitening preconditioner (Li 2018/2024; ``KronWhiten``, dQ = EQ).

    Args (Li's names and defaults, lr = ``lr_params``):
        lr: parameter step size (1e-3). momentum: EMA momentum (0; Li's β_t warm start).
        lr_preconditioner: step of the normalized Lie-group fit (0.1).
        preconditioner_update_probability: chance of a fit per step (1.0).
        preconditioner_max_size, preconditioner_max_skew: when a factor is diagonal (∞, 1.0).
        preconditioner_init_scale: P₀ = scale²·I, or ``None`` to set it from the first gradient.
        whiten_grad: precondition the gradient then average (True) or average then precondition (False).
        weight_decay: decoupled weight decay (0).
        seed (constructor option): decorrelates the random probes of different runs.
    """

    shard_local = False  # sharded parameters: gather, update the full tensor, keep the shard
    guard_every_update = True  # its linear algebra can fail: snapshot, check, restore (Optimizer._apply)

    supports_complex = False
    hyperparameters = {
        "lr": Range(0.0),
        "momentum": BETA,
        "weight_decay": Range(0.0),
        "lr_preconditioner": Range(0.0, 1.0, low_open=True),
        "preconditioner_update_probability": Range(0.0, 1.0),
        "preconditioner_max_size": Range(0.0, infinite=True),
        "preconditioner_max_skew": Range(0.0, infinite=True),
        "preconditioner_init_scale": Range(0.0, low_open=True, optional=True),
        "whiten_grad": OneOf((True, False)),
    }
    state_names = ("Ql", "Qr", "Ll", "Lr", "momentum_buffer", "probe_key")

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        momentum: float = 0.0,
        weight_decay: float = 0.0,
        *,
        lr_preconditioner: float = 0.1,
        preconditioner_update_probability: float = 1.0,
        preconditioner_max_size: float = math.inf,
        preconditioner_max_skew: float = 1.0,
        preconditioner_init_scale: float | None = None,
        whiten_grad: bool = True,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            lr_preconditioner=lr_preconditioner,
            preconditioner_update_probability=preconditioner_update_probability,
            preconditioner_max_size=preconditioner_max_size,
            preconditioner_max_skew=preconditioner_max_skew,
            preconditioner_init_scale=preconditioner_init_scale,
            whiten_grad=whiten_grad,
            maximize=maximize,
        )
        self._next_probe_key = 0
        super().__init__(params, defaults, **options)

    def init_state(self, p: Tensor, group: dict[str, Any]) -> list[Tensor]:
        rows, cols = matrix_view(tuple(p.shape))
        kl, kr = factor_kinds(tuple(p.shape), group["preconditioner_max_size"], group["preconditioner_max_skew"])
        scale = group["preconditioner_init_scale"]
        scale = 1.0 if scale is None else float(scale) ** (1 / (2 if kl != "none" else 1))
        key = torch.tensor(float(self._next_probe_key), dtype=torch.float32)
        self._next_probe_key += 1
        return [
            init_factor(rows, kl, scale, p),
            init_factor(cols, kr, scale, p),
            torch.zeros((), dtype=p.dtype, device=p.device),
            torch.zeros((), dtype=p.dtype, device=p.device),
            torch.zeros_like(p, memory_format=torch.contiguous_format),
            key,
        ]

    update = staticmethod(psgd_kron_update_)

    def hyper(self, group):
        return {**super().hyper(group), "seed": self.seed}

    def _restore_probe_keys(self) -> None:
        keys = [int(s["probe_key"]) for s in self.state.values() if "probe_key" in s]
        self._next_probe_key = max(keys, default=-1) + 1

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self._restore_probe_keys()

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._restore_probe_keys()


def _psgd_state_bytes(shape, dtype, hp) -> int:
    rows, cols = matrix_view(tuple(shape))
    kl, kr = factor_kinds(
        tuple(shape), hp.get("preconditioner_max_size", math.inf), hp.get("preconditioner_max_skew", 1.0)
    )
    sizes = {"none": lambda n: 0, "diag": lambda n: n, "dense": lambda n: n * n}
    item = R.compute_dtype(dtype).itemsize
    factors = sizes[kl](rows) + sizes[kr](cols) + 2  # + the two Lipschitz scalars
    return R.dense_state_bytes(shape, dtype, 1) + factors * item + 4  # + momentum, step, float32 probe_key


R.register(
    R.AlgorithmSpec(
        name="psgd_kron",
        cls=PSGDKron,
        family="second_order",
        paper=R.Paper("Stochastic Hessian Fittings with Lie Groups", "Li", 2024, "2402.11858", "#174"),
        summary="Kronecker-factored P = QᵀQ fitted on a Lie group to E[hᵀPh + vᵀP⁻¹v] with random probes v",
        hparams=(
            "lr momentum weight_decay lr_preconditioner preconditioner_update_probability preconditioner_max_skew "
            "whiten_grad"
        ),
        search_space={
            "lr": R.LogUniform(1e-5, 1e-1),
            "momentum": R.Choice((0.0, 0.9)),
            "lr_preconditioner": R.LogUniform(0.01, 0.5),
        },
        state_tensors=1,
        state_formula=_psgd_state_bytes,
        notes=(
            "Li's KronWhiten with dQ='EQ' (triangular Q, Lie-group step normalized by a Lipschitz estimate L with "
            "EMA 0.9), gradient whitening with Gaussian probes v. Probes and update coins come from a generator "
            "seeded per (seed, probe_key, step): resume is bit-exact with no RNG state saved. Factors are "
            "rebalanced after every fit (Li: with probability 0.01; no effect in exact arithmetic). ≥3-D tensors "
            "are flattened to (shape[0], prod(rest)); vectors have one (right) factor. Decoupled weight decay is "
            "an addition (default 0). Whitening has no damping in this form: a dense factor fitted to nearly "
            "rank-1 gradient statistics (deterministic low-dimensional problems, e.g. Rosenbrock with "
            "preconditioner_max_skew=inf) can blow up; the default skew 1.0 keeps vectors diagonal."
        ),
        conventions=(
            R.Convention(
                point="which Kron preconditioner fit",
                paper="—",
                elsewhere='Li\'s psgd_torch: default `dQ="QE"` now; `"EQ"` (triangular Q, random probe) is the '
                "form kron_torch, HeavyBall and pytorch_optimizer adapted",
                fixed='`dQ="EQ"`',
            ),
        ),
    )
)
