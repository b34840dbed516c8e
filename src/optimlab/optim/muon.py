"""Muon: momentum orthogonalized by Newton–Schulz, with a built-in elementwise fallback.

Jordan, Jin, Boza, You, Cesista, Newhouse, Bernstein (2024), *Muon: An optimizer for hidden layers in neural
networks*, https://kellerjordan.github.io/posts/muon/ (reference code: github.com/KellerJordan/Muon ``muon.py``);
Liu et al. (2025), *Muon is Scalable for LLM Training*, arXiv:2502.16982 (the "match AdamW RMS" scaling);
``torch.optim.Muon`` (read in torch 2.13, ``torch/optim/_muon.py``). Seed papers #46 / #173 describe the same update as
a trust-region / steepest-descent step under the spectral norm.

For a matrix parameter W (rows × cols) with gradient G::

    B ← μ·B + (1 − μ)·G                                   (EMA momentum, ``buf.lerp_(G, 1 − μ)``)
    U = (1 − μ)·G + μ·B   if nesterov   else   B          (``G.lerp(B, μ)``)
    O = NewtonSchulz₅(U)                                  (≈ U Vᵀ of U's SVD, see optimlab.curvature)
    W ← W·(1 − lr·λ) − lr·scale(rows, cols)·O

Parameters of 3 or more dimensions (conv kernels ``(out, in, kh, kw)``) are orthogonalized as the matrix
``(shape[0], prod(shape[1:]))`` and scaled with that matrix's shape. Parameters with fewer than 2 dimensions
(biases, norm gains, scalars), and any parameter of a group with ``use_muon=False`` (embeddings, output heads:
see :func:`optimlab.routing.matrix_param_groups`), are updated by the **fallback**, a registered elementwise
algorithm (``"adamw"`` by default) with the group's ``lr`` and ``weight_decay`` and its other hyperparameters from
``fallback_options``. ``use_muon=None`` (default) routes by shape: ≥ 2-D → Muon, else the fallback.

Conventions (``preset=``; every field can also be set on its own, and each param group may name its own preset):

=========================  =====================  ====================  ==========================
field                      ``"kj"`` (default)     ``"torch"``           ``"moonlight"``
=========================  =====================  ====================  ==========================
source                     KJ ``muon.py``         ``torch.optim.Muon``  Moonlight ``toy_train.py``
lr                         0.02                   1e-3                  1e-3
weight_decay (decoupled)   0                      0.1                   0.1
momentum, nesterov         0.95, True             0.95, True            0.95, True
NS coefficients, steps     quintic (3.4445,       same                  same
                           −4.7750, 2.0315), 5
NS normalization           G/(‖G‖_F + 1e-7)       G/max(‖G‖_F, 1e-7)    G/(‖G‖_F + 1e-7)
                           (``eps_mode="add"``)   (``"clamp"``)         (``"add"``)
NS precision               bfloat16               bfloat16              bfloat16
scale (``adjust_lr``)      √max(1, rows/cols)     √max(1, rows/cols)    0.2·√max(rows, cols)
                           ``"original"``         ``"original"``        ``"match_rms_adamw"``
fallback                   AdamW β=(0.9, 0.95),   AdamW β=(0.9,         AdamW β=(0.9, 0.95),
                           eps=1e-10 (KJ's        0.999), eps=1e-8      eps=1e-8
                           ``MuonWithAuxAdam``)   (torch defaults)
=========================  =====================  ====================  ==========================

Notes on the table, verified against the sources named in it:

* Momentum form. KJ's current reference and torch use the EMA form above (``lerp``). Moonlight (and KJ's older
  reference) use the SGD form B ← μB + G, U = G + μB, which is (1 − μ)⁻¹ times the EMA form; Newton–Schulz
  normalizes by ‖U‖_F, so the two agree up to the 1e-7 guard. optimlab uses the EMA form for every preset.
* Weight decay multiplies by (1 − lr·λ) with the *unscaled* lr in all three sources; only the orthogonalized
  step uses lr·scale.
* The fallback always takes its param group's lr and weight_decay. Moonlight uses one lr for both algorithms (its
  scaling is designed for that); KJ's ``MuonWithAuxAdam`` puts the AdamW parameters in their own groups with
  lr 3e-4 (``matrix_param_groups(model, "muon", fallback_lr=3e-4)`` builds such groups).
* Conv kernels: KJ flattens 4-D updates to (out, in·kh·kw) but computes the scale from the last two dims of
  the *unflattened* gradient (kh/kw, i.e. 1 for square kernels); torch uses ``shape[:2]`` = (out, in); optimlab
  uses the flattened matrix (out, in·kh·kw) for both, which is what "rows/cols" means for the matrix actually
  orthogonalized. On 2-D parameters the three agree.
* ``"torch"`` reproduces ``torch.optim.Muon`` bit for bit on 2-D parameters (tests/test_muon.py); torch's Muon
  has no fallback (it rejects non-2-D parameters), so the preset's fallback is ``torch.optim.AdamW``'s defaults.
* Moonlight's internal AdamW adds eps to √v before debiasing (ε̂ placement); the preset uses optimlab's AdamW
  (eps added to √v̂), which differs only in how eps is scaled early in training.

Newton–Schulz comes from :mod:`optimlab.curvature.newton_schulz` (``ns_dtype`` picks the compute precision;
``"float64"`` gives an exact-arithmetic path, used by the reference-parity tests). The orthogonalized update's
singular values lie in the documented band ``QUINTIC_BAND`` (≈ [0.68, 1.13]) for singular values of U above 1%
of ‖U‖_F; tests/test_muon.py checks it on the update actually applied.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from ..curvature.newton_schulz import CUBIC, QUINTIC_MUON, newton_schulz
from . import _kernels as K
from ._base import LAYOUT, Optimizer
from ._compiled import batched
from ._rules import BETA, OneOf, Range, Tuple

NS_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}
ADJUST_LR = ("original", "match_rms_adamw", "none")

#: the conventions of the table in the module docstring
PRESETS: dict[str, dict[str, Any]] = {
    "kj": dict(
        lr=0.02,
        weight_decay=0.0,
        momentum=0.95,
        nesterov=True,
        ns_coefficients=QUINTIC_MUON,
        ns_steps=5,
        eps=1e-7,
        eps_mode="add",
        adjust_lr="original",
        ns_dtype="bfloat16",
        fallback="adamw",
        fallback_options={"betas": (0.9, 0.95), "eps": 1e-10},
    ),
    "torch": dict(
        lr=1e-3,
        weight_decay=0.1,
        momentum=0.95,
        nesterov=True,
        ns_coefficients=QUINTIC_MUON,
        ns_steps=5,
        eps=1e-7,
        eps_mode="clamp",
        adjust_lr="original",
        ns_dtype="bfloat16",
        fallback="adamw",
        fallback_options={"betas": (0.9, 0.999), "eps": 1e-8},
    ),
    "moonlight": dict(
        lr=1e-3,
        weight_decay=0.1,
        momentum=0.95,
        nesterov=True,
        ns_coefficients=QUINTIC_MUON,
        ns_steps=5,
        eps=1e-7,
        eps_mode="add",
        adjust_lr="match_rms_adamw",
        ns_dtype="bfloat16",
        fallback="adamw",
        fallback_options={"betas": (0.9, 0.95), "eps": 1e-8},
    ),
}

#: fallback hyperparameters that come from the param group itself, never from ``fallback_options``
_FROM_GROUP = ("lr", "weight_decay", "maximize")


def lr_scale(rows: int, cols: int, adjust_lr: str) -> float:
    """The factor multiplying lr for the orthogonalized step of a rows × cols matrix (see the module table)."""
    if adjust_lr == "original":
        return math.sqrt(max(1.0, rows / cols))
    if adjust_lr == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return 1.0


def matrix_shape(shape: tuple[int, ...]) -> tuple[int, int]:
    """The matrix a ≥2-D parameter is treated as: ``(shape[0], prod(shape[1:]))``."""
    return shape[0], math.prod(shape[1:])


def muon_bucket_update_(
    params: list[Tensor],
    grads: list[Tensor],
    states: list[list[Tensor]],
    *,
    steps: list[K.Scalar],
    lr: K.Scalar,
    momentum: K.Scalar,
    nesterov: bool,
    weight_decay: K.Scalar,
    ns_coefficients: tuple[float, float, float],
    ns_steps: int,
    eps: float,
    eps_mode: str,
    adjust_lr: str,
    ns_dtype: str,
    transpose: bool = False,
) -> None:
    """Muon steps on matrices of one shape (a bucket of the ``("muon", *shape)`` layout): the momentum per tensor,
    then ONE batched Newton–Schulz (``baddbmm``) on the stacked updates instead of one per matrix. Each matrix is
    normalized by its own Frobenius norm and the batch's products are independent, so every matrix gets what it
    gets alone: the same bits with bf16 products (default), within rounding with fp32/fp64 (tests/test_muon.py)."""
    first = params[0]
    rows, cols = matrix_shape(tuple(first.shape))
    updates = []
    for grad, (buf,) in zip(grads, states):
        K.ema_(buf, grad, momentum)  # B ← μB + (1 − μ)G, as buf.lerp_(G, 1 − μ)
        if not nesterov:
            update = buf
        elif isinstance(momentum, Tensor):
            update = grad + (buf - grad) * momentum
        else:
            update = grad.lerp(buf, momentum)
        updates.append(update.reshape(rows, cols))
    ortho = newton_schulz(
        updates[0] if len(updates) == 1 else torch.stack(updates),  # one alone: torch.optim.Muon's 2-D path
        steps=int(ns_steps),
        coefficients=tuple(ns_coefficients),
        eps=eps,
        eps_mode=eps_mode,
        dtype=NS_DTYPES[ns_dtype],
        out_dtype=first.dtype,
    ).reshape(len(params), *first.shape)
    scale = lr * lr_scale(*((cols, rows) if transpose else (rows, cols)), adjust_lr)
    for p, o in zip(params, ortho):
        K.decoupled_decay_(p, lr, weight_decay)
        K.add_scaled_(p, o, -scale)


@batched(muon_bucket_update_)
def muon_update_(p: Tensor, grad: Tensor, momentum_buffer: Tensor, *, step: K.Scalar, **hyper: Any) -> None:
    """One Muon step on a matrix (or a ≥3-D tensor viewed as one): :func:`muon_bucket_update_` of one tensor (its
    keyword arguments); other parameters take the fallback's update. ``transpose``: the weight is stored
    (in, out) (Hugging Face ``Conv1D``): the lr scale uses the transposed shape."""
    muon_bucket_update_([p], [grad], [[momentum_buffer]], steps=[step], **hyper)


@dataclass(frozen=True)
class ElementwiseAlgorithm:
    """Rule for ``fallback``: the name of a registered elementwise optimlab algorithm (no closure needed)."""

    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be the name of a registered elementwise algorithm, got {value!r}")
        try:
            spec = R.spec(value)
        except KeyError:
            raise ValueError(f"{name} must be the name of a registered elementwise algorithm, got {value!r}") from None
        cls = spec.cls
        if not (isinstance(cls, type) and issubclass(cls, Optimizer)) or not cls.supports_complex:
            raise ValueError(f"{name}: {value!r} is not an elementwise optimlab algorithm")
        if cls.requires_closure or cls.requires_hvp:
            raise ValueError(f"{name}: {value!r} needs a closure and cannot be a fallback")

    def bad_values(self) -> list[Any]:
        return ["not-a-registered-algorithm", 3, "muon"]


@dataclass(frozen=True)
class OptionsDict:
    """Rule for ``fallback_options``: a dict of the fallback's hyperparameters (checked against its own rules)."""

    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a dict of the fallback's hyperparameters, got {value!r}")
        for key in value:
            if key in _FROM_GROUP:
                raise ValueError(f"{name} may not set {key!r}: the fallback uses the param group's {key}")

    def bad_values(self) -> list[Any]:
        return ["not-a-dict", {"lr": 1e-3}, {"betas": (0.9, 1.5)}]


