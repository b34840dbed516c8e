"""AdamW with Subset-Norm step sizes and Subspace-Momentum.

Nguyen & Nguyen (2024/2025), *Efficient Adaptive Optimization via Subset-Norm and Subspace-Momentum: Fast,
Memory-Reduced Training with Convergence Guarantees* (ICML 2025: *Lean and Mean Adaptive Optimization via Subset-Norm
and Subspace-Momentum with Convergence Guarantees*), arXiv:2411.07120; authors' code: github.com/timmytonga/sn-sm
(``GenericOptim``, ``subset_norm.py``, ``subspace_momentum.py``) and github.com/timmytonga/adam-subset-norm.

**Subset-Norm (SN)** shares one adaptive step size per subset S_i of coordinates: the second moment is an EMA of the
subset's squared norm (a sum, not a mean),

    v_i ← β2 v_i + (1 − β2) Σ_{j∈S_i} g_j²,     θ_j ← θ_j − η · m̂_j / (√v̂_{i(j)} + eps),

which stores one number per subset instead of one per coordinate (O(√d) for a square matrix). Grouping
(``subset_size``): ``None`` (default) is the paper's heuristic for matrices (``ndim ≥ 2``, seen as shape[0] × rest):
the subsets are the rows when m ≥ n and the columns otherwise, i.e. subsets of size min(m, n), max(m, n) numbers of
state; vectors keep Adam's coordinate-wise v. An integer k flattens every parameter into contiguous subsets of size
k' = the largest divisor of numel that is ≤ k (the code's ``closest_smaller_divisor_of_n_to_k``; k ≥ numel gives
one subset, AdaGrad-Norm-like per tensor).

**Subspace-Momentum (SM)**, with ``rank=r``: for a matrix, P = top-r singular vectors of the gradient (GaLore's
projector, :mod:`optimlab.optim.projectors.svd`, same side, refreshed every ``update_proj_gap`` steps); momentum is
kept only for Pᵀg and plain SGD runs in the orthogonal complement:

    m ← β1 m + (1 − β1) Pᵀg,   numerator = P m̂ + (g − P Pᵀ g)

and the numerator is divided by the (subset-norm or coordinate) denominator. On a refresh the momentum is reset to
zero (the authors' rule). Parameters without SM (vectors, rank ≥ min(m, n)) keep full momentum; a parameter with
neither SN nor SM is plain AdamW (``adam_update_``).

Conventions and deviations: bias correction divides the momentum only (m̂ = m/(1 − β1ᵗ)); the authors' code
multiplies the whole numerator, the SGD part included, by 1/(1 − β1ᵗ) (a 10× larger orthogonal step at t = 1 with
β1 = 0.9), which the paper's update does not have. eps is added to √v̂ (torch's AdamW placement; the code adds it to
√v with √(1 − β2ᵗ) folded into the step size). Weight decay is decoupled and applied before the step (the code:
after). The code's momentum reset keeps using the stale momentum for the refresh step itself (it rebinds the state
entry after taking a reference); here the momentum is zero from the refresh step on. β2 = 1 (AdaGrad accumulation)
is not offered (β2 < 1).
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from .. import registry as R
from . import _kernels as K
from . import projectors as PJ
from ._layout import LAYOUT, PerParamLayout
from ._rules import BETA, OneOf, Range, Tuple
from .adam import adam_update_


def largest_divisor_at_most(n: int, k: int) -> int:
    """The largest divisor of n that is ≤ k (n when k ≥ n)."""
    for i in range(min(k, n), 0, -1):
        if n % i == 0:
            return i
    return 1


def subset_shape(shape: tuple[int, ...], subset_size: int | None) -> tuple[int, int] | None:
    """Shape of the subset-norm second moment of a parameter (None: coordinate-wise). (a, 1): rows of the gradient
    viewed as a × (numel/a); (1, b): columns of the gradient viewed as (numel/b) × b."""
    numel = math.prod(shape)
    if subset_size is None:
        if len(shape) < 2:
            return None
        m = shape[0]
        n = numel // m
        return (m, 1) if m >= n else (1, n)
    k = largest_divisor_at_most(numel, subset_size)
    return (numel // k, 1)


def momentum_rank(shape: tuple[int, ...], rank: int | None, fraction: float | None = None) -> int | None:
    """The subspace-momentum rank of a parameter of this shape (``fraction``·min(m, n) when given), or None."""
    if rank is None or len(shape) < 2:
        return None
    d, _ = PJ.frame_dims(tuple(shape))
    r = rank if fraction is None else max(1, int(d * fraction))
    return r if r < d else None


def subset_norm_update_(
    p: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    projector: Tensor | None = None,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    beta1: K.Scalar,
    beta2: K.Scalar,
    eps: K.Scalar,
    weight_decay: K.Scalar,
    update_proj_gap: K.Scalar = 200,
) -> None:
    """One AdamW-SN(-SM) step on one tensor. The layout is read from the state shapes: ``exp_avg_sq`` shaped like
    ``grad`` is coordinate-wise, (a, 1)/(1, b) is subset-norm over rows/columns; ``projector`` given means
    subspace momentum (``exp_avg`` is then r × k)."""
    coordinate = exp_avg_sq.shape == grad.shape
    if projector is None and coordinate:
        adam_update_(
            p,
            grad,
            exp_avg,
            exp_avg_sq,
            step=step,
            lr=lr,
            beta1=beta1,
            beta2=beta2,
            eps=eps,
            weight_decay=weight_decay,
            decoupled=True,
        )
        return
    bc1 = K.bias_correction(beta1, step)
    if projector is None:
        K.ema_(exp_avg, grad, beta1)
        numer = exp_avg / bc1
    else:
        frame = PJ.Frame.of(grad)
        hp = {"update_proj_gap": update_proj_gap, "reproject": "reset"}
        PJ.SVD.refresh_(frame, exp_avg, None, [projector], step=step, hp=hp)
        X = frame.X
        low = projector.t() @ X
        K.ema_(exp_avg, low, beta1)
        numer_x = projector @ (exp_avg / bc1) + (X - projector @ low)
        numer = (numer_x if frame.left else numer_x.t()).reshape(grad.shape)
    sqrt_bc2 = K.sqrt(K.bias_correction(beta2, step))
    if coordinate:
        K.ema_sq_(exp_avg_sq, grad, beta2)
        update = numer / (exp_avg_sq.sqrt() / sqrt_bc2 + eps)
    else:
        rows = exp_avg_sq.shape[1] == 1
        g2 = grad.reshape(exp_avg_sq.shape[0], -1) if rows else grad.reshape(-1, exp_avg_sq.shape[1])
        K.ema_(exp_avg_sq, g2.square().sum(dim=1 if rows else 0, keepdim=True), beta2)
        denom = exp_avg_sq.sqrt() / sqrt_bc2 + eps
        update = (numer.reshape(g2.shape) / denom).reshape(grad.shape)
    K.decoupled_decay_(p, lr, weight_decay)
    K.add_scaled_(p, update, -lr)


class AdamWSN(PerParamLayout):
    """AdamW with Subset-Norm adaptive step sizes, optionally with Subspace-Momentum (Nguyen & Nguyen, 2024).

    Args:
        lr, betas, eps, weight_decay: as AdamW (decoupled decay; defaults of the authors' ``GenericOptim``).
        subset_norm: share the second moment within subsets (``False``: Adam's coordinate-wise v).
        subset_size: ``None`` for the paper's heuristic (rows/columns of matrices, coordinate-wise vectors) or an
            integer k (contiguous subsets of the largest divisor of numel ≤ k, for every parameter).
        rank: subspace-momentum rank r (``None``: full momentum, i.e. SN alone); ``rank_fraction`` (with a rank
            set) replaces it by ⌊fraction·min(m, n)⌋ per matrix.
        update_proj_gap: refresh period T of the momentum subspace.
    """

    shard_local = False  # sharded parameters: gather, update the full tensor, keep the shard

    hyperparameters = {
        "lr": Range(0.0),
        "betas": Tuple(2, BETA),
        "eps": Range(0.0),
        "weight_decay": Range(0.0),
        "subset_norm": OneOf((True, False)),
        "subset_size": Range(1, integer=True, optional=True),
        "rank": Range(1, integer=True, optional=True),
        "rank_fraction": Range(0.0, 1.0, low_open=True, optional=True),
        "update_proj_gap": Range(1, integer=True),
    }
    supports_complex = False

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        subset_norm: bool = True,
        subset_size: int | None = None,
        rank: int | None = None,
        rank_fraction: float | None = None,
        update_proj_gap: int = 200,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            subset_norm=subset_norm,
            subset_size=subset_size,
            rank=rank,
            rank_fraction=rank_fraction,
            update_proj_gap=update_proj_gap,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    def layout(self, p: Tensor, group: dict[str, Any]) -> tuple[bool, bool]:
        """(subspace momentum, subset norm) of this parameter."""
        state = self.state.get(p)
        if state:  # fixed once the state exists
            return "projector" in state, state["exp_avg_sq"].shape != p.shape
        shape = tuple(p.shape)
        sn = group["subset_norm"] and subset_shape(shape, group["subset_size"]) is not None
        return momentum_rank(shape, group["rank"], group["rank_fraction"]) is not None, sn

    def layout_state_keys(self, layout: tuple[bool, bool], group: dict[str, Any]) -> tuple[str, ...]:
        sm, _ = layout
        return ("exp_avg", "exp_avg_sq", "projector") if sm else ("exp_avg", "exp_avg_sq")

    def init_state(self, p: Tensor, group: dict[str, Any]) -> list[Tensor]:
        sm, sn = group[LAYOUT]
        shape = tuple(p.shape)
        v = p.new_zeros(subset_shape(shape, group["subset_size"])) if sn else p.new_zeros(shape)
        if not sm:
            return [p.new_zeros(shape), v]
        d, k = PJ.frame_dims(shape)
        r = momentum_rank(shape, group["rank"], group["rank_fraction"])
        return [p.new_zeros((r, k)), v, p.new_zeros((d, r))]

    update = staticmethod(subset_norm_update_)


class AdamWSNSM(AdamWSN):
    """AdamW with Subset-Norm step sizes and Subspace-Momentum of rank ``rank`` (default 128), the paper's AdamSNSM
    (Nguyen & Nguyen, 2024). ``subset_norm=False`` gives Subspace-Momentum alone. See :class:`AdamWSN`."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, *, rank=128, **kw):
        super().__init__(params, lr, betas, eps, weight_decay, rank=rank, **kw)


def subset_norm_state_bytes(shape, dtype, hp) -> int:
    """m (numel, or r·k with subspace momentum) + the projector d·r + v (one per subset, or numel) + step."""
    shape = tuple(shape)
    numel = math.prod(shape)
    item = R.compute_dtype(dtype).itemsize
    r = momentum_rank(shape, hp["rank"], hp.get("rank_fraction"))
    if r is None:
        m = numel
    else:
        d, k = PJ.frame_dims(shape)
        m = r * k + d * r
    sub = subset_shape(shape, hp["subset_size"]) if hp["subset_norm"] else None
    v = numel if sub is None else math.prod(sub)
    return (m + v) * item + 4


_PAPER = R.Paper(
    "Efficient Adaptive Optimization via Subset-Norm and Subspace-Momentum: Fast, Memory-Reduced Training with "
    "Convergence Guarantees",
    "Nguyen, Nguyen",
    2024,
    "2411.07120",
    "#31",
)
_SPACE = {
    "lr": R.LogUniform(1e-4, 1e-1),
    "beta1": R.OneMinusLogUniform(0.5, 0.99),
    "beta2": R.OneMinusLogUniform(0.9, 0.9999),
    "weight_decay": R.LogUniform(1e-6, 1.0),
}
_NOTES = (
    "Defaults of the authors' GenericOptim (lr 1e-3, betas 0.9/0.999, eps 1e-6, wd 0); the README advises an lr "
    "about 10x AdamW's. Bias correction on the momentum only (the code also scales the SGD part by 1/(1-β1ᵗ)); "
    "eps on √v̂ and decay before the step (torch AdamW placement)."
)

# state_tensors (the catalogue's "state/param" column): fp32-equivalent parameter-sized tensors for a 1024 × 1024
# fp32 matrix at the defaults; the exact bytes for any shape come from state_formula.
R.register(
    R.AlgorithmSpec(
        name="adamw_sn",
        cls=AdamWSN,
        family="memory",
        paper=_PAPER,
        summary="AdamW whose second moment is shared per subset (rows/columns): v_i = EMA of Σ_{j∈S_i} g_j²",
        hparams="lr betas eps weight_decay subset_norm subset_size rank rank_fraction update_proj_gap",
        search_space=_SPACE,
        state_tensors=1.001,
        state_formula=subset_norm_state_bytes,
        notes=_NOTES,
    )
)

R.register(
    R.AlgorithmSpec(
        name="adamw_snsm",
        cls=AdamWSNSM,
        family="memory",
        paper=_PAPER,
        summary="Subset-Norm AdamW with momentum kept in a rank-r SVD subspace and SGD in its complement",
        hparams="lr betas eps weight_decay subset_norm subset_size rank rank_fraction update_proj_gap",
        paper_defaults=dict(subset_norm=True, subset_size=None, rank_fraction=None, update_proj_gap=200),
        search_space=_SPACE,
        state_tensors=0.251,
        state_formula=subset_norm_state_bytes,
        notes=_NOTES
        + " Momentum subspace: GaLore's SVD projector, refreshed every T steps, momentum reset on refresh.",
    )
)
