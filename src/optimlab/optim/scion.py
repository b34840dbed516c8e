"""Scion: stochastic conditional gradient with per-layer norm-ball LMOs (constrained and unconstrained).

Pethick, Xie, Antonakopoulos, Zhu, Silveti-Falls, Cevher (2025), *Training Deep Learning Models with
Norm-Constrained LMOs*, arXiv:2502.07529 (ICML 2025); authors' code: github.com/LIONS-EPFL/scion ``scion.py``.

With momentum α ∈ (0, 1] ("one minus the usual momentum"), radius ρ (``scale``) and step γ (``lr``)::

    d ← (1 − α)·d + α·g                                      (gradient average)
    Scion  (constrained, SCG, Alg. 2):    x ← (1 − γ)·x − γ·ρ·lmo(d)
    uScion (unconstrained, uSCG, Alg. 1): x ←           x − γ·ρ·lmo(d)

where lmo(d) = argmax_{‖u‖ ≤ 1} ⟨d, u⟩ for the group's norm (the paper's lmo is −ρ times this: the update moves
against it). The constrained form keeps x in the ρ-ball (it is the paper's principled weight decay); the
unconstrained form has no decay. Norms (group option ``norm``; d viewed as a d_out × d_in matrix,
``(shape[0], prod(shape[1:]))`` for ≥3-D tensors), following the paper's Table 2 / the authors' ``norm_dict``:

========================  ==========================================  =================================================
``norm``                  lmo(d)                                      authors' code
========================  ==========================================  =================================================
``"spectral"``            √(d_out/d_in)·UVᵀ (Newton–Schulz)           ``Spectral()`` (RMS→RMS operator norm)
``"spectral_max"``        max(1, √(d_out/d_in))·UVᵀ                   ``Spectral(max=True)`` (input layers)
``"spectral_conv"``       UVᵀ of (out, in·k…) · √(out/in)/k^(n−2)     ``SpectralConv()`` (3-D: /k, 4-D: /k²)
``"sign"``                sign(d)/d_in                                ``Sign()`` (ball |a_ij| ≤ 1/d_in; output layers)
``"sign_unnormalized"``   sign(d)                                     ``Sign(normalized=False)`` (ℓ∞ ball, Signum)
``"col"``                 √d_out · d_:j/‖d_:j‖ per column             ``ColNorm()`` (1→RMS; embeddings)
``"col_normalized"``      the same divided by d_in                    ``ColNorm(normalized=True)``
``"row"``                 d_i:/(‖d_i:‖·√d_in) per row                 ``RowNorm()`` (RMS→∞)
``"row_unnormalized"``    d_i:/‖d_i:‖                                 ``RowNorm(normalized=False)``
``"bias_rms"``            d/RMS(d)                                    ``BiasRMS()`` (biases, gains)
``"euclidean"``           d/‖d‖_F                                     paper Table 1 (normalized SGD)
``"auto"``                ≥3-D: spectral_conv, 2-D: spectral,         ``Auto()``
                          ≤1-D: bias_rms
========================  ==========================================  =================================================

``transpose=True`` applies col/row norms to dᵀ (embeddings stored as (vocab, dim), as ``ColNorm(transpose=True)``)
and takes the spectral and sign scales from dᵀ's shape (weights stored (in, out), as Hugging Face's ``Conv1D``).
Column/row/RMS normalizations add ``eps`` (1e-8 as the authors' code) to the norm; Newton–Schulz is KJ's quintic
(5 steps, ‖·‖_F + 1e-7) in ``ns_dtype`` (bfloat16 as the authors' code, float64 for the parity tests).

Defaults are the paper's nanoGPT setting (README / App. E): lr γ = 2⁻¹², momentum α = 0.1, radius ρ = 50,
constrained; the authors' example multiplies ρ by 60 for the Sign-normed output layer
(:func:`optimlab.routing.matrix_param_groups` builds such groups). "ScionLight" (the authors' variant that
keeps d in ``p.grad``) is not provided: it modifies the user's gradient in place.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from ..curvature.newton_schulz import newton_schulz
from . import _kernels as K
from ._base import Optimizer
from ._compiled import batched
from ._rules import OneOf, Range

NORMS = (
    "auto",
    "spectral",
    "spectral_max",
    "spectral_conv",
    "sign",
    "sign_unnormalized",
    "col",
    "col_normalized",
    "row",
    "row_unnormalized",
    "bias_rms",
    "euclidean",
)
#: norms defined for any shape; the others need a ≥2-D parameter
ANY_SHAPE = ("auto", "bias_rms", "euclidean", "sign_unnormalized")
NS_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}
NS_EPS = 1e-7
#: the norms whose LMO is Newton–Schulz (batched over same-shape parameters: one bucket per shape)
SPECTRAL = ("spectral", "spectral_max", "spectral_conv")


def resolve_norm(norm: str, ndim: int) -> str:
    """``"auto"`` → the authors' choice by shape; other names unchanged."""
    if norm != "auto":
        return norm
    if ndim >= 3:
        return "spectral_conv"
    return "spectral" if ndim == 2 else "bias_rms"


