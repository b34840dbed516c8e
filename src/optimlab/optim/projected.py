"""Projected Adam: the GaLore family, with pluggable low-rank projectors.

Adam runs on the projected gradient R = Pᵀ G of every matrix parameter; its step goes back to full size as
α·P N (GaLore's Algorithm 2 for Adam, with scale α):

    R_t = P_tᵀ G_t;   m, v ← Adam EMAs of R_t, R_t²;   N_t = m̂/(√v̂ + eps);   W ← W(1 − ηλ) − η·α·P_t N_t

so the moments take 2·r·k numbers instead of 2·m·n (plus the projector's own state). Parameters that are not
projected (1-D, rank ≥ min(m, n), or a group with ``project=False``) get plain AdamW (``adam_update_``, the same
function as :class:`optimlab.AdamW`); the Adam step in the subspace also calls ``adam_update_`` (on a zero
"direction" tensor with lr = 1), so there is no second copy of the Adam math.

Projectors (``projector=``; details, papers and refresh/re-projection rules in :mod:`optimlab.optim.projectors`):

* ``"svd"`` — GaLore (Zhao et al. 2024, arXiv:2403.03507): top-r singular vectors every T steps;
* ``"dct"`` — SVD-free DCT column selection (Modoranu et al. 2025, arXiv:2505.17967), only r indices stored;
* ``"online_pca"`` — Online Subspace Descent (Liang et al. 2024, arXiv:2408.12857): P takes an AdamW step on the
  online-PCA loss every step, its moments are state;
* ``"coap"`` — COAP (Xiao et al. 2025, arXiv:2412.00071): correlation-aware gradient steps on P between warm-started
  randomized SVDs.

Conventions: the shorter side of a matrix is projected (ties: the columns), parameters with ``ndim > 2`` are seen
as ``shape[0] × rest``; the rank is ``rank`` (or ``rank_fraction``·min(m, n) when given) per param group and is
fixed once a parameter has state; weight decay is decoupled and applied to the full weight before the step (as
``torch.optim.AdamW``; the authors' codes decay after the step, a difference of O(η²λ)); eps is added to √v̂ (torch's
placement; the GaLore/COAP codes add it to √v with the bias correction folded into the step size, which differs by
a factor √(1 − β2ᵗ) on eps only). Every projector tensor, index and moment is optimizer state, so checkpoints load
with ``torch.load(weights_only=True)`` and resume bit-exactly (GaLore's own implementation pickles projector objects).
Refreshes are scheduled with :func:`optimlab.optim._layout.when`, so ``compile=True`` compiles them as ``torch.cond``.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .. import registry as R
from . import _kernels as K
from . import projectors as PJ
from ._layout import LAYOUT, PerParamLayout
from ._rules import BETA, OneOf, Range, Tuple
from .adam import adam_update_

DENSE = "dense"


def projection_rank(shape: tuple[int, ...], hp: dict[str, Any]) -> int | None:
    """The rank a parameter of this shape is projected to under these group settings, or None (plain AdamW)."""
    if len(shape) < 2 or not hp.get("project", True):
        return None
    d, _ = PJ.frame_dims(tuple(shape))
    fraction = hp.get("rank_fraction")
    r = hp["rank"] if fraction is None else max(1, int(d * fraction))
    return r if r < d else None


def projected_adamw_update_(
    p: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    *proj_state: Tensor,
    step: K.Scalar,
    lr: K.Scalar,
    beta1: K.Scalar,
    beta2: K.Scalar,
    eps: K.Scalar,
    weight_decay: K.Scalar,
    projector: str,
    update_proj_gap: K.Scalar = 200,
    scale: K.Scalar = 1.0,
    reproject: str = "none",
    dct_norm: str = "l1",
    proj_lr_ratio: K.Scalar = 0.5,
    proj_weight_decay: K.Scalar = 0.01,
    proj_ortho: K.Scalar = 0.0,
    proj_lr: K.Scalar = 0.1,
    reproject_factor: K.Scalar = 5,
) -> None:
    """One projected-Adam step on one tensor; ``projector="dense"`` is plain AdamW (no projector state)."""
    if projector == DENSE:
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
    kind = PJ.projector(projector)
    frame = PJ.Frame.of(grad)
    hp = dict(
        lr=lr,
        update_proj_gap=update_proj_gap,
        reproject=reproject,
        dct_norm=dct_norm,
        proj_lr_ratio=proj_lr_ratio,
        proj_weight_decay=proj_weight_decay,
        proj_ortho=proj_ortho,
        proj_lr=proj_lr,
        reproject_factor=reproject_factor,
    )
    pstate = list(proj_state)
    kind.refresh_(frame, exp_avg, exp_avg_sq, pstate, step=step, hp=hp)
    X = frame.X
    P = kind.basis(X.shape[0], pstate, X.dtype)
    low = P.T @ X
    direction = low.new_zeros(low.shape)  # becomes −m̂/(√v̂ + eps): Adam's step with lr = 1 from zero
    adam_update_(
        direction,
        low,
        exp_avg,
        exp_avg_sq,
        step=step,
        lr=1.0,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        weight_decay=0.0,
        decoupled=True,
    )
    K.decoupled_decay_(p, lr, weight_decay)
    K.add_scaled_(p, frame.to_param(direction, P).reshape(p.shape), lr * scale)
    kind.after_step_(frame, pstate, step=step, hp=hp)


PROJECTED_RULES = {
    "lr": Range(0.0),
    "betas": Tuple(2, BETA),
    "eps": Range(0.0),
    "weight_decay": Range(0.0),
    "projector": OneOf(PJ.KINDS),
    "rank": Range(1, integer=True),
    "rank_fraction": Range(0.0, 1.0, low_open=True, optional=True),
    "project": OneOf((True, False)),
    "update_proj_gap": Range(1, integer=True),
    "scale": Range(0.0, low_open=True),
    "reproject": OneOf(PJ.REPROJECT),
    "dct_norm": OneOf(("l1", "l2")),
    "proj_lr_ratio": Range(0.0),
    "proj_weight_decay": Range(0.0),
    "proj_ortho": Range(0.0),
    "proj_lr": Range(0.0),
    "reproject_factor": Range(1, integer=True),
}

_HYPER_NAMES = (
    "update_proj_gap",
    "scale",
    "reproject",
    "dct_norm",
    "proj_lr_ratio",
    "proj_weight_decay",
    "proj_ortho",
    "proj_lr",
    "reproject_factor",
)


class ProjectedAdamW(PerParamLayout):
    """Adam in a low-rank subspace of each matrix parameter (GaLore family), AdamW elsewhere.

    Args:
        lr, betas, eps, weight_decay: as AdamW (decoupled decay).
        projector: ``"svd"`` (GaLore), ``"dct"``, ``"online_pca"`` (Online Subspace Descent) or ``"coap"``.
        rank: projection rank r (per param group); ``rank_fraction`` overrides it with ⌊fraction·min(m, n)⌋.
        project: ``False`` gives the group plain AdamW.
        update_proj_gap: T, the projector refresh period (COAP: its update interval T_u).
        scale: α, the factor on the projected-back step (GaLore's 0.25).
        reproject: what the moments do when the projector changes: ``"none"``, ``"rotate"``, ``"rotate_sqrt"``,
            ``"reset"`` (see :mod:`optimlab.optim.projectors`).
        dct_norm: ``"l1"``/``"l2"`` column score of the DCT projector.
        proj_lr_ratio, proj_weight_decay, proj_ortho: Online Subspace Descent's projector AdamW (lr ratio to lr,
            decoupled decay) and orthogonality penalty λ.
        proj_lr, reproject_factor: COAP's gradient step on P and the number of updates between recomputations.
    """

    shard_local = False  # sharded parameters: gather, update the full tensor, keep the shard
    guard_every_update = True  # its linear algebra can fail: snapshot, check, restore (Optimizer._apply)

    hyperparameters = PROJECTED_RULES
    supports_complex = False

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        *,
        projector: str = "svd",
        rank: int = 128,
        rank_fraction: float | None = None,
        project: bool = True,
        update_proj_gap: int = 200,
        scale: float = 0.25,
        reproject: str = "none",
        dct_norm: str = "l1",
        proj_lr_ratio: float = 0.5,
        proj_weight_decay: float = 0.01,
        proj_ortho: float = 0.0,
        proj_lr: float = 0.1,
        reproject_factor: int = 5,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            projector=projector,
            rank=rank,
            rank_fraction=rank_fraction,
            project=project,
            update_proj_gap=update_proj_gap,
            scale=scale,
            reproject=reproject,
            dct_norm=dct_norm,
            proj_lr_ratio=proj_lr_ratio,
            proj_weight_decay=proj_weight_decay,
            proj_ortho=proj_ortho,
            proj_lr=proj_lr,
            reproject_factor=reproject_factor,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    def layout(self, p: Tensor, group: dict[str, Any]) -> str:
        state = self.state.get(p)
        if state:  # the layout is fixed once the state exists
            return group["projector"] if "projector" in state or "indices" in state else DENSE
        return DENSE if projection_rank(tuple(p.shape), group) is None else group["projector"]

    def layout_state_keys(self, layout: str, group: dict[str, Any]) -> tuple[str, ...]:
        base = ("exp_avg", "exp_avg_sq")
        return base if layout == DENSE else base + PJ.projector(layout).state_names

    def init_state(self, p: Tensor, group: dict[str, Any]) -> list[Tensor]:
        layout = group[LAYOUT]
        if layout == DENSE:
            return [p.new_zeros(p.shape), p.new_zeros(p.shape)]
        d, k = PJ.frame_dims(tuple(p.shape))
        r = projection_rank(tuple(p.shape), group)
        return [p.new_zeros((r, k)), p.new_zeros((r, k)), *PJ.projector(layout).init(d, k, r, p)]

    update = staticmethod(projected_adamw_update_)

    def hyper(self, group: dict[str, Any]) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        hyper = dict(
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            projector=group[LAYOUT],
        )
        if group[LAYOUT] != DENSE:
            hyper.update({name: group[name] for name in _HYPER_NAMES})
        return hyper


class GaLoreAdamW(ProjectedAdamW):
    """GaLore-Adam (Zhao et al., 2024): Adam on the projection onto the top-r singular vectors of the gradient,
    refreshed every ``update_proj_gap`` steps, step scaled by ``scale`` (paper: r = 128…512, T = 200, α = 0.25,
    lr = 0.01 for LLaMA pre-training). See :class:`ProjectedAdamW` for every argument."""

    def __init__(self, params, lr=1e-2, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, **kw):
        kw = {"projector": "svd", "rank": 128, "update_proj_gap": 200, "scale": 0.25, **kw}
        super().__init__(params, lr, betas, eps, weight_decay, **kw)


class DCTAdamW(ProjectedAdamW):
    """Low-rank AdamW with the SVD-free DCT projector (Modoranu et al., 2025): r columns of a fixed DCT basis
    chosen by ℓ1 alignment with the gradient every ``update_proj_gap`` steps; the moments are rotated into the new
    basis (``reproject="rotate"``). See :class:`ProjectedAdamW`."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, **kw):
        kw = {"projector": "dct", "rank": 128, "update_proj_gap": 200, "scale": 1.0, "reproject": "rotate", **kw}
        super().__init__(params, lr, betas, eps, weight_decay, **kw)


