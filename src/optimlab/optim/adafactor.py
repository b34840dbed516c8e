"""Adafactor with factored second moments, matching ``torch.optim.Adafactor``.

Shazeer & Stern (2018), *Adafactor: Adaptive Learning Rates with Sublinear Memory Cost*, arXiv:1804.04235
(Algorithms 4 and 5: factored second moment for matrices, relative step size, update clipping, increasing β̂2).

For a parameter with ``ndim ≥ 2`` the second moment of the last two dimensions is kept as a row factor R (mean of
g² over the last dim) and a column factor C (mean over the second-to-last dim), so an m × n matrix holds m + n
numbers; vectors (and 0-d tensors) keep a full second moment:

    β̂2ₜ = 1 − t^τ (τ = ``beta2_decay``),   ρₜ = min(lr, 1/√t),   αₜ = max(ε2, RMS(θ)) ρₜ
    R ← β̂2ₜ R + (1 − β̂2ₜ) mean_last(g²),   C ← β̂2ₜ C + (1 − β̂2ₜ) mean_rows(g²)
    V̂ = R C / max(mean_rows(R), ε1)        (vectors: V̂ ← β̂2ₜ V̂ + (1 − β̂2ₜ) g²)
    U = g / max(√V̂, ε1),   Û = U / max(1, RMS(U)/d),   θ ← θ(1 − lr·λ) − αₜ Û

This is torch's variant of the paper (documented in ``torch.optim.Adafactor``): lr caps ρₜ (the paper uses 0.01),
weight decay is decoupled and scaled by lr, ε1 is applied to V̂ and U instead of being added to g², means instead of
sums. Same arguments, defaults (lr = 1e-2, τ = −0.8, eps = (None, 1e-3), d = 1) and state names (``row_var``,
``col_var``; ``variance`` for vectors) as torch, so the two agree step for step (the test matrix checks it); ε1 = None
means the machine epsilon of the dtype the math runs in (fp32 for bf16/fp16 parameters, whose state is fp32 here,
where torch keeps bf16 state and uses bf16's epsilon). No first moment (the paper's β1 = 0), so the state is
sublinear in the parameter size. Complex parameters are not supported (as in torch).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from . import _kernels as K
from ._layout import LAYOUT, PerParamLayout
from ._rules import Range, _as_float, invalid

FACTORED, VECTOR = "factored", "vector"


class EpsPair:
    """Rule for Adafactor's ``eps = (eps1, eps2)``: eps1 ≥ 0 or None, eps2 ≥ 0."""

    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, (tuple, list)) or len(value) != 2:
            raise ValueError(f"{name} must be a pair (eps1 or None, eps2), got {value!r}")
        eps1, eps2 = value
        if eps1 is not None:
            x = _as_float(f"{name}[0]", eps1)
            if not x >= 0:
                raise invalid(f"{name}[0]", eps1, "must be a number in [0, inf) or None", "epsilon1 should be >= 0")
        x = _as_float(f"{name}[1]", eps2)
        if not x >= 0:
            raise invalid(f"{name}[1]", eps2, "must be a number in [0, inf)", "epsilon2 should be >= 0")

    def bad_values(self) -> list[Any]:
        return [(None,), "0.1", (-1.0, 1e-3), (math.nan, 1e-3), (None, -1.0), (None, math.nan), (None, None)]


def _lerp_(avg: Tensor, x: Tensor, weight: K.Scalar) -> None:
    """avg ← avg + weight·(x − avg) (``lerp_`` with a Python weight, as torch.optim.Adafactor)."""
    if isinstance(weight, Tensor):
        avg.add_((x - avg) * weight)
    else:
        avg.lerp_(x, weight)


def _minimum(a: K.Scalar, b: K.Scalar) -> K.Scalar:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return torch.minimum(torch.as_tensor(a), torch.as_tensor(b))
    return min(a, b)


def adafactor_update_(
    p: Tensor,
    grad: Tensor,
    *state: Tensor,
    step: K.Scalar,
    lr: K.Scalar,
    beta2_decay: K.Scalar,
    eps1: K.Scalar | None,
    eps2: K.Scalar,
    d: K.Scalar,
    weight_decay: K.Scalar,
) -> None:
    """One Adafactor step on one tensor; ``state`` is (row_var, col_var) for ``ndim ≥ 2``, else (variance,)."""
    if eps1 is None:
        eps1 = torch.finfo(p.dtype).eps
    weight = step**beta2_decay  # 1 − β̂2ₜ
    rho = _minimum(lr, 1 / step**0.5)
    rms = torch.linalg.vector_norm(p) / math.sqrt(p.numel())
    alpha = torch.clamp(rms, min=eps2) * rho
    K.decoupled_decay_(p, lr, weight_decay)
    if len(state) == 2:
        row_var, col_var = state
        _lerp_(row_var, torch.linalg.vector_norm(grad, dim=-1, keepdim=True).square() / grad.size(-1), weight)
        _lerp_(col_var, torch.linalg.vector_norm(grad, dim=-2, keepdim=True).square() / grad.size(-2), weight)
        estimate = (row_var @ col_var) / row_var.mean(dim=-2, keepdim=True).clamp(min=eps1)
    else:
        (variance,) = state
        _lerp_(variance, grad * grad, weight)
        estimate = variance.clone()
    update = estimate.clamp(min=eps1 * eps1).rsqrt() * grad
    denom = torch.clamp(torch.linalg.vector_norm(update) / (math.sqrt(update.numel()) * d), min=1.0)
    K.add_scaled_(p, update, -alpha / denom)


