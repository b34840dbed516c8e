"""The Jacobian step: per-task gradients of the shared parameters, an aggregator, the result written to ``.grad``.

Jacobian descent (Quinton & Rey, 2024, *Jacobian Descent for Multi-Objective Optimization*, arXiv:2406.16232)
replaces the gradient of one scalar loss by an aggregation of the Jacobian of a vector of losses::

    losses = torch.stack([loss_a, loss_b, loss_c])        # one loss per task (or per sample: IWRM)
    optimlab.multitask.jacobian_backward(losses, model.trunk.parameters(), UPGrad(),
                                         task_params=model.heads.parameters())
    optimizer.step()                                      # any optimizer

The Jacobian is kept as one block per shared parameter (m × the parameter's shape); the aggregator only sees the
m×m Gramian G = Σ_p J_p J_pᵀ and returns task weights w, and each parameter receives w·J_p. Task-specific
parameters (``task_params``) receive the gradient of the summed losses, which for a head used by one task is that
task's own gradient.

**DDP.** With ``all_reduce=True`` every rank all-reduces (averages) its per-task gradients — the shared blocks and
the task parameters' gradients, flattened into one buffer, in one collective — and then aggregates: every rank
computes the same weights from the same averaged Jacobian, which equals the single-process Jacobian of the global
batch (for losses that are means over equally sized shards). Run the model's forward outside DDP's gradient
synchronisation (a plain module, or ``with ddp_model.no_sync():``): averaging *after* a non-linear aggregation, as
DDP's hooks would, is not the aggregation of the averaged Jacobian.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["gramian", "jacobian", "jacobian_backward"]


def _as_list(losses: Tensor | Sequence[Tensor]) -> list[Tensor]:
    if isinstance(losses, Tensor):
        if losses.dim() != 1:
            raise ValueError(f"losses must be a 1-D tensor (one loss per objective), got shape {tuple(losses.shape)}")
        return list(losses.unbind(0))
    out = list(losses)
    for i, loss in enumerate(out):
        if loss.numel() != 1:
            raise ValueError(f"losses[{i}] must be a scalar, got shape {tuple(loss.shape)}")
    return [loss.reshape(()) for loss in out]


def _zeros_block(m: int, p: Tensor) -> Tensor:
    return torch.zeros((m, *p.shape), dtype=p.dtype, device=p.device)


def jacobian(
    losses: Tensor | Sequence[Tensor],
    params: Iterable[Tensor],
    *,
    retain_graph: bool = False,
    batched: bool = False,
) -> list[Tensor]:
    """The Jacobian of ``losses`` (m scalars) with respect to ``params``, one block per parameter of shape
    ``(m, *p.shape)`` (zeros where a loss does not depend on a parameter).

    ``batched=False`` runs one backward per loss; ``batched=True`` runs one vectorized backward over the rows of
    the identity (``is_grads_batched``, through ``torch.vmap``; faster for many objectives, e.g. per-sample losses,
    where every operation of the model supports vmap)."""
    params = list(params)
    rows = _as_list(losses)
    m = len(rows)
    if m == 0:
        raise ValueError("losses is empty")
    if batched:
        vec = torch.stack(rows)
        eye = torch.eye(m, dtype=vec.dtype, device=vec.device)
        grads = torch.autograd.grad(
            vec, params, grad_outputs=eye, retain_graph=retain_graph, allow_unused=True, is_grads_batched=True
        )
        return [_zeros_block(m, p) if g is None else g for g, p in zip(grads, params)]
    blocks = [_zeros_block(m, p) for p in params]
    for i, loss in enumerate(rows):
        keep = retain_graph or i < m - 1
        grads = torch.autograd.grad(loss, params, retain_graph=keep, allow_unused=True)
        for block, g in zip(blocks, grads):
            if g is not None:
                block[i] = g
    return blocks


def gramian(blocks: Sequence[Tensor]) -> Tensor:
    """G = J Jᵀ = Σ_p J_p J_pᵀ (float64, m×m) from per-parameter Jacobian blocks, without concatenating them."""
    if not blocks:
        raise ValueError("no Jacobian blocks")
    m = blocks[0].shape[0]
    out = torch.zeros((m, m), dtype=torch.float64, device=blocks[0].device)
    for b in blocks:
        flat = b.reshape(m, -1).to(torch.float64)
        out += flat @ flat.T
    return out


def _accumulate_grad(p: Tensor, g: Tensor) -> None:
    g = g.to(p.dtype)
    if p.grad is None:
        p.grad = g.clone()
    else:
        p.grad.add_(g)


def _all_reduce_mean(tensors: list[Tensor], process_group: Any) -> list[Tensor]:
    """Average ``tensors`` over the ranks of ``process_group`` with one all-reduce of one flat buffer."""
    import torch.distributed as dist

    if not tensors:
        return tensors
    dtype = tensors[0].dtype
    flat = torch.cat([t.reshape(-1).to(dtype) for t in tensors])
    dist.all_reduce(flat, group=process_group)
    flat /= dist.get_world_size(group=process_group)
    out, start = [], 0
    for t in tensors:
        out.append(flat[start : start + t.numel()].view(t.shape).to(t.dtype))
        start += t.numel()
    return out


def jacobian_backward(
    losses: Tensor | Sequence[Tensor],
    shared_params: Iterable[Tensor],
    aggregator: Callable[[Tensor], Tensor],
    *,
    task_params: Iterable[Tensor] = (),
    all_reduce: bool = False,
    process_group: Any = None,
    batched: bool = False,
    retain_graph: bool = False,
) -> Tensor | None:
    """Backward for a vector of losses: the shared parameters' ``.grad`` receives the aggregation of their
    Jacobian, the task parameters' ``.grad`` the gradient of ``sum(losses)`` (gradients accumulate, as with
    ``backward``). Returns the task weights w (float64, m) when ``aggregator`` has ``weights(gramian)`` (every
    aggregator of this package: d = Jᵀw), else None (a plain callable J → d gets the concatenated Jacobian).

    ``all_reduce=True``: average the per-task gradients over ``process_group`` (default: the world) in one
    all-reduce before aggregating (see the module docstring)."""
    shared = [p for p in shared_params]
    task = [p for p in task_params]
    if not shared:
        raise ValueError("shared_params is empty")
    rows = _as_list(losses)
    blocks = jacobian(rows, shared, retain_graph=bool(task) or retain_graph, batched=batched)
    task_grads: list[Tensor] = []
    if task:
        grads = torch.autograd.grad(torch.stack(rows).sum(), task, retain_graph=retain_graph, allow_unused=True)
        task_grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, task)]
    if all_reduce:
        reduced = _all_reduce_mean(blocks + task_grads, process_group)
        blocks, task_grads = reduced[: len(blocks)], reduced[len(blocks) :]
    weights_fn = getattr(aggregator, "weights", None)
    if callable(weights_fn):
        w = weights_fn(gramian(blocks)).to(torch.float64)
        for p, b in zip(shared, blocks):
            _accumulate_grad(p, torch.tensordot(w.to(b.dtype), b, dims=1))
    else:
        w = None
        m = blocks[0].shape[0]
        d = aggregator(torch.cat([b.reshape(m, -1) for b in blocks], dim=1))
        start = 0
        for p in shared:
            _accumulate_grad(p, d[start : start + p.numel()].view(p.shape))
            start += p.numel()
    for p, g in zip(task, task_grads):
        _accumulate_grad(p, g)
    return w