class OnlineSubspaceDescent(ProjectedAdamW):
    """Online Subspace Descent with Adam (Liang et al., 2024): GaLore whose projector follows the gradient by one
    AdamW step per training step on the online-PCA loss instead of a periodic SVD. See :class:`ProjectedAdamW`."""

    def __init__(self, params, lr=1e-2, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, **kw):
        kw = {"projector": "online_pca", "rank": 128, "scale": 0.25, **kw}
        super().__init__(params, lr, betas, eps, weight_decay, **kw)


class COAPAdamW(ProjectedAdamW):
    """COAP-AdamW (Xiao et al., 2025): low-rank AdamW whose projector takes correlation-aware gradient steps every
    ``update_proj_gap`` (T_u = 32) steps and is recomputed by a warm-started randomized SVD every
    ``reproject_factor`` (5) of them. See :class:`ProjectedAdamW`."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, **kw):
        kw = {"projector": "coap", "rank": 128, "update_proj_gap": 32, "reproject_factor": 5, "scale": 1.0, **kw}
        super().__init__(params, lr, betas, eps, weight_decay, **kw)


# ----------------------------------------------------------------------------- registry records
def projected_state_bytes(shape, dtype, hp) -> int:
    """Low-rank moments 2·r·k plus the projector's state (svd/coap: d·r; online_pca: 3·d·r; dct: r int32
    indices), or AdamW's 2·numel for parameters that are not projected; plus the 4-byte step counter."""
    r = projection_rank(tuple(shape), hp)
    if r is None:
        return R.dense_state_bytes(shape, dtype, 2)
    d, k = PJ.frame_dims(tuple(shape))
    item = R.compute_dtype(dtype).itemsize
    proj = {"svd": d * r * item, "coap": d * r * item, "online_pca": 3 * d * r * item, "dct": r * 4}
    return 2 * r * k * item + proj[hp["projector"]] + 4


