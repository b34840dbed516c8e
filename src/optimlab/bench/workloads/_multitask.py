"""The multi-task workload contract: a workload whose training objective is a vector of task losses.

A :class:`MultiTaskWorkload` builds a :class:`MultiTaskTask`, a :class:`~._base.Task` that also returns one loss
per task (``task_losses(batch)``, shape ``(num_tasks,)``) and says which parameters every task shares (the trunk,
``shared_prefix``) and which belong to one task (the heads). Its scalar ``loss`` is the **sum** of the task losses
(equal weighting), so every single-loss optimizer runs on it unchanged; multi-task candidates (an optimizer with an
aggregator or a loss weighting, :mod:`optimlab.bench.multitask_methods`) use the per-task losses instead.

Single-loss workloads are untouched: this module extends :mod:`._base` without editing it, so the code hashes the
frozen suites pin stay as they are (a multi-task workload's own code hash also covers this module).
"""

from __future__ import annotations

import hashlib
import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from . import _base
from ._base import Task, Workload


@dataclass
class MultiTaskTask(Task):
    """A task with per-task losses. Build it with :meth:`create`.

    ``task_losses_fn(model, batch)`` returns the 1-D tensor of the ``len(task_names)`` task losses; parameters whose
    name starts with ``shared_prefix`` are shared by every task, the others are task-specific; the parameters under
    ``last_shared_prefix`` are the last shared layer (where GradNorm balances gradient norms)."""

    task_losses_fn: Callable[[nn.Module, Any], Tensor] | None = None
    task_names: tuple[str, ...] = ()
    shared_prefix: str = ""
    last_shared_prefix: str = ""

    @classmethod
    def create(
        cls,
        model: nn.Module,
        next_batch: Callable[[], Any],
        task_losses_fn: Callable[[nn.Module, Any], Tensor],
        eval_fn: Callable[[nn.Module], float],
        *,
        task_names: tuple[str, ...],
        shared_prefix: str,
        last_shared_prefix: str,
        param_types: dict[str, str] | None = None,
    ) -> MultiTaskTask:
        """A multi-task task; its scalar loss is ``task_losses_fn(model, batch).sum()``."""
        task = cls(
            model,
            next_batch,
            lambda m, batch: task_losses_fn(m, batch).sum(),
            eval_fn,
            dict(param_types or {}),
            task_losses_fn=task_losses_fn,
            task_names=tuple(task_names),
            shared_prefix=shared_prefix,
            last_shared_prefix=last_shared_prefix,
        )
        task.check()
        return task

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    def check(self) -> None:
        """``ValueError`` naming the field when the split of the parameters or the task list is unusable."""
        if self.task_losses_fn is None:
            raise ValueError("task_losses_fn is required for a multi-task task")
        if self.num_tasks < 2:
            raise ValueError(f"task_names must name at least 2 tasks, got {self.task_names!r}")
        if not self.shared_parameters():
            raise ValueError(f"shared_prefix {self.shared_prefix!r} matches no trainable parameter")
        if not self.last_shared_prefix.startswith(self.shared_prefix) or not self.last_shared_parameters():
            raise ValueError(
                f"last_shared_prefix {self.last_shared_prefix!r} must select shared parameters "
                f"(under shared_prefix {self.shared_prefix!r})"
            )

    def task_losses(self, batch: Any) -> Tensor:
        """The task losses on ``batch``: a 1-D tensor of ``num_tasks`` scalars, with their graph."""
        losses = self.task_losses_fn(self.model, batch)
        if losses.shape != (self.num_tasks,):
            raise ValueError(f"task_losses_fn must return shape ({self.num_tasks},), got {tuple(losses.shape)}")
        return losses

    def _selected(self, keep: Callable[[str], bool]) -> list[nn.Parameter]:
        return [p for name, p in self.model.named_parameters() if p.requires_grad and keep(name)]

    def shared_parameters(self) -> list[nn.Parameter]:
        return self._selected(lambda name: name.startswith(self.shared_prefix))

    def task_parameters(self) -> list[nn.Parameter]:
        """The task-specific parameters (each used by one task's loss only)."""
        return self._selected(lambda name: not name.startswith(self.shared_prefix))

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return self._selected(lambda name: name.startswith(self.last_shared_prefix))


class MultiTaskWorkload(Workload):
    """A workload whose :meth:`build` returns a :class:`MultiTaskTask` with :attr:`num_tasks` tasks."""

    num_tasks: ClassVar[int]

    def build(self, seed: int, smoke: bool = False, device: str | torch.device = "cpu") -> MultiTaskTask:
        task = super().build(seed, smoke, device)
        if not isinstance(task, MultiTaskTask) or task.num_tasks != self.num_tasks:
            raise TypeError(f"{self.id}: a multi-task workload must build a MultiTaskTask of {self.num_tasks} tasks")
        return task

    def code_hash(self) -> str:
        """sha256 of the workload's module, of :mod:`._base` and of this contract module (16 hex digits)."""
        h = hashlib.sha256()
        for name in dict.fromkeys((type(self).__module__, _base.__name__, __name__)):
            h.update(inspect.getsource(sys.modules[name]).encode())
        return h.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "tasks": self.num_tasks}
