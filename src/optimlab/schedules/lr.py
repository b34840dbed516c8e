"""Learning-rate schedules as ``torch.optim.lr_scheduler.LRScheduler`` subclasses.

Each schedule is a closed-form multiplier ``factor(t)`` of every group's initial learning rate at scheduler step
``t`` (``t = 0`` before the first ``scheduler.step()``), so it works with any optimizer (optimlab's, torch's, HF
Trainer, Lightning) and resumes exactly: ``state_dict()`` holds ``last_epoch`` and the schedule's numbers (plain
ints/floats, or a tensor for :class:`MultiplierSchedule`), all loadable with ``torch.load(weights_only=True)``.
Steps past ``total_steps`` keep the final value. Warm-up
is linear from 0 (``t / warmup_steps``), and the warm-up + linear/cosine decay schedules equal transformers'
``get_linear_schedule_with_warmup`` / ``get_cosine_schedule_with_warmup`` (one cosine half-period).

* :class:`WarmupLinear` — linear warm-up then linear decay to ``final_lr_ratio``, the schedule that Defazio,
  Cutkosky, Mehta & Mishchenko (2023), *When, Why and How Much? Adaptive Learning Rate Scheduling by Refinement*,
  arXiv:2310.07831 (seed #225) derive as worst-case optimal for the last iterate;
* :class:`WarmupCosine` — linear warm-up then half-cosine decay (Loshchilov & Hutter, 2017, arXiv:1608.03983);
* :class:`WSD` — warm-up, stable, decay (Hu et al., 2024, MiniCPM, arXiv:2404.06395) with the decay shapes in
  use: ``"linear"``, ``"cosine"`` and ``"1-sqrt"`` (Hägele et al., 2024, arXiv:2405.18392);
* :class:`MultiplierSchedule` — any per-step multiplier sequence, e.g. the gradient-norm-refined schedule of
  :func:`optimlab.schedules.refined_schedule`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.optim.lr_scheduler import LRScheduler

DECAY_SHAPES = ("linear", "cosine", "1-sqrt")


def _check_int(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer ≥ {low}, got {value!r}")
    return value


def _check_ratio(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1], got {value!r}")
    return float(value)


def decay_factor(shape: str, progress: float) -> float:
    """The decay multiplier at ``progress`` ∈ [0, 1] of the decay phase (1 at its start, 0 at its end):
    linear 1 − p, cosine ½(1 + cos πp), 1-sqrt 1 − √p."""
    p = min(max(progress, 0.0), 1.0)
    if shape == "linear":
        return 1.0 - p
    if shape == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if shape == "1-sqrt":
        return 1.0 - math.sqrt(p)
    raise ValueError(f"decay_shape must be one of {DECAY_SHAPES}, got {shape!r}")


class _ClosedForm(LRScheduler):
    """A schedule lr_t = base_lr · factor(t), computed from ``last_epoch`` alone (no chained state)."""

    def factor(self, t: int) -> float:
        raise NotImplementedError

    def get_lr(self) -> list[float]:
        f = self.factor(self.last_epoch)
        return [base * f for base in self.base_lrs]

    def _get_closed_form_lr(self) -> list[float]:
        return self.get_lr()


class WSD(_ClosedForm):
    """Warmup–stable–decay: linear warm-up over ``warmup_steps`` from 0, constant until ``total_steps −
    decay_steps``, then a decay of shape ``decay_shape`` ("linear", "cosine" or "1-sqrt") over ``decay_steps`` to
    ``final_lr_ratio`` × the peak. MiniCPM (Hu et al., 2024, arXiv:2404.06395); 1-sqrt cooldown from Hägele et al.
    (2024), *Scaling Laws and Compute-Optimal Training Beyond Fixed Training Durations*, arXiv:2405.18392.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        warmup_steps: int = 0,
        decay_steps: int | None = None,
        decay_shape: str = "linear",
        final_lr_ratio: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        self.total_steps = _check_int("total_steps", total_steps, 1)
        self.warmup_steps = _check_int("warmup_steps", warmup_steps, 0)
        if decay_steps is None:
            decay_steps = max(total_steps // 5, 1)
        self.decay_steps = _check_int("decay_steps", decay_steps, 0)
        if self.warmup_steps + self.decay_steps > self.total_steps:
            raise ValueError(
                f"warmup_steps + decay_steps must be ≤ total_steps, got {warmup_steps} + {decay_steps} > {total_steps}"
            )
        if decay_shape not in DECAY_SHAPES:
            raise ValueError(f"decay_shape must be one of {DECAY_SHAPES}, got {decay_shape!r}")
        self.decay_shape = decay_shape
        self.final_lr_ratio = _check_ratio("final_lr_ratio", final_lr_ratio)
        super().__init__(optimizer, last_epoch)

    def factor(self, t: int) -> float:
        if t < self.warmup_steps:
            return t / self.warmup_steps
        start = self.total_steps - self.decay_steps
        if t < start or self.decay_steps == 0:
            return 1.0
        d = decay_factor(self.decay_shape, (t - start) / self.decay_steps)
        return self.final_lr_ratio + (1.0 - self.final_lr_ratio) * d


class _WarmupThenDecay(WSD):
    """Linear warm-up over ``warmup_steps``, then the class's decay shape down to ``final_lr_ratio`` × the peak at
    ``total_steps`` (a WSD schedule with no stable phase)."""

    shape: str

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        total_steps: int,
        warmup_steps: int = 0,
        final_lr_ratio: float = 0.0,
        last_epoch: int = -1,
    ) -> None:
        _check_int("total_steps", total_steps, 1)
        _check_int("warmup_steps", warmup_steps, 0)
        super().__init__(
            optimizer, total_steps, warmup_steps, total_steps - warmup_steps, self.shape, final_lr_ratio, last_epoch
        )


class WarmupLinear(_WarmupThenDecay):
    """Linear warm-up over ``warmup_steps``, then linear decay to ``final_lr_ratio`` × the peak at ``total_steps``:
    η_t = η₀(1 − t/T) after warm-up, the schedule of Defazio et al. (2023), arXiv:2310.07831 (seed #225)."""

    shape = "linear"


class WarmupCosine(_WarmupThenDecay):
    """Linear warm-up over ``warmup_steps``, then half-cosine decay to ``final_lr_ratio`` × the peak at
    ``total_steps`` (SGDR without restarts, Loshchilov & Hutter, 2017, arXiv:1608.03983)."""

    shape = "cosine"


class MultiplierSchedule(_ClosedForm):
    """lr_t = base_lr · multipliers[t] (the last value after the end): a schedule given as a sequence, such as the
    refined schedule of :func:`optimlab.schedules.refined_schedule`. The multipliers are a float64 tensor in
    ``state_dict()``."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, multipliers: Sequence[float] | torch.Tensor, last_epoch: int = -1
    ) -> None:
        m = torch.as_tensor(multipliers, dtype=torch.float64).detach().clone().reshape(-1)
        if m.numel() == 0:
            raise ValueError("multipliers must not be empty")
        if not bool(torch.isfinite(m).all()) or bool((m < 0).any()):
            raise ValueError("multipliers must be finite and ≥ 0")
        self.multipliers = m
        super().__init__(optimizer, last_epoch)

    def factor(self, t: int) -> float:
        return float(self.multipliers[min(max(t, 0), self.multipliers.numel() - 1)])
