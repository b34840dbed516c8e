"""Multi-task candidates: an optimizer combined with a multi-task method, named ``<optimizer>+<method>``.

``adamw+upgrad`` trains a multi-task workload (:class:`~optimlab.bench.workloads.MultiTaskWorkload`) with AdamW on
the UPGrad aggregation of the per-task gradients; a bare optimizer id (``adamw``) trains the sum of the task losses
(equal weighting) like any single-loss workload. The optimizer part is any id :mod:`~optimlab.bench.adapters`
resolves (``torch:AdamW`` too) and brings its defaults and search space; the method runs with its paper's defaults
through :mod:`optimlab.multitask`'s public API:

* Jacobian aggregators (``upgrad``, ``mgda``, ``pcgrad``, ``cagrad``, ``imtlg``):
  :func:`optimlab.multitask.jacobian_backward` over the workload's shared parameters, the heads getting their own
  task's gradient;
* ``gradnorm``: :class:`optimlab.multitask.GradNorm` balancing the gradient norms at the last shared layer.

**Gradient-evaluation rule.** One gradient evaluation is one backward pass through the shared trunk. A Jacobian
step with m tasks runs m of them (one per task loss; the heads' gradient rides along) and counts m; GradNorm counts
1 (its per-task norms are partial backwards from the heads to the last shared layer: they show in the step time,
not in G); a closure-requiring optimizer (SAM) pays this for every closure call. Under the default equal-compute
budget (``budget_unit="grads"``) an aggregator candidate therefore gets 1/m of equal weighting's steps.

A method is applicable only to multi-task workloads, and not with optimizers whose step needs Hessian-vector
products, logits or class-split losses (:func:`not_applicable`). The per-run state (GradNorm's weights, PCGrad's
random generator seeded from the run seed) is created at the run's first step and lives as long as its optimizer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import sys
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from .. import multitask as mt
from . import workloads as W

if TYPE_CHECKING:
    from .adapters import AlgorithmHandle


@dataclass(frozen=True)
class Method:
    """A multi-task method the runner can apply: its name, paper, kind (``jacobian`` or ``gradnorm``) and, for
    Jacobian methods, the aggregator factory (called with a seeded ``torch.Generator``)."""

    name: str
    paper: str
    kind: str
    aggregator: Callable[[torch.Generator], mt.Aggregator] | None = None


def _jacobian(name: str, paper: str, make: Callable[[torch.Generator], mt.Aggregator]) -> Method:
    return Method(name, paper, "jacobian", make)


#: method name -> :class:`Method`
METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        _jacobian("upgrad", "Quinton & Rey 2024, arXiv:2406.16232", lambda gen: mt.UPGrad()),
        _jacobian("mgda", "Sener & Koltun 2018, arXiv:1810.04650", lambda gen: mt.MGDA()),
        _jacobian("pcgrad", "Yu et al. 2020, arXiv:2001.06782", lambda gen: mt.PCGrad(generator=gen)),
        _jacobian("cagrad", "Liu et al. 2021, arXiv:2110.14048", lambda gen: mt.CAGrad()),
        _jacobian("imtlg", "Liu et al. 2021 (ICLR), IMTL-G", lambda gen: mt.IMTLG()),
        Method("gradnorm", "Chen et al. 2018, arXiv:1711.02257", "gradnorm"),
    )
}


def combine(base: AlgorithmHandle, method_name: str, display_id: str) -> AlgorithmHandle:
    """The handle of ``base`` trained with the multi-task method ``method_name`` (``ValueError`` naming the known
    methods otherwise); its source hash covers the optimizer's and the method's code."""
    if base.multitask is not None:
        raise ValueError(f"{display_id}: one multi-task method per candidate")
    if method_name not in METHODS:
        raise ValueError(
            f"unknown multi-task method {method_name!r} in {display_id!r}; known: {', '.join(METHODS)} "
            "(a bare optimizer id trains the sum of the task losses)"
        )
    h = hashlib.sha256(base.source_hash.encode())
    for module in ("optimlab.multitask.aggregators", "optimlab.multitask.jacobian", "optimlab.multitask.gradnorm"):
        h.update(inspect.getsource(sys.modules[module]).encode())
    h.update(inspect.getsource(sys.modules[__name__]).encode())
    return dataclasses.replace(base, id=display_id, multitask=METHODS[method_name], source_hash=h.hexdigest()[:16])


def not_applicable(handle: AlgorithmHandle, workload: W.Workload) -> str | None:
    """Why the multi-task candidate ``handle`` cannot run on ``workload`` (None when it can, or when ``handle``
    is a plain optimizer)."""
    if handle.multitask is None:
        return None
    if not isinstance(workload, W.MultiTaskWorkload):
        known = ", ".join(w.id for w in W.all_workloads() if isinstance(w, W.MultiTaskWorkload))
        return (
            f"{handle.id} aggregates per-task losses and workload {workload.id} has one loss "
            f"(multi-task workloads: {known})"
        )
    if handle.requires_hvp or handle.requires_logits or handle.requires_head_tail:
        return (
            f"{handle.id}: the multi-task step feeds plain gradients; an optimizer that needs Hessian-vector "
            "products, logits or class-split losses in its closure does not compose with it here"
        )
    return None


class _Run:
    """One run's multi-task state and backward (see the module docstring)."""

    def __init__(self, method: Method, task: W.MultiTaskTask) -> None:
        self.method = method
        self.shared = task.shared_parameters()
        self.heads = task.task_parameters()
        gen = torch.Generator().manual_seed(torch.initial_seed())  # the run seed (Workload.build seeds torch)
        self.aggregator = method.aggregator(gen) if method.aggregator is not None else None
        self.gradnorm = mt.GradNorm(task.num_tasks) if method.kind == "gradnorm" else None
        self.last_shared = task.last_shared_parameters()
        #: gradient evaluations of one backward (the module docstring's rule)
        self.grads = task.num_tasks if method.kind == "jacobian" else 1

    def backward(self, losses: torch.Tensor) -> None:
        if self.gradnorm is not None:
            self.gradnorm.backward(losses, self.last_shared)
        else:
            mt.jacobian_backward(losses, self.shared, self.aggregator, task_params=self.heads)


_RUNS: weakref.WeakKeyDictionary[torch.optim.Optimizer, _Run] = weakref.WeakKeyDictionary()


def train_step(
    task: W.Task, optimizer: torch.optim.Optimizer, handle: AlgorithmHandle, batch: Any
) -> tuple[float, int]:
    """One optimizer step of a multi-task candidate on ``batch``: ``(sum of the task losses before the step,
    gradient evaluations used)`` — the runner's ``train_step`` contract."""
    if not isinstance(task, W.MultiTaskTask):
        raise TypeError(f"{handle.id} needs a multi-task workload (a MultiTaskTask), got {type(task).__name__}")
    run = _RUNS.get(optimizer)
    if run is None:
        run = _RUNS[optimizer] = _Run(handle.multitask, task)
    losses: list[float] = []

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        task_losses = task.task_losses(batch)
        run.backward(task_losses)
        total = task_losses.detach().sum()
        losses.append(float(total))
        return total

    if handle.requires_closure:
        optimizer.step(closure)
    else:
        closure()
        optimizer.step()
    return (losses[0] if losses else float("nan")), len(losses) * run.grads
