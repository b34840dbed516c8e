"""Weight averaging of the parameters: an exponential moving average (EMA) and stochastic weight averaging (SWA).

They work beside any optimizer (they only read the parameters after ``optimizer.step()``), keep their state in
tensors (the averaged copies, the number of averaged models, the step counter) so ``state_dict()`` saved next to
the optimizer's resumes exactly, and follow ``torch.optim.swa_utils``: :class:`EMA` computes what
``AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))`` computes and :class:`SWA` what
``AveragedModel(model)`` computes (the tests check it), without copying the module; use
:meth:`ParameterAverage.copy_to` (or the :meth:`ParameterAverage.swapped` context) to evaluate the average, then
``torch.optim.swa_utils.update_bn`` for BatchNorm statistics, and ``torch.optim.swa_utils.SWALR`` for the SWA
learning rate as with any optimizer.

* EMA: Polyak & Juditsky (1992); the EMA of weights as in e.g. Tarvainen & Valpola (2017), arXiv:1703.01780.
* SWA: Izmailov, Podoprikhin, Garipov, Vetrov & Wilson (2018), *Averaging Weights Leads to Wider Optima and
  Better Generalization*, arXiv:1803.05407: the equal-weight average of the iterates from ``start`` on, every
  ``every`` steps.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor, nn


def _params(params: nn.Module | Iterable[Tensor]) -> list[Tensor]:
    if isinstance(params, nn.Module):
        return list(params.parameters())
    out = list(params)
    if not out or not all(isinstance(p, Tensor) for p in out):
        raise ValueError("params must be a module or a non-empty iterable of tensors")
    return out


class ParameterAverage:
    """Base of :class:`EMA` and :class:`SWA`: an average of ``params`` refreshed by :meth:`update` (call it after
    every ``optimizer.step()``); the average is taken at steps ``start, start + every, …`` (1-based step count)."""

    def __init__(self, params: nn.Module | Iterable[Tensor], *, start: int = 1, every: int = 1) -> None:
        for name, value in (("start", start), ("every", every)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer ≥ 1, got {value!r}")
        self.params = _params(params)
        self.start = start
        self.every = every
        self.averages = [p.detach().clone() for p in self.params]
        self.n_averaged = torch.zeros((), dtype=torch.long)
        self.step = torch.zeros((), dtype=torch.long)

    def _combine(self, avg: Tensor, p: Tensor, n: int) -> None:
        """Fold ``p`` into ``avg``, which already averages ``n ≥ 1`` models."""
        raise NotImplementedError

    @torch.no_grad()
    def update(self) -> bool:
        """Count one training step; average the current parameters when the step is due. Returns whether it was."""
        self.step += 1
        t = int(self.step)
        if t < self.start or (t - self.start) % self.every:
            return False
        n = int(self.n_averaged)
        for avg, p in zip(self.averages, self.params):
            if n == 0:
                avg.copy_(p.detach())
            else:
                self._combine(avg, p.detach(), n)
        self.n_averaged += 1
        return True

    @torch.no_grad()
    def copy_to(self, params: nn.Module | Iterable[Tensor] | None = None) -> None:
        """Write the average into ``params`` (default: the tracked parameters themselves)."""
        targets = self.params if params is None else _params(params)
        if len(targets) != len(self.averages):
            raise ValueError(f"expected {len(self.averages)} parameters, got {len(targets)}")
        for t, avg in zip(targets, self.averages):
            t.copy_(avg)

    @contextlib.contextmanager
    def swapped(self) -> Iterator[None]:
        """Within the block the tracked parameters hold the average; their training values come back after it."""
        saved = [p.detach().clone() for p in self.params]
        self.copy_to()
        try:
            yield
        finally:
            with torch.no_grad():
                for p, s in zip(self.params, saved):
                    p.copy_(s)

    def state_dict(self) -> dict[str, Any]:
        """Tensors and ints only (``torch.load(weights_only=True)`` reads it); copies, not views of live state."""
        return {
            "averages": [a.clone() for a in self.averages],
            "n_averaged": self.n_averaged.clone(),
            "step": self.step.clone(),
            "start": self.start,
            "every": self.every,
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["averages"]) != len(self.averages):
            raise ValueError(f"expected {len(self.averages)} averaged tensors, got {len(state['averages'])}")
        for avg, saved in zip(self.averages, state["averages"]):
            avg.copy_(saved)
        self.n_averaged = state["n_averaged"].clone()
        self.step = state["step"].clone()
        self.start = int(state["start"])
        self.every = int(state["every"])


class EMA(ParameterAverage):
    """Exponential moving average of the parameters: the first averaged step copies them, then
    avg ← decay·avg + (1 − decay)·θ (as ``torch.optim.swa_utils.get_ema_multi_avg_fn(decay)``)."""

    def __init__(
        self, params: nn.Module | Iterable[Tensor], decay: float = 0.999, *, start: int = 1, every: int = 1
    ) -> None:
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0.0 <= decay <= 1.0:
            raise ValueError(f"decay must be a number in [0, 1], got {decay!r}")
        super().__init__(params, start=start, every=every)
        self.decay = float(decay)

    def _combine(self, avg: Tensor, p: Tensor, n: int) -> None:
        avg.lerp_(p, 1.0 - self.decay)

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "decay": self.decay}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.decay = float(state["decay"])


class SWA(ParameterAverage):
    """Equal-weight running average of the iterates from step ``start`` on, every ``every`` steps:
    avg ← avg + (θ − avg)/(n + 1) (as ``torch.optim.swa_utils.AveragedModel``'s default average, a lerp)."""

    def _combine(self, avg: Tensor, p: Tensor, n: int) -> None:
        avg.lerp_(p, 1.0 / (n + 1))
