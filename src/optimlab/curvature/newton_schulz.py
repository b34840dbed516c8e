"""Newton–Schulz orthogonalization: G = U Σ Vᵀ ↦ ≈ U Vᵀ with matrix products only (no SVD).

Used by Muon (Jordan et al. 2024, *Muon: An optimizer for hidden layers in neural networks*,
https://kellerjordan.github.io/posts/muon/; reference code github.com/KellerJordan/Muon), Scion's spectral LMO
and the non-Euclidean trust-region family. After normalizing X₀ = G/(‖G‖_F + eps) (so every singular value is
≤ 1), each step applies an odd polynomial to the singular values, leaving U and V alone:

    A = X Xᵀ,   X ← a X + (b A + c A²) X        i.e.  σ ← p(σ) = a σ + b σ³ + c σ⁵.

The matrix is transposed first when it has more rows than columns, so A is the smaller Gram matrix.

Coefficient sets (``coefficients=``):

* ``"muon"`` (= ``"quintic"`` = ``"torch"``): (a, b, c) = (3.4445, −4.7750, 2.0315), 5 steps. Keller Jordan's
  reference ``zeropower_via_newtonschulz5`` (verified against KellerJordan/Muon ``muon.py``), and the same
  constants and step count as ``torch.optim.Muon`` (torch 2.13 ``torch/optim/_muon.py``: ``DEFAULT_A/B/C``,
  ``DEFAULT_NS_STEPS = 5``, ``EPS = 1e-7``). The slope a at zero is pushed high for speed, so the iteration
  does **not** converge to 1: with 5 steps and exact arithmetic, see :data:`QUINTIC_BAND` and
  :data:`QUINTIC_MAX` below. (KJ's docstring describes the output as U S' Vᵀ with S'_ii ≈ Uniform(0.5, 1.5);
  the computed band is narrower.)
* ``"cubic"``: (1.5, −0.5, 0), the classical Newton–Schulz iteration for the polar factor (Kovarik 1970;
  Björck & Bowie 1971; Higham, *Functions of Matrices*, §8.3). It converges to exactly 1 for σ ∈ (0, √3),
  linearly (×1.5 per step) while σ is small, so it needs more steps: default 15.
* any ``(a, b, c)`` tuple (``steps`` required).

``torch.optim.Muon`` and KJ differ only in the eps: KJ divides by ``‖X‖_F + eps``, torch by
``max(‖X‖_F, eps)`` (``eps_mode="add"`` / ``"clamp"``). Both compute in bfloat16; here ``dtype`` selects the
compute precision (``torch.bfloat16`` default, as the references; ``torch.float32`` or ``torch.float64`` for an
exact-arithmetic path). The products use ``addmm``/``baddbmm`` in torch's order, so ``newton_schulz(G,
eps_mode="clamp")`` reproduces ``torch.optim.Muon``'s orthogonalization bit for bit on a 2-D input.

Singular-value band of the quintic (5 steps, exact arithmetic, s = σ(G)/‖G‖_F ∈ (0, 1]): every output singular
value is ≤ :data:`QUINTIC_MAX` = 1.2024 (the maximum of p on [0, 1.21]); for s ≥ 1e-2 it lies in
:data:`QUINTIC_BAND` = [0.6818, 1.1344] (the interval p maps into itself; its ends are p's local minimum at
σ ≈ 1.050 and p(0.6818)). Smaller s leave the iteration below the band (σ_out ≈ 3.4445⁵·s ≈ 487 s for tiny s).
bfloat16 rounding widens the band by a few percent (tests use [0.6818 − 0.05, 1.1344 + 0.05]).

On CPUs where torch's oneDNN bf16 matmul is unsafe, set ``ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16`` before torch is
imported, or pass ``dtype=torch.float32``.
"""

from __future__ import annotations

import torch
from torch import Tensor

QUINTIC_MUON = (3.4445, -4.7750, 2.0315)
CUBIC = (1.5, -0.5, 0.0)

#: named coefficient sets and their default step counts
COEFFICIENTS: dict[str, tuple[float, float, float]] = {
    "muon": QUINTIC_MUON,
    "quintic": QUINTIC_MUON,
    "torch": QUINTIC_MUON,
    "cubic": CUBIC,
}
DEFAULT_STEPS: dict[str, int] = {"muon": 5, "quintic": 5, "torch": 5, "cubic": 15}

#: quintic, 5 steps: output singular values lie here when σ(G)/‖G‖_F ≥ QUINTIC_BAND_THRESHOLD (exact arithmetic)
QUINTIC_BAND = (0.6818, 1.1344)
QUINTIC_BAND_THRESHOLD = 1e-2
#: quintic: upper bound of every output singular value, for any input and any number of steps ≥ 1
QUINTIC_MAX = 1.2024