_SPACE = {
    "lr": R.LogUniform(1e-4, 1e-1),
    "beta1": R.OneMinusLogUniform(0.5, 0.99),
    "beta2": R.OneMinusLogUniform(0.9, 0.9999),
    "weight_decay": R.LogUniform(1e-6, 1.0),
    "scale": R.Choice((0.125, 0.25, 0.5, 1.0)),
}
_COMMON = dict(rank_fraction=None, project=True)

# state_tensors (the catalogue's "state/param" column): fp32-equivalent parameter-sized tensors for a 1024 × 1024
# fp32 matrix at the defaults; the exact bytes for any shape come from state_formula.
#: eps and decay placement of the low-rank Adam step (galore, coap)
EPS_AND_DECAY = R.Convention(
    point="where eps and weight decay enter",
    paper="—",
    elsewhere="the GaLore and COAP codes: eps added to √v with the bias corrections folded into the step size; "
    "decay p ← p − lr·λ·p after the step",
    fixed="torch.optim.AdamW's: eps added to √v̂, decay before the step (differs by √(1 − β2ᵗ) on eps and O(lr²λ))",
)


R.register(
    R.AlgorithmSpec(
        name="galore",
        cls=GaLoreAdamW,
        family="memory",
        paper=R.Paper(
            "GaLore: Memory-Efficient LLM Training by Gradient Low-Rank Projection",
            "Zhao, Zhang, Chen, Wang, Anandkumar, Tian",
            2024,
            "2403.03507",
        ),
        summary="Adam on Pᵀg with P = top-r singular vectors of g every T steps, step α·P·N; AdamW for vectors",
        hparams="lr betas eps weight_decay projector rank update_proj_gap scale reproject rank_fraction project",
        paper_defaults=dict(projector="svd", rank=128, update_proj_gap=200, scale=0.25, reproject="none", **_COMMON),
        search_space=_SPACE,
        state_tensors=0.375,
        state_formula=projected_state_bytes,
        notes=(
            "Paper defaults (LLaMA pre-training): r = 128…512, T = 200, α = 0.25, lr = 0.01. Refresh at steps "
            "1, T+1, … (the code's 0-based iter % T == 0); moments are not re-projected (GaLore's rule). Decay before "
            "the step and eps on √v̂ (torch's AdamW conventions; the authors' code differs by O(η²λ) and √(1−β2ᵗ)·eps)."
        ),
        conventions=(
            R.Convention(
                point="scale α of the projected-back step",
                paper="α = 0.25 in the LLaMA pre-training runs",
                elsewhere="the authors' galore_torch: `GaLoreProjector(scale=1.0)` by default; their C4 scripts pass "
                "`--galore_scale 0.25`",
                switch="scale",
                choices=((0.25, "the paper, the authors' scripts"), (1.0, "galore_torch's GaLoreProjector default")),
            ),
            EPS_AND_DECAY,
        ),
    )
)