class _FromPreset:
    """Marks an argument left to the preset."""

    def __repr__(self) -> str:
        return "<from preset>"


FROM_PRESET: Any = _FromPreset()


class Muon(Optimizer):
    """Muon (Jordan et al. 2024) for matrix parameters, with an elementwise fallback for the others.

    Args:
        params: parameters or param groups. Group options: ``use_muon`` (``None`` = by shape, ``True``, ``False``),
            ``transpose`` (weights stored (in, out), as Hugging Face's ``Conv1D``: the lr scale is taken from the
            transposed shape; :func:`optimlab.routing.matrix_param_groups` sets it), ``fallback``,
            ``fallback_options``, ``preset`` and every hyperparameter below.
        preset: ``"kj"`` (Keller Jordan's reference, default), ``"torch"`` (``torch.optim.Muon``) or
            ``"moonlight"`` (match-AdamW-RMS scaling); fills every argument not given (module docstring table).
        lr, weight_decay: step size and decoupled weight decay (W ← W(1 − lr·λ)); also the fallback's.
        momentum, nesterov: EMA momentum coefficient μ and the Nesterov look-ahead.
        ns_coefficients, ns_steps, eps, eps_mode, ns_dtype: the Newton–Schulz iteration
            (:func:`optimlab.curvature.newton_schulz`).
        adjust_lr: ``"original"`` √max(1, rows/cols), ``"match_rms_adamw"`` 0.2·√max(rows, cols), or ``"none"``;
            ``adjust_lr_fn`` (torch.optim.Muon's name, ``None`` = ``"original"``) is accepted for it.
        fallback: registered elementwise algorithm for non-matrix parameters (``"adamw"``).
        fallback_options: the fallback's hyperparameters other than lr / weight_decay (e.g. ``betas``, ``eps``),
            on top of its registered defaults.
    """

    shard_local = False  # sharded parameters: gather, update the full tensor, keep the shard

    supports_complex = False
    hyperparameters = {
        "preset": OneOf(tuple(PRESETS)),
        "lr": Range(0.0),
        "weight_decay": Range(0.0),
        "momentum": BETA,
        "nesterov": OneOf((True, False)),
        "ns_coefficients": Tuple(3, Range()),
        "ns_steps": Range(0, 100, integer=True),
        "eps": Range(0.0),
        "eps_mode": OneOf(("add", "clamp")),
        "adjust_lr": OneOf(ADJUST_LR),
        "ns_dtype": OneOf(tuple(NS_DTYPES)),
        "use_muon": OneOf((None, True, False)),
        "transpose": OneOf((True, False)),
        "fallback": ElementwiseAlgorithm(),
        "fallback_options": OptionsDict(),
    }

    def __init__(
        self,
        params,
        lr: float = FROM_PRESET,
        momentum: float = FROM_PRESET,
        nesterov: bool = FROM_PRESET,
        weight_decay: float = FROM_PRESET,
        *,
        preset: str = "kj",
        ns_coefficients: tuple[float, float, float] = FROM_PRESET,
        ns_steps: int = FROM_PRESET,
        eps: float = FROM_PRESET,
        eps_mode: str = FROM_PRESET,
        adjust_lr: str = FROM_PRESET,
        ns_dtype: str = FROM_PRESET,
        use_muon: bool | None = None,
        fallback: str = FROM_PRESET,
        fallback_options: Mapping[str, Any] = FROM_PRESET,
        maximize: bool = False,
        adjust_lr_fn: str | None = FROM_PRESET,
        **options: Any,
    ) -> None:
        self.hyperparameters["preset"].check("preset", preset)
        if adjust_lr_fn is not FROM_PRESET:  # torch.optim.Muon's name for adjust_lr (None: "original")
            if adjust_lr is not FROM_PRESET:
                raise ValueError("pass adjust_lr or torch's name for it, adjust_lr_fn, not both")
            adjust_lr = "original" if adjust_lr_fn is None else adjust_lr_fn
            if adjust_lr not in ADJUST_LR:
                raise ValueError(
                    f"Adjust learning rate function {adjust_lr_fn} is not supported (adjust_lr_fn must be one of "
                    f"{list(ADJUST_LR)} or None)"
                )
        given = dict(
            lr=lr,
            momentum=momentum,
            nesterov=nesterov,
            weight_decay=weight_decay,
            ns_coefficients=ns_coefficients,
            ns_steps=ns_steps,
            eps=eps,
            eps_mode=eps_mode,
            adjust_lr=adjust_lr,
            ns_dtype=ns_dtype,
            fallback=fallback,
            fallback_options=fallback_options,
        )
        defaults = {**PRESETS[preset], **{k: v for k, v in given.items() if v is not FROM_PRESET}}
        defaults.update(preset=preset, use_muon=use_muon, maximize=maximize)
        self._fallbacks: dict[str, Optimizer] = {}
        self._fallback_groups: dict[tuple[str, str], dict[str, Any]] = {}
        super().__init__(params, defaults, **options)

    # ------------------------------------------------------------------ groups and the fallback
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        preset = param_group.get("preset")
        if preset is not None and preset != self.defaults.get("preset"):
            self.hyperparameters["preset"].check("preset", preset)
            for key, value in PRESETS[preset].items():
                param_group.setdefault(key, value)
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        self._fallback_group(group)  # validates fallback_options against the fallback's own rules
        if group["use_muon"]:
            for p in group["params"]:
                if p.ndim < 2:
                    raise ValueError(f"use_muon=True needs parameters with ≥ 2 dimensions, got shape {tuple(p.shape)}")

    def _fallback(self, name: str) -> Optimizer:
        """A private instance of the fallback class (for its ``hyper``/``state_keys``/``init_state``)."""
        if name not in self._fallbacks:
            self._fallbacks[name] = R.spec(name).create([torch.zeros(1, requires_grad=True)])
        return self._fallbacks[name]

    def _fallback_group(self, group: dict[str, Any]) -> dict[str, Any]:
        """The param-group dict the fallback sees: its registered defaults, ``fallback_options``, and this group's
        lr / weight_decay. Validated once per (fallback, options); lr and weight_decay are the group's own."""
        key = (group["fallback"], repr(sorted(group["fallback_options"].items())))
        synth = self._fallback_groups.get(key)
        if synth is None:
            fb = self._fallback(group["fallback"])
            synth = {k: v for k, v in fb.defaults.items() if k != "params"}
            synth.update(group["fallback_options"])
            synth.update(lr=group["lr"], weight_decay=group["weight_decay"], maximize=False)
            try:
                fb._check_hyperparameters(synth)
            except ValueError as err:
                raise ValueError(f"fallback_options ({group['fallback']}): {err}") from None
            self._fallback_groups[key] = synth
        return {**synth, "lr": group["lr"], "weight_decay": group["weight_decay"]}

    # ------------------------------------------------------------------ pipeline hooks: one layout per algorithm
    def layout(self, p: Tensor, group: dict[str, Any]) -> tuple | str:
        """``("muon", *shape)`` for the parameters Muon orthogonalizes (a bucket, and so one batched
        Newton–Schulz, per parameter shape), ``"fallback"`` for the others."""
        use_muon = group["use_muon"]
        return ("muon", *p.shape) if ((p.ndim >= 2) if use_muon is None else use_muon) else "fallback"

    def state_keys(self, group):
        if group[LAYOUT] != "fallback":
            return ("momentum_buffer",)
        return tuple(self._fallback(group["fallback"]).state_keys(self._fallback_group(group)))

    def init_state(self, p: Tensor, group: dict[str, Any]) -> list[Tensor]:
        if group[LAYOUT] != "fallback":
            return [torch.zeros_like(p, memory_format=torch.preserve_format)]
        return self._fallback(group["fallback"]).init_state(p, self._fallback_group(group))

    def update_function(self, group):
        return muon_update_ if group[LAYOUT] != "fallback" else type(self._fallback(group["fallback"])).update

    update = staticmethod(muon_update_)

    def hyper(self, group):
        if group[LAYOUT] == "fallback":
            return self._fallback(group["fallback"]).hyper(self._fallback_group(group))
        return dict(
            lr=group["lr"],
            momentum=group["momentum"],
            nesterov=group["nesterov"],
            weight_decay=group["weight_decay"],
            ns_coefficients=tuple(group["ns_coefficients"]),
            ns_steps=group["ns_steps"],
            eps=group["eps"],
            eps_mode=group["eps_mode"],
            adjust_lr=group["adjust_lr"],
            ns_dtype=group["ns_dtype"],
            transpose=group.get("transpose", False),
        )

    def _integer_hyperparameters(self) -> frozenset[str]:
        """Muon's integer hyperparameters and those of the fallbacks in use (kept static when compiled)."""
        names = set(super()._integer_hyperparameters())
        for fb in self._fallbacks.values():
            names |= type(fb)._integer_hyperparameters()
        return frozenset(names)

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_fallbacks", {})
        self.__dict__.setdefault("_fallback_groups", {})

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.pop("_fallbacks", None)
        state.pop("_fallback_groups", None)
        return state