class Adafactor(PerParamLayout):
    """Adafactor (Shazeer & Stern, 2018) as ``torch.optim.Adafactor``: factored second moments for tensors with
    ``ndim ≥ 2``, relative step size min(lr, 1/√t)·max(ε2, RMS(θ)), update clipping at RMS d, no momentum.

    Args:
        lr: the cap on the relative step size ρₜ and the weight-decay scale (default 1e-2, the paper's constant).
        beta2_decay: τ in β̂2ₜ = 1 − t^τ (≤ 0; default −0.8).
        eps: (ε1, ε2); ε1 = None uses the machine epsilon of the math dtype.
        d: update clipping threshold (≥ 1).
        weight_decay: decoupled, multiplied by lr.
    """

    hyperparameters = {
        "lr": Range(0.0),
        "beta2_decay": Range(high=0.0, torch_message="beta2_decay should be <= 0"),
        "eps": EpsPair(),
        "d": Range(1.0, torch_message="Clipping threshold d should be >= 1"),
        "weight_decay": Range(0.0),
    }
    supports_complex = False

    def __init__(
        self,
        params,
        lr: float = 1e-2,
        beta2_decay: float = -0.8,
        eps: tuple[float | None, float] = (None, 1e-3),
        d: float = 1.0,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(lr=lr, beta2_decay=beta2_decay, eps=eps, d=d, weight_decay=weight_decay, maximize=maximize)
        super().__init__(params, defaults, **options)

    def layout(self, p: Tensor, group: dict[str, Any]) -> str:
        return FACTORED if p.dim() > 1 else VECTOR

    def layout_state_keys(self, layout: str, group: dict[str, Any]) -> tuple[str, ...]:
        return ("row_var", "col_var") if layout == FACTORED else ("variance",)

    def init_state(self, p: Tensor, group: dict[str, Any]) -> list[Tensor]:
        if group[LAYOUT] == VECTOR:
            return [torch.zeros_like(p, memory_format=torch.preserve_format)]
        row, col = list(p.shape), list(p.shape)
        row[-1], col[-2] = 1, 1
        return [p.new_zeros(row), p.new_zeros(col)]

    update = staticmethod(adafactor_update_)

    def hyper(self, group: dict[str, Any]) -> dict[str, Any]:
        eps1, eps2 = group["eps"]
        return {**super().hyper(group), "eps1": eps1, "eps2": eps2}


def adafactor_state_bytes(shape, dtype, hp) -> int:
    """Row and column factors (prod(shape[:-1]) + prod(shape[:-2])·shape[-1]) for ndim ≥ 2, else numel; + step."""
    shape = tuple(shape)
    if len(shape) > 1:
        numel = math.prod(shape[:-1]) + math.prod(shape[:-2]) * shape[-1]
    else:
        numel = math.prod(shape)
    return numel * R.compute_dtype(dtype).itemsize + 4


# state_tensors (the catalogue's "state/param" column): fp32-equivalent parameter-sized tensors for a 1024 × 1024
# fp32 matrix at the defaults; the exact bytes for any shape come from state_formula.
R.register(
    R.AlgorithmSpec(
        name="adafactor",
        cls=Adafactor,
        family="memory",
        paper=R.Paper(
            "Adafactor: Adaptive Learning Rates with Sublinear Memory Cost", "Shazeer, Stern", 2018, "1804.04235"
        ),
        summary="factored second moment (row and column means of g²), relative step size, update clipping",
        hparams="lr beta2_decay eps d weight_decay",
        search_space={
            "lr": R.LogUniform(1e-4, 1.0),
            "beta2_decay": R.Uniform(-1.0, -0.5),
            "weight_decay": R.LogUniform(1e-6, 1.0),
        },
        state_tensors=0.002,
        state_formula=adafactor_state_bytes,
        notes=(
            "torch.optim.Adafactor's variant of the paper: lr caps the relative step (paper: 0.01) and scales the "
            "decoupled weight decay; eps1 on V̂ and U instead of inside g² + eps1; means instead of sums. eps1=None "
            "is the epsilon of the math dtype (fp32 for bf16 params)."
        ),
        conventions=(
            R.Convention(
                point="what lr means",
                paper="no learning rate: relative step ρ_t = min(10⁻², 1/√t)",
                elsewhere="torch.optim.Adafactor: ρ_t = min(lr, 1/√t) with lr=1e-2, and lr also scales the decoupled "
                "weight decay (its docs)",
                fixed="torch's; the default lr=0.01 is the paper's constant",
            ),
            R.Convention(
                point="where ε1 enters",
                paper="ε1 added to G ⊙ G before the row and column factors",
                elsewhere="torch.optim.Adafactor: ε1 floors the row-factor mean and √V̂, max(·, ε1); `eps=(None, …)` "
                "takes the machine epsilon of the parameter's dtype",
                fixed="torch's; `None` takes the epsilon of the math dtype (fp32 for bf16/fp16 parameters)",
            ),
        ),
    )
)