R.register(
    R.AlgorithmSpec(
        name="galore_dct",
        cls=DCTAdamW,
        family="memory",
        paper=R.Paper(
            "SVD-Free Low-Rank Adaptive Gradient Optimization for Large Language Models",
            "Modoranu, Safaryan, Schultheis, Ryabinin, Chumachenko, Alistarh",
            2025,
            "2505.17967",
            "#65",
        ),
        summary="low-rank Adam on r DCT columns picked by ℓ1 alignment with g (only r indices stored), moments rotated",
        hparams=(
            "lr betas eps weight_decay projector rank update_proj_gap scale reproject dct_norm rank_fraction project"
        ),
        paper_defaults=dict(
            projector="dct", rank=128, update_proj_gap=200, scale=1.0, reproject="rotate", dct_norm="l1", **_COMMON
        ),
        search_space=_SPACE,
        state_tensors=0.25,
        state_formula=projected_state_bytes,
        notes=(
            "Orthonormal DCT-II basis, ℓ1 column scores (authors' code default), top-r kept best-first; moments "
            "rotated by R = Q_newᵀQ_old on refresh (paper), v through |R v|. Error feedback not provided. The "
            "authors' code refreshes at steps 1, T, 2T; here 1, T+1, … like the rest of the family."
        ),
        conventions=(
            R.Convention(
                point="projector refresh steps (period T)",
                paper="—",
                elsewhere="the authors' code: steps 1, T, 2T, …",
                fixed="steps 1, T + 1, 2T + 1, … like the rest of the GaLore family",
            ),
        ),
    )
)