EPS_MODES = ("add", "clamp")


def _resolve(coefficients: str | tuple[float, float, float], steps: int | None) -> tuple[tuple[float, ...], int]:
    if isinstance(coefficients, str):
        if coefficients not in COEFFICIENTS:
            raise ValueError(f"coefficients must be one of {sorted(COEFFICIENTS)} or an (a, b, c) tuple")
        coef = COEFFICIENTS[coefficients]
        steps = DEFAULT_STEPS[coefficients] if steps is None else steps
    else:
        coef = tuple(float(x) for x in coefficients)
        if len(coef) != 3:
            raise ValueError(f"coefficients must have three entries (a, b, c), got {coefficients!r}")
        if steps is None:
            raise ValueError("steps is required with custom coefficients")
    if int(steps) < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    return coef, int(steps)


def newton_schulz(
    G: Tensor,
    *,
    steps: int | None = None,
    coefficients: str | tuple[float, float, float] = "muon",
    eps: float = 1e-7,
    eps_mode: str = "add",
    dtype: torch.dtype = torch.bfloat16,
    out_dtype: torch.dtype | None = None,
) -> Tensor:
    """Approximate orthogonalization U Vᵀ of ``G`` (…, m, n); leading dims are a batch of matrices.

    Args:
        G: a matrix or a batch of matrices (each normalized by its own Frobenius norm).
        steps: iterations; default from the coefficient set (5 quintic, 15 cubic).
        coefficients: ``"muon"`` / ``"quintic"`` / ``"torch"``, ``"cubic"`` or an ``(a, b, c)`` tuple.
        eps: guards the normalization of a zero matrix.
        eps_mode: ``"add"`` divides by ‖G‖_F + eps (Keller Jordan), ``"clamp"`` by max(‖G‖_F, eps) (torch).
        dtype: compute dtype (bfloat16 as the references, float32/float64 for an exact-arithmetic path).
        out_dtype: dtype of the result; default ``G.dtype``.

    Returns:
        A tensor of ``G``'s shape whose singular values are p^steps(σ/‖G‖_F) (see the module docstring).
    """
    if G.ndim < 2:
        raise ValueError(f"newton_schulz needs a matrix or a batch of matrices, got shape {tuple(G.shape)}")
    if eps_mode not in EPS_MODES:
        raise ValueError(f"eps_mode must be one of {EPS_MODES}, got {eps_mode!r}")
    (a, b, c), steps = _resolve(coefficients, steps)
    out_dtype = G.dtype if out_dtype is None else out_dtype
    shape = G.shape
    X = G.to(dtype)
    tall = G.size(-2) > G.size(-1)
    if tall:
        X = X.mT
    batched = X.ndim > 2
    if batched:
        norm = X.norm(dim=(-2, -1), keepdim=True)
    else:
        norm = X.norm()
    X = X / (norm + eps) if eps_mode == "add" else X / norm.clamp(min=eps)
    if batched:
        X = X.reshape(-1, *X.shape[-2:])
        mm = torch.baddbmm
    else:
        mm = torch.addmm
    for _ in range(steps):
        A = X @ X.mT
        if c != 0.0:
            B = mm(A, A, A, beta=b, alpha=c)  # b A + c A²
            X = mm(X, B, X, beta=a)  # a X + B X
        else:
            X = mm(X, A, X, beta=a, alpha=b)  # a X + b A X
    if tall:
        X = X.mT
    return X.reshape(shape).to(out_dtype)


def newton_schulz_flattened(G: Tensor, **kwargs) -> Tensor:
    """:func:`newton_schulz` of ``G`` viewed as one matrix ``(G.shape[0], -1)``, reshaped back.

    For convolution kernels ``(out, in, kh, kw)`` this orthogonalizes the ``out × (in·kh·kw)`` matrix, as the
    Muon reference does for conv filters; a 2-D input is unchanged by the view.
    """
    if G.ndim < 2:
        raise ValueError(f"newton_schulz_flattened needs at least 2 dims, got shape {tuple(G.shape)}")
    return newton_schulz(G.reshape(G.shape[0], -1), **kwargs).reshape(G.shape)


def polar_factor(G: Tensor) -> Tensor:
    """The exact orthogonal polar factor U Vᵀ of ``G`` (…, m, n) by SVD (reference for the iterations above;
    singular directions of zero singular values are arbitrary)."""
    U, _, Vh = torch.linalg.svd(G, full_matrices=False)
    return U @ Vh