def _muon_state_bytes(shape, dtype, hp) -> int:
    preset = PRESETS[hp.get("preset", "kj")]
    use_muon = hp.get("use_muon")
    if (len(shape) >= 2) if use_muon is None else use_muon:
        return R.dense_state_bytes(shape, dtype, 1)
    fallback = hp.get("fallback", preset["fallback"])
    options = hp.get("fallback_options", preset["fallback_options"])
    return R.spec(fallback).state_bytes(shape, dtype, **options)


# ----------------------------------------------------------------------------- conventions (docs/conventions.md)
_PRESET_SOURCES = {"kj": "Keller Jordan's muon.py", "torch": "torch.optim.Muon", "moonlight": "Moonlight"}


def _preset_label(name: str) -> str:
    """What a preset sets, read from :data:`PRESETS` (so the docs cannot drift from the code)."""
    p = PRESETS[name]
    return (
        f"{_PRESET_SOURCES[name]}: lr {p['lr']:g}, weight_decay {p['weight_decay']:g}, adjust_lr {p['adjust_lr']}, "
        f"eps_mode {p['eps_mode']}"
    )


_CONVENTIONS = (
    R.Convention(
        point="lr, weight decay and the rest of a recipe",
        paper="Keller Jordan's post and reference code: lr 0.02, momentum 0.95, Nesterov, 5 Newton–Schulz steps, "
        "no decay",
        elsewhere="torch.optim.Muon: lr 1e-3, weight_decay 0.1; Moonlight (Liu et al. 2025): lr 1e-3, decay 0.1 "
        "with the AdamW-matching scale",
        switch="preset",
        choices=tuple((name, _preset_label(name)) for name in PRESETS),
    ),
    R.Convention(
        point="lr scale by matrix shape (rows × cols)",
        paper="Keller Jordan's code: √max(1, rows/cols)",
        elsewhere="torch.optim.Muon: `adjust_lr_fn=None` or 'original' the same, 'match_rms_adamw' "
        "0.2·√max(rows, cols) (Moonlight's, matches AdamW's update RMS)",
        switch="adjust_lr",
        choices=(
            ("original", "√max(1, rows/cols): Keller Jordan, torch's default"),
            ("match_rms_adamw", "0.2·√max(rows, cols): Moonlight, torch's 'match_rms_adamw'"),
            ("none", "no shape factor"),
        ),
    ),
    R.Convention(
        point="normalization before Newton–Schulz",
        paper="Keller Jordan's code: G/(‖G‖_F + 1e-7)",
        elsewhere="torch.optim.Muon: G/max(‖G‖_F, eps), eps=1e-7",
        switch="eps_mode",
        choices=(("add", "‖G‖_F + eps: Keller Jordan, Moonlight"), ("clamp", "max(‖G‖_F, eps): torch.optim.Muon")),
    ),
    R.Convention(
        point="Newton–Schulz polynomial",
        paper="Keller Jordan's code: quintic (3.4445, −4.7750, 2.0315), 5 steps",
        elsewhere="torch.optim.Muon and Moonlight: the same constants and 5 steps",
        switch="ns_coefficients",
        choices=(
            (QUINTIC_MUON, "Keller Jordan, torch.optim.Muon, Moonlight"),
            (CUBIC, "classical Newton–Schulz, converges to UVᵀ (use `ns_steps=15`)"),
        ),
    ),
    R.Convention(
        point="momentum form",
        paper="Keller Jordan's current code: EMA, B ← μB + (1 − μ)G (lerp)",
        elsewhere="torch.optim.Muon: the same; Moonlight and Keller Jordan's older code: B ← μB + G, 1/(1 − μ) "
        "times larger, which Newton–Schulz normalizes away",
        fixed="the EMA form in every preset",
    ),
    R.Convention(
        point="conv kernels (≥ 3-D parameters)",
        paper="Keller Jordan's code: orthogonalizes the (out, in·kh·kw) matrix but takes the scale from the last two "
        "dims of the unflattened gradient",
        elsewhere="torch.optim.Muon: 2-D parameters only",
        fixed="the (out, in·kh·kw) matrix for both the orthogonalization and the scale",
    ),
    R.Convention(
        point="the elementwise fallback for non-matrix parameters",
        paper="Keller Jordan's MuonWithAuxAdam: AdamW, betas (0.9, 0.95), eps 1e-10",
        elsewhere="torch.optim.Muon: none (rejects non-2-D parameters); Moonlight: AdamW, betas (0.9, 0.95), eps 1e-8",
        switch="fallback_options",
        choices=tuple(
            (
                PRESETS[name]["fallback_options"],
                f"{_PRESET_SOURCES[name]} (preset {name!r}, fallback {PRESETS[name]['fallback']})",
            )
            for name in PRESETS
        ),
    ),
)