def lmo(d: Tensor, norm: str, *, transpose: bool = False, eps: float = 1e-8, ns_dtype: str = "bfloat16") -> Tensor:
    """The unit-ball maximizer argmax_{‖u‖≤1} ⟨d, u⟩ of the named norm (table in the module docstring)."""
    norm = resolve_norm(norm, d.ndim)
    if norm == "bias_rms":
        return d / (d.square().mean().sqrt() + eps)
    if norm == "euclidean":
        return d / (torch.linalg.vector_norm(d) + eps)
    if norm == "sign_unnormalized":
        return torch.sign(d)
    rows, cols = d.shape[0], math.prod(d.shape[1:])
    m = d.reshape(rows, cols)
    if norm in SPECTRAL:
        return spectral_lmos([d], norm, transpose=transpose, ns_dtype=ns_dtype)[0]
    if norm == "sign":
        return torch.sign(m).view(d.shape) / (rows if transpose else cols)
    if transpose:
        m = m.T
    if norm in ("col", "col_normalized"):
        rms = torch.linalg.vector_norm(m, dim=0, keepdim=True) / math.sqrt(m.shape[0])
        if norm == "col_normalized":
            rms = rms * m.shape[1]
    else:  # row, row_unnormalized
        rms = torch.linalg.vector_norm(m, dim=1, keepdim=True)
        if norm == "row":
            rms = rms * math.sqrt(m.shape[1])
    out = m / (rms + eps)
    return (out.T if transpose else out).reshape(d.shape)


def spectral_lmos(ds: list[Tensor], norm: str, *, transpose: bool, ns_dtype: str) -> list[Tensor]:
    """The spectral LMOs of same-shape tensors with ONE (batched) Newton–Schulz: UVᵀ of each (out, in·k…) matrix,
    each normalized by its own norm (the same bits as one call per matrix with bf16 products), times the norm's
    factor: √(d_out/d_in) (of the stored orientation), max(1, √(d_out/d_in)), or SpectralConv's."""
    shape = tuple(ds[0].shape)
    rows, cols = shape[0], math.prod(shape[1:])
    m = ds[0].reshape(rows, cols) if len(ds) == 1 else torch.stack([d.reshape(rows, cols) for d in ds])
    u = newton_schulz(m, steps=5, coefficients="muon", eps=NS_EPS, eps_mode="add", dtype=NS_DTYPES[ns_dtype])
    u = u.to(ds[0].dtype).reshape(len(ds), *shape)
    if norm == "spectral_conv":
        if len(shape) < 3:
            return list(u)
        factor = (shape[0] / shape[1]) ** 0.5 / shape[2] ** (len(shape) - 2)  # (out, in, k, ..., k), as SpectralConv
    else:
        factor = (cols / rows if transpose else rows / cols) ** 0.5  # √(d_out/d_in) of the stored orientation
        factor = max(1.0, factor) if norm == "spectral_max" else factor
    return [ui * factor for ui in u]


def scion_bucket_update_(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[list[Tensor]],
    *,
    steps: list[K.Scalar],
    lr: K.Scalar,
    momentum: K.Scalar,
    scale: K.Scalar,
    norm: str,
    unconstrained: bool,
    transpose: bool,
    eps: float,
    ns_dtype: str,
) -> None:
    """d ← (1 − α)d + αg; x ← (1 − γ)x − γρ·lmo(d) (constrained) or x ← x − γρ·lmo(d) (unconstrained), for a
    bucket of parameters: same-shape ones with a spectral norm (the ``("spectral", *shape)`` layout) get their
    LMOs from ONE batched Newton–Schulz (:func:`spectral_lmos`), with the bits of one call each."""
    for grad, (d,) in zip(grads, states):
        if isinstance(momentum, Tensor):
            d.mul_(1 - momentum).add_(grad * momentum)
        else:
            d.lerp_(grad, momentum)
    ds = [d for (d,) in states]
    resolved = resolve_norm(norm, ds[0].ndim)
    if resolved in SPECTRAL:
        lmos = spectral_lmos(ds, resolved, transpose=transpose, ns_dtype=ns_dtype)
    else:
        lmos = [lmo(d, norm, transpose=transpose, eps=eps, ns_dtype=ns_dtype) for d in ds]
    for p, u in zip(params, lmos):
        if not unconstrained:
            p.mul_(1 - lr)
        K.add_scaled_(p, u * scale, -lr)


