"""The gradient-norm-refined schedule of seed #225, and a recorder of per-step gradient norms for the first run.

Defazio, Cutkosky, Mehta & Mishchenko (2023), *When, Why and How Much? Adaptive Learning Rate Scheduling by
Refinement*, arXiv:2310.07831. From a previous run's gradient norms G_1..G_T (median-filtered), weights
w_t = G_t^{-2} give the step-size schedule

    η_t ∝ w_t · Σ_{p=t+1}^{T} w_p,     normalised so that max_t η_t = 1  (η_T = 0),

which has an automatic warm-up where gradients are large early and anneals quickly at the end. With constant
gradient norms it is exactly linear decay η_t ∝ (T − t). Use it with :class:`~optimlab.schedules.MultiplierSchedule`::

    rec = GradNormRecorder(optimizer)            # first run: records ‖g_t‖ before every optimizer step
    ... train ...
    multipliers = refined_schedule(rec.norms, smoothing=0.05)
    scheduler = MultiplierSchedule(new_optimizer, multipliers)   # second run, same peak lr search as before
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import Tensor


def median_filter(x: Tensor, width: int) -> Tensor:
    """Running median of a 1-d tensor over ``width`` neighbours (centred; ends padded with the nearest value).

    For an even width the window is the ``width`` values from ``t − width//2`` to ``t + width//2 − 1`` and the
    median is the lower middle value (``torch.median``)."""
    x = torch.as_tensor(x, dtype=torch.float64).reshape(-1)
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ValueError(f"width must be an integer ≥ 1, got {width!r}")
    if width == 1 or x.numel() <= 1:
        return x.clone()
    left = width // 2
    right = width - 1 - left
    padded = torch.cat([x[:1].expand(left), x, x[-1:].expand(right)])
    return padded.unfold(0, width, 1).median(dim=1).values


def refined_schedule(grad_norms: Sequence[float] | Tensor, *, smoothing: float = 0.0, power: float = 2.0) -> Tensor:
    """Multipliers η_1..η_T (max 1, float64) of the refined schedule from a run's per-step gradient norms.

    ``smoothing`` = τ of the paper: the norms are median-filtered with a window of ``max(1, round(τ·T))`` steps
    before use (0 = no filtering). ``power``: w_t = G_t^{-power}; 2 is the paper's SGD refinement (ℓ2 norms).
    """
    g = torch.as_tensor(grad_norms, dtype=torch.float64).detach().reshape(-1)
    if g.numel() < 2:
        raise ValueError(f"grad_norms must hold at least 2 values, got {g.numel()}")
    if not bool(torch.isfinite(g).all()) or bool((g <= 0).any()):
        raise ValueError("grad_norms must be finite and > 0")
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"smoothing must be a number in [0, 1], got {smoothing!r}")
    if isinstance(power, bool) or not isinstance(power, (int, float)) or not power > 0 or not math.isfinite(power):
        raise ValueError(f"power must be a finite number > 0, got {power!r}")
    if smoothing > 0:
        g = median_filter(g, max(1, round(smoothing * g.numel())))
    w = g.pow(-float(power))
    tail = w.flip(0).cumsum(0).flip(0)  # tail[t] = Σ_{p ≥ t} w_p
    eta = torch.zeros_like(w)
    eta[:-1] = w[:-1] * tail[1:]
    return eta / eta.max()


class GradNormRecorder:
    """Records the global ℓ2 norm of the gradients before every step of ``optimizer`` (a step pre-hook, so any
    torch optimizer works). Closure-based optimizers compute their gradients inside ``step``: call
    :meth:`record` yourself after ``backward`` for those (and pass ``hook=False``).

    ``norms`` is a float64 tensor; ``state_dict``/``load_state_dict`` resume a partial record exactly."""

    def __init__(self, optimizer: torch.optim.Optimizer | None = None, *, hook: bool = True) -> None:
        self._norms: list[float] = []
        self._optimizer = optimizer
        self._handle = None
        if optimizer is not None and hook:
            self._handle = optimizer.register_step_pre_hook(lambda opt, args, kwargs: self._record_opt(opt))

    def _record_opt(self, opt: torch.optim.Optimizer) -> None:
        self.record(p for group in opt.param_groups for p in group["params"])

    @torch.no_grad()
    def record(self, params: Iterable[Tensor] | None = None) -> float:
        """Append and return ‖g‖ over ``params`` (default: the optimizer's parameters) that have a gradient."""
        if params is None:
            if self._optimizer is None:
                raise ValueError("params must be given when the recorder has no optimizer")
            params = (p for group in self._optimizer.param_groups for p in group["params"])
        sq = [p.grad.detach().double().pow(2).sum() for p in params if p.grad is not None]
        value = float(torch.stack(sq).sum().sqrt()) if sq else 0.0
        self._norms.append(value)
        return value

    @property
    def norms(self) -> Tensor:
        return torch.tensor(self._norms, dtype=torch.float64)

    def remove(self) -> None:
        """Stop recording (removes the step hook)."""
        if self._handle is not None:
            self._handle.remove()
            self._handle = None

    def state_dict(self) -> dict[str, Any]:
        return {"norms": self.norms}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._norms = [float(v) for v in state["norms"].tolist()]