R.register(
    R.AlgorithmSpec(
        name="muon",
        cls=Muon,
        family="norm_based",
        paper=R.Paper(
            "Muon: An optimizer for hidden layers in neural networks",
            "Jordan, Jin, Boza, You, Cesista, Newhouse, Bernstein",
            2024,
            None,
            "#46",
        ),
        summary="EMA momentum orthogonalized by 5 Newton–Schulz steps (≈ UVᵀ); AdamW fallback for non-matrices",
        # only the fields every preset shares: create("muon", ..., preset="torch") must get torch's lr and decay
        hparams="preset momentum nesterov ns_steps ns_coefficients",
        paper_defaults=dict(momentum=0.95, nesterov=True, ns_steps=5, ns_coefficients=QUINTIC_MUON),
        search_space={
            "lr": R.LogUniform(1e-3, 0.2),
            "momentum": R.OneMinusLogUniform(0.8, 0.99),
            "weight_decay": R.LogUniform(1e-5, 0.3),
        },
        state_tensors=1,
        state_formula=_muon_state_bytes,
        notes=(
            "preset='kj' (default): Keller Jordan's reference (lr 0.02, no decay, NS eps added, scale "
            "√max(1, rows/cols), AdamW fallback β=(0.9, 0.95), eps 1e-10); preset='torch': torch.optim.Muon (lr 1e-3, "
            "decay 0.1, eps clamped; bit-exact on 2-D params); preset='moonlight': 0.2·√max(rows, cols) scaling "
            "that matches AdamW's update RMS (lr 1e-3, decay 0.1). EMA momentum with Nesterov in all presets (the "
            "SGD form of Moonlight/older KJ code differs by the factor 1 − μ that Newton–Schulz normalizes away). "
            ">2-D parameters are orthogonalized as (shape[0], prod(rest)) and scaled with that shape. Parameters "
            "with <2 dims, or in groups with use_muon=False, use the fallback (a registered elementwise algorithm) "
            "with the group's lr and weight_decay."
        ),
        conventions=_CONVENTIONS,
    )
)