@batched(scion_bucket_update_)
def scion_update_(p: Tensor, grad: Tensor, d: Tensor, *, step: K.Scalar, **hyper: Any) -> None:
    """d ← (1 − α)d + αg; x ← (1 − γ)x − γρ·lmo(d) (constrained) or x ← x − γρ·lmo(d) (unconstrained):
    :func:`scion_bucket_update_` of one tensor (its keyword arguments)."""
    scion_bucket_update_([p], [grad], [[d]], steps=[step], **hyper)


class Scion(Optimizer):
    """Scion / uScion (Pethick et al. 2025): conditional-gradient steps with a norm-ball LMO chosen per group.

    Group options: ``norm`` (see the module table), ``scale`` (radius ρ), ``transpose`` (d stored as dᵀ),
    ``unconstrained``, and every hyperparameter. ``momentum`` is α, the weight of the new gradient (0.1 ≈ the
    usual momentum 0.9); α = 1 uses the gradient itself.
    """

    shard_local = False  # sharded parameters: gather, update the full tensor, keep the shard

    supports_complex = False
    hyperparameters = {
        "lr": Range(0.0, 1.0),
        "momentum": Range(0.0, 1.0, low_open=True),
        "scale": Range(0.0),
        "norm": OneOf(NORMS),
        "unconstrained": OneOf((True, False)),
        "transpose": OneOf((True, False)),
        "eps": Range(0.0),
        "ns_dtype": OneOf(tuple(NS_DTYPES)),
    }
    state_names = ("momentum_buffer",)

    def __init__(
        self,
        params,
        lr: float = 2**-12,
        momentum: float = 0.1,
        scale: float = 50.0,
        norm: str = "auto",
        unconstrained: bool = False,
        *,
        transpose: bool = False,
        eps: float = 1e-8,
        ns_dtype: str = "bfloat16",
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            scale=scale,
            norm=norm,
            unconstrained=unconstrained,
            transpose=transpose,
            eps=eps,
            ns_dtype=ns_dtype,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        if group["norm"] not in ANY_SHAPE:
            for p in group["params"]:
                if p.ndim < 2:
                    raise ValueError(f"norm={group['norm']!r} needs ≥ 2-D parameters, got shape {tuple(p.shape)}")

    update = staticmethod(scion_update_)

    def layout(self, p: Tensor, group: dict[str, Any]) -> tuple | None:
        """``("spectral", *shape)`` for the parameters whose LMO is Newton–Schulz (a bucket, and so one batched
        Newton–Schulz, per parameter shape), ``None`` for the others."""
        return ("spectral", *p.shape) if resolve_norm(group["norm"], p.ndim) in SPECTRAL else None


R.register(
    R.AlgorithmSpec(
        name="scion",
        cls=Scion,
        family="norm_based",
        paper=R.Paper(
            "Training Deep Learning Models with Norm-Constrained LMOs",
            "Pethick, Xie, Antonakopoulos, Zhu, Silveti-Falls, Cevher",
            2025,
            "2502.07529",
            "#92",
        ),
        summary="gradient average d, step along the LMO of a per-layer norm ball (spectral/sign/col/row/RMS)",
        hparams="lr momentum scale norm unconstrained",
        search_space={
            "lr": R.LogUniform(1e-5, 1e-1),
            "momentum": R.LogUniform(0.01, 1.0),
            "scale": R.LogUniform(1.0, 1e3),
        },
        state_tensors=1,
        notes=(
            "Defaults: the paper's nanoGPT setting (lr 2^-12, momentum α = 0.1 weighting the NEW gradient, radius "
            "50, constrained SCG x ← (1−γ)x − γρ·lmo(d)); the authors' code defaults are lr 1e-3, momentum 1, "
            "radius 1. norm='auto' is the authors' Auto (spectral for 2-D, SpectralConv for ≥3-D, BiasRMS for "
            "≤1-D); set per group: 'sign' for output layers (the authors use radius ×60 there), 'col' with "
            "transpose=True for embeddings. unconstrained=True is uScion (no shrinkage)."
        ),
        conventions=(
            R.Convention(
                point="what `momentum` means",
                paper="α weights the new gradient: d ← (1 − α)·d + α·g (α = 1: no averaging); nanoGPT runs: α = 0.1",
                elsewhere="the authors' scion.py: the same form, default momentum 1; torch.optim.SGD's momentum μ "
                "weights the old buffer instead (b ← μb + g)",
                fixed="the paper's α: `momentum=0.1` keeps weight 0.9 on the old average",
            ),
            R.Convention(
                point="default radius ρ",
                paper="nanoGPT runs: ρ = 50 (with lr 2⁻¹²)",
                elsewhere="the authors' scion.py: radius 1 (with lr 1e-3) by default",
                switch="scale",
                choices=((50.0, "the paper's nanoGPT setting"), (1.0, "the authors' code default")),
            ),
        ),
    )
)
