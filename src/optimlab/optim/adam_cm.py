"""Adam with critical momenta (Adam+CM).

Malviya, Mordido, Baratin, Harikandeh, Huang, Lacoste-Julien, Pascanu & Chandar (2023), *Promoting Exploration
in Memory-Augmented Adam using Critical Momenta*, arXiv:2307.09638 (Algorithm 1); authors' code:
github.com/chandar-lab/CMOptimizer (``cmoptimizer/optim.py``, ``Adam_CM``).

Adam keeps, besides m and v, a buffer of at most C past momenta ("critical momenta"), each with a priority: the
gradient norm of the step that produced it, multiplied by λ after every step. The step uses the current momentum
plus the mean of the buffer, which makes the optimizer overshoot out of narrow basins:

    m_t    = β1 m_{t-1} + (1 - β1) g_t
    m^M_t  = m_t + mean(buffer)          the buffer before this step's insertion; m^M_t = m_t while it is empty
    v_t    = β2 v_{t-1} + (1 - β2) (m^M_t)²
    insert m_t with priority ‖g_t‖: into a free slot while the buffer is not full, otherwise in place of the
           lowest-priority entry if ‖g_t‖ exceeds that priority (strictly; first slot among ties)
    priorities ← λ · priorities
    θ      ← θ(1 - η λ_wd) - η / (1 - β1^t) · m^M_t / (√(v_t / (1 - β2^t)) + eps)

Rules taken from the authors' code where the paper's text does not pin them down: the buffer stores m_t (after
its update, not the aggregate); the second moment is the EMA of the *aggregate* squared (so, unlike Adam+CG, C = 0
is not Adam: it is Adam with v built from m², which equals Adam only when β1 = 0); weight decay is decoupled;
``priority="group"`` (the authors' default ``synced=True``) uses for every tensor of a param group the same
priority Σ_i ‖g_i‖₂ over the group's tensors (a sum of per-tensor norms, as the code computes it);
``priority="tensor"`` (``synced=False``) uses each tensor's own ‖g‖₂. Deliberately *not* copied from that code:
its first step stores the raw gradient in the buffer and leaves m, v and the parameters unchanged (an artefact of
the Adam+CG code it derives from); here every step, the first included, is the update above. The code's
``critical_test`` (random FIFO replacement), ``kappa``, ``amsgrad`` and ``buffer_dtype`` options are not provided.

State per tensor: ``exp_avg``, ``exp_avg_sq``, ``critical_momenta`` of shape (C, *param.shape) and
``priorities`` of shape (C,), where an empty slot has priority -inf. The replacement rule is branch-free tensor
code (argmin / where / index_copy), so ``compile=True`` compiles it without graph breaks. C is fixed once the
state exists; C = 0 keeps no buffer.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from . import _kernels as K
from ._base import Optimizer
from ._rules import BETA, OneOf, Range, Tuple


def critical_momenta_(
    exp_avg: Tensor, critical_momenta: Tensor, priorities: Tensor, key: Tensor, priority_decay: K.Scalar
) -> Tensor:
    """Returns m + mean(buffer) for the buffer as it is now, then offers ``exp_avg`` to the buffer with priority
    ``key`` and decays the priorities. Empty slots have priority -inf, so argmin finds them first."""
    filled = priorities > -math.inf
    count = filled.sum().clamp_min(1).to(exp_avg.dtype)
    aggregate = exp_avg + critical_momenta.sum(0) / count
    slot = torch.argmin(priorities).reshape(1)
    take = key > priorities.index_select(0, slot)  # a free slot (-inf) is always taken
    row = torch.where(take, exp_avg.unsqueeze(0), critical_momenta.index_select(0, slot))
    critical_momenta.index_copy_(0, slot, row)
    priorities.index_copy_(0, slot, torch.where(take, key.reshape(1), priorities.index_select(0, slot)))
    filled = priorities > -math.inf
    priorities.copy_(torch.where(filled, priorities * priority_decay, priorities))
    return aggregate


def adam_cm_update_(
    p: Tensor,
    grad: Tensor,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
    critical_momenta: Tensor | None = None,
    priorities: Tensor | None = None,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    beta1: K.Scalar,
    beta2: K.Scalar,
    eps: K.Scalar,
    weight_decay: K.Scalar,
    priority_decay: K.Scalar,
    group_norm: Tensor | None = None,
) -> None:
    """One Adam+CM step on one tensor; ``group_norm`` is the group's priority (None: this tensor's ‖g‖₂)."""
    K.decoupled_decay_(p, lr, weight_decay)
    K.ema_(exp_avg, grad, beta1)
    aggregate = exp_avg
    if critical_momenta is not None and critical_momenta.shape[0] > 0:
        key = torch.linalg.vector_norm(grad) if group_norm is None else group_norm
        key = key.to(device=priorities.device, dtype=priorities.dtype)
        aggregate = critical_momenta_(exp_avg, critical_momenta, priorities, key, priority_decay)
    K.ema_sq_(exp_avg_sq, aggregate, beta2)
    step_size = lr / K.bias_correction(beta1, step)
    denom = (exp_avg_sq.sqrt() / K.sqrt(K.bias_correction(beta2, step))).add_(eps)
    K.addcdiv_scaled_(p, aggregate, denom, -step_size)


class AdamCM(Optimizer):
    """Adam+CM (Malviya et al., 2023): Adam whose step adds the mean of a buffer of high-priority past momenta
    (see the module docstring for the update and the conventions).

    Args:
        lr, betas, eps: as Adam.
        weight_decay: decoupled (AdamW-style), as in the authors' code.
        capacity: buffer size C (the authors' ``topC``); 0 keeps no buffer. Fixed once the state exists.
        priority_decay: λ, the factor applied to every priority after each step (the authors' ``decay``).
        priority: ``"group"`` (Σ of the group's per-tensor gradient norms, the authors' default) or ``"tensor"``.
    """

    shard_local = False  # sharded parameters: gather, update the full tensor, keep the shard
    unchecked_state = ("priorities",)  # an empty slot of the cache has priority -inf

    hyperparameters = {
        "lr": Range(0.0),
        "betas": Tuple(2, BETA),
        "eps": Range(0.0),
        "weight_decay": Range(0.0),
        "capacity": Range(0, integer=True),
        "priority_decay": Range(0.0, 1.0),
        "priority": OneOf(("group", "tensor")),
    }

    def __init__(
        self,
        params,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        capacity: int = 5,
        priority_decay: float = 0.7,
        priority: str = "group",
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            capacity=capacity,
            priority_decay=priority_decay,
            priority=priority,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    def state_keys(self, group):
        base = ("exp_avg", "exp_avg_sq")
        return base + ("critical_momenta", "priorities") if group["capacity"] > 0 else base

    def init_state(self, p, group):
        state = [torch.zeros_like(p, memory_format=torch.preserve_format) for _ in range(2)]
        if group["capacity"] > 0:
            state.append(p.new_zeros((group["capacity"], *p.shape)))
            state.append(torch.full((group["capacity"],), -math.inf, dtype=p.dtype, device=p.device))
        return state

    update = staticmethod(adam_cm_update_)

    def hyper(self, group):
        beta1, beta2 = group["betas"]
        hyper = dict(
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            eps=group["eps"],
            weight_decay=group["weight_decay"],
            priority_decay=group["priority_decay"],
        )
        if group["priority"] == "group" and group["capacity"] > 0:
            hyper["group_norm"] = self._group_norms[id(group)]
        return hyper

    def prepare(self, entries, loss, extras, closure):
        """Σ_i ‖g_i‖₂ per group (``priority="group"``) over the gradients the non-finite policy lets through, in
        float64 (real views, fp32 for low precision)."""
        norms: dict[int, list[Tensor]] = {}
        for e in entries:
            if e.group["priority"] == "group" and e.group["capacity"] > 0:
                norms.setdefault(id(e.group), []).append(torch.linalg.vector_norm(e.grad))
        self._group_norms = {
            key: torch.stack([n.to(device=ns[0].device, dtype=torch.float64) for n in ns]).sum()
            for key, ns in norms.items()
        }
        return entries


_SPACE = {
    "lr": R.LogUniform(1e-5, 1e-1),
    "beta1": R.OneMinusLogUniform(0.5, 0.99),
    "beta2": R.OneMinusLogUniform(0.9, 0.9999),
    "weight_decay": R.LogUniform(1e-6, 1.0),
    "capacity": R.Choice((5, 10, 20)),
    "priority_decay": R.Choice((0.7, 0.9, 0.99)),
}


def _adam_cm_state_bytes(shape, dtype, hp) -> int:
    """m, v, C buffered momenta and C priorities."""
    capacity = hp["capacity"]
    return R.dense_state_bytes(shape, dtype, 2 + capacity) + capacity * R.compute_dtype(dtype).itemsize


R.register(
    R.AlgorithmSpec(
        name="adam_cm",
        cls=AdamCM,
        family="adam",
        paper=R.Paper(
            "Promoting Exploration in Memory-Augmented Adam using Critical Momenta",
            "Malviya, Mordido, Baratin, Harikandeh, Huang, Lacoste-Julien, Pascanu, Chandar",
            2023,
            "2307.09638",
            "#211",
        ),
        summary="Adam stepping along m + mean of a buffer of C high-gradient-norm past momenta (priorities decay)",
        hparams="lr betas eps weight_decay capacity priority_decay priority",
        search_space=_SPACE,
        state_tensors=7,
        state_formula=_adam_cm_state_bytes,
        notes=(
            "Rules of the authors' code (chandar-lab/CMOptimizer Adam_CM): buffer stores m_t, priority = gradient "
            "norm (group: sum of the group's per-tensor norms; tensor: own norm), decayed by lambda after insertion; "
            "v is the EMA of (m + mean buffer)^2; decoupled weight decay. Unlike that code, the first step is a "
            "regular step (the code's first step only stores g_1). Defaults C=5, lambda=0.7: the authors' code."
        ),
    )
)