R.register(
    R.AlgorithmSpec(
        name="online_subspace_descent",
        cls=OnlineSubspaceDescent,
        family="memory",
        paper=R.Paper(
            "Memory-Efficient LLM Training with Online Subspace Descent",
            "Liang, Liu, Chen, Liu",
            2024,
            "2408.12857",
            "#218",
        ),
        summary="GaLore whose projector takes an AdamW step on the online-PCA loss ‖PPᵀĝ − ĝ‖² every step",
        hparams=(
            "lr betas eps weight_decay projector rank scale reproject proj_lr_ratio proj_weight_decay proj_ortho "
            "rank_fraction project"
        ),
        paper_defaults=dict(
            projector="online_pca",
            rank=128,
            scale=0.25,
            reproject="none",
            proj_lr_ratio=0.5,
            proj_weight_decay=0.01,
            proj_ortho=0.0,
            **_COMMON,
        ),
        search_space={**_SPACE, "proj_lr_ratio": R.LogUniform(0.05, 5.0)},
        state_tensors=0.625,
        state_formula=projected_state_bytes,
        notes=(
            "Authors' code (proj_type='continuous'): SVD at step 1, then torch AdamW on P (betas 0.9/0.999, eps 1e-8, "
            "wd 0.01) with lr = lr·ratio; ratio 0.5 = (1/T)/lr_0 for their T = 200, lr_0 = 0.01. The paper's "
            "orthogonality penalty λ is proj_ortho (code: 0)."
        ),
    )
)

R.register(
    R.AlgorithmSpec(
        name="coap",
        cls=COAPAdamW,
        family="memory",
        paper=R.Paper(
            "COAP: Memory-Efficient Training with Correlation-Aware Gradient Projection",
            "Xiao, Sang, Zhi, Liu, Yan, Zhang, Luo, Yuan",
            2025,
            "2412.00071",
            "#124",
        ),
        summary="low-rank Adam; P takes correlation-aware gradient steps every T_u steps, warm randomized SVD every 5",
        hparams=(
            "lr betas eps weight_decay projector rank update_proj_gap reproject_factor proj_lr scale reproject "
            "rank_fraction project"
        ),
        paper_defaults=dict(
            projector="coap",
            rank=128,
            update_proj_gap=32,
            reproject_factor=5,
            proj_lr=0.1,
            scale=1.0,
            reproject="none",
            **_COMMON,
        ),
        search_space={**_SPACE, "update_proj_gap": R.Choice((16, 32, 64))},
        state_tensors=0.375,
        state_formula=projected_state_bytes,
        notes=(
            "Authors' code defaults: T_u = 32, reproject_factor = 5, P step 0.1 with gradient clipping at norm 1, "
            "initial sketch seeded 3407, restore_state=False (reproject='none'; 'rotate_sqrt' is restore_state=True)."
        ),
        conventions=(
            R.Convention(
                point="moments when the projector is recomputed",
                paper="—",
                elsewhere="the authors' code: `restore_state=False` (moments kept as they are) by default; "
                "`restore_state=True` projects them back with the old P and down with the new one",
                switch="reproject",
                choices=(("none", "restore_state=False"), ("rotate_sqrt", "restore_state=True")),
            ),
            EPS_AND_DECAY,
        ),
    )
)
