"""The non-finite policy's machinery (the pipeline in ``optim/_base.py`` applies it): the test (per tensor: NaN/Inf,
finite, or finite but large enough for an update to overflow; agreed over the device mesh for sharded tensors) and
the guarded updates (snapshot, update, result test, restore)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from ._compiled import large_norm


def finite_mask(tensors: list[Tensor]) -> list[bool]:
    """Whether each tensor is free of NaN/Inf (the test behind the non-finite policy); see :func:`screen_levels`."""
    return [level != NONFINITE for level in screen_levels(tensors)]


#: levels of :func:`screen_levels`
NONFINITE, FINITE, LARGE = 0, 1, 2


def screen_levels(tensors: list[Tensor]) -> list[int]:
    """Per tensor: ``NONFINITE`` (a NaN/Inf entry), ``LARGE`` (finite, with an ℓ2 norm of at least
    :func:`large_norm`: an update can overflow) or ``FINITE``.

    One ℓ2-norm reduction per tensor (reads it once, allocates nothing; NaN and Inf propagate into it) and one host
    read-back for the whole list settle the common case; a norm that overflowed from finite entries is told apart
    by an exact check of that tensor only.

    A sharded tensor (DTensor, e.g. under FSDP2) is tested on its local shard and the verdict is agreed over its
    device mesh (one all-reduce of the levels per mesh), so every rank takes the same decision for a parameter.
    """
    if not tensors:
        return []
    local = [_local(t) for t in tensors]
    values = [t.coalesce().values() if t.is_sparse else t for t in local]  # sparse gradients (SGD): stored values
    norms = [torch.linalg.vector_norm(t) for t in values]
    norms = (torch.stack(norms) if len(norms) > 1 else norms[0].reshape(1)).tolist()
    levels = []
    for t, norm in zip(values, norms):
        if not math.isfinite(norm):
            levels.append(LARGE if bool(torch.isfinite(t).all()) else NONFINITE)
        else:
            levels.append(LARGE if norm >= large_norm(t.dtype) else FINITE)
    meshes: dict[int, tuple[Any, list[int]]] = {}
    for i, t in enumerate(tensors):
        if t is not local[i]:
            meshes.setdefault(id(t.device_mesh), (t.device_mesh, []))[1].append(i)
    for mesh, index in meshes.values():
        # most severe verdict wins: nonfinite (2) > large (1) > finite (0)
        severity = torch.tensor([float(_SEVERITY[levels[i]]) for i in index], device=local[index[0]].device)
        for dim in range(mesh.ndim):
            torch.distributed.all_reduce(severity, op=torch.distributed.ReduceOp.MAX, group=mesh.get_group(dim))
        for i, flag in zip(index, severity.tolist()):
            levels[i] = _LEVEL_OF_SEVERITY[int(flag)]
    return levels


_SEVERITY = {FINITE: 0, LARGE: 1, NONFINITE: 2}
_LEVEL_OF_SEVERITY = {v: k for k, v in _SEVERITY.items()}


def _local(t: Tensor) -> Tensor:
    """The local shard of a DTensor, the tensor itself otherwise."""
    to_local = getattr(t, "to_local", None)
    return to_local() if callable(to_local) else t


def run_guarded(opt: Any, tasks: list[tuple[Callable, Any, list[Tensor], float, dict[str, Any]]]) -> None:
    """The guarded updates of ``opt`` (see ``Optimizer._apply``): snapshot, update, test the result (NaN/Inf,
    or a ``torch.linalg.LinAlgError``), restore on failure and apply the policy."""
    failed = []
    for update, s, state, step, hyper in tasks:
        s.snapshot()
        try:
            update(s.work, s.grad, *state, step=step, **hyper)
            exempt = opt.unchecked_state
            checked = [s.work, *(v for k, v in s.state.items() if k != "step" and k not in exempt)]
            ok = all(finite_mask([t for t in checked if t.is_floating_point() or t.is_complex()]))
        except torch.linalg.LinAlgError:
            ok = False
        failed.append(not ok)
    if opt.nonfinite == "raise" and any(failed):
        for _, s, *_ in tasks:
            s.restore()
        raise FloatingPointError(
            f"{type(opt).__name__}: the update of {sum(failed)} parameter(s) gave NaN/Inf or failed in its "
            "linear algebra this step (large gradients?); nothing was modified"
        )
    for (_, s, *_), bad in zip(tasks, failed):
        if bad:
            s.restore()
            s.group["nonfinite_skips"] += 1
        elif s.copied:
            opt._write_back(s.p, s.work, s.state["step"])
