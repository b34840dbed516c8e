"""What ``compile=True`` (and a ``torch.compile`` around the step) runs: the per-bucket update loops, with the
non-finite skip folded in, compiled once per optimizer class and called per chunk of same-shape tensors; batched
updates (a bucket in one call); and the inductor backend that computes costly 0-d scalars once per kernel."""

from __future__ import annotations

import operator
import types
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


def batched(bucket_update: Callable) -> Callable[[Callable], Callable]:
    """Decorator of a per-tensor update that also has a bucket form, ``bucket_update(params, grads, states,
    steps=steps, **hyper)`` with lists of one shape, dtype and device: the pipeline calls that form once per
    bucket of two or more such tensors (the class's layouts group same-shape matrices), so their matrix products
    batch (Muon's Newton–Schulz)."""

    def mark(update: Callable) -> Callable:
        update.bucket = bucket_update
        return update

    return mark


#: whether :func:`batched` forms run on CPU tensors too. Off: on CPU a batched matrix product is slower than a
#: loop of 2-D ones (Newton–Schulz of 25 matrices 892 × 223, one thread: bf16 159 vs 139 ms, fp32 372 vs 306 ms;
#: Muon's step on the 10M-parameter set of benchmarks/step_time.py 1.35x slower batched), while on a GPU one
#: batched call replaces a kernel launch per matrix and product
BATCH_ON_CPU = False


def update_bucket(update: Callable, params, grads, states, steps, hyper: dict[str, Any]) -> None:
    """The updates of one bucket (step counters already advanced): one call of the update's :func:`batched` form
    (tensors of one shape, dtype and device, not on CPU unless :data:`BATCH_ON_CPU`), or one call per tensor. The
    same function runs eagerly, inline under a ``torch.compile`` or compiled."""
    bucket = getattr(update, "bucket", None)
    if (
        bucket is not None
        and len(params) > 1
        and (BATCH_ON_CPU or params[0].device.type != "cpu")
        and len({(p.shape, p.dtype, p.device) for p in params}) == 1
    ):
        bucket(params, grads, states, steps=steps, **hyper)
        return
    for p, g, state, step in zip(params, grads, states, steps):
        update(p, g, *state, step=step, **hyper)


def apply_group(update: Callable, params, grads, states, steps, hyper: dict[str, Any]) -> None:
    """The group loop; the same function runs eagerly or under ``torch.compile``."""
    for step in steps:
        step += 1
    update_bucket(update, params, grads, states, steps, hyper)


def large_norm(dtype: torch.dtype) -> float:
    """The ℓ2 norm from which a finite gradient counts as large (its update may overflow): the fourth root of the
    dtype's range (4.3e9 for fp32), below which squares, fourth powers and their sums stay finite."""
    return torch.finfo(dtype if dtype.is_floating_point else torch.float32).max ** 0.25


#: codes returned by :func:`apply_group_skipping`, per tensor
NONFINITE_GRADIENT, UPDATED, LARGE_GRADIENT = 0, 1, 2


def apply_group_skipping(
    update: Callable, params, grads, states, steps, hyper: dict[str, Any], guard_large: bool = True
) -> Tensor:
    """The group loop under the ``"skip"``/``"raise"`` policies, for ``torch.compile``: returns one code per tensor:
    ``UPDATED``, ``NONFINITE_GRADIENT`` (a NaN/Inf entry) or ``LARGE_GRADIENT`` (finite, ℓ2 norm ≥
    :func:`large_norm`: its update may overflow). The tensors (parameter, state, step counter) of a tensor not
    updated keep their old values; the caller re-runs a large one eagerly, on a snapshot whose result it checks.
    ``guard_large=False`` (the user's own compile, where no eager re-run can follow) updates large ones in the graph.

    Written as update-then-select so that inductor fuses the test's reductions, the update and the selection
    into one kernel per tensor (the ``clone``s are not materialised: the kernel reduces over the gradient, then
    updates with the old values still in registers). The finiteness test is ``sum(g - g) == 0``: ``g - g`` is 0
    for finite entries and NaN for NaN/±Inf, so the sum is exact (no overflow of large finite values) and is a
    plain vectorised float reduction, measured 2.2x faster than ``isfinite(g).all()`` under inductor on CPU
    (tests/test_base_step.py checks that the compiler does not fold it away); ``sum(g * g)`` (the squared norm,
    inf when it overflows) reads the same values in the same loop.
    """
    codes, oks, saved = [], [], []
    for p, g, state, step in zip(params, grads, states, steps):
        finite = (g - g).sum() == 0
        small = (g * g).sum() < large_norm(g.dtype) ** 2 if guard_large else torch.ones((), dtype=torch.bool)
        oks.append(finite & small)
        tensors = (p, *state, step)
        saved.append([(t, t.clone()) for t in tensors])
        codes.append(torch.where(finite, torch.where(small, UPDATED, LARGE_GRADIENT), NONFINITE_GRADIENT))
    apply_group(update, params, grads, states, steps, hyper)
    for ok, pairs in zip(oks, saved):
        for t, old in pairs:
            t.copy_(torch.where(ok, t, old))
    return torch.stack(codes)


#: most same-shape tensors per call of a compiled loop (``compile=True``; 0: the whole bucket in one call). A graph
#: serves every chunk of its length (sizes dynamic after a rank's second shape), so cold compilation grows with CHUNK
#: and the per-call cost (~35 µs of guards and dispatch on CPU) with 1 / CHUNK. AdamW, 10M fp32 values in 100
#: tensors of 4 shapes, inductor caches off (benchmarks/compile_time.py; a one-op graph costs 11.6 s cold), cold s /
#: warm step ÷ torch fused AdamW: whole bucket 96 / 1.64, 8: 43 / 1.85, 4: 31 / 1.86, 1: 16 / 2.08
CHUNK = 4


def compiled_loop(cls: type, skipping: bool) -> Callable:
    """The compiled loop of optimizer class ``cls`` (:func:`apply_group_skipping` if ``skipping``, else
    :func:`apply_group`), called per chunk of a bucket (:func:`chunks`); it returns the codes of the whole bucket
    (in its order) when ``skipping``."""
    loop = apply_group_skipping if skipping else apply_group
    attr = f"_{loop.__name__}_code"
    if attr not in cls.__dict__:
        # dynamo caches compiled graphs per code object, with a small limit; one code object per
        # optimizer class keeps several algorithms in one process from evicting each other
        setattr(cls, attr, loop.__code__.replace())
    name = f"{loop.__name__}_{cls.__name__}"
    fn = types.FunctionType(getattr(cls, attr), loop.__globals__, name, loop.__defaults__)
    compiled = torch.compile(fn, dynamic=None, backend=inductor_hoisting_scalars)

    def run(update: Callable, params, grads, states, steps, hyper: dict[str, Any]) -> Tensor | None:
        order, codes = [], []
        for ix in chunks(params):
            out = compiled(update, *([seq[i] for i in ix] for seq in (params, grads, states, steps)), hyper)
            order += ix
            codes.append(out)
        if not skipping:
            return None
        joined = torch.cat(codes)
        return joined if order == sorted(order) else joined[torch.tensor(order).argsort()]

    return run


def chunks(params: list[Tensor]) -> list[list[int]]:
    """The indices of ``params`` grouped by shape, dtype and device, in pieces of at most :data:`CHUNK`."""
    if not CHUNK:
        return [list(range(len(params)))]
    groups: dict[tuple, list[int]] = {}
    for i, p in enumerate(params):
        groups.setdefault((tuple(p.shape), p.dtype, p.device), []).append(i)
    return [same[j : j + CHUNK] for same in groups.values() for j in range(0, len(same), CHUNK)]


_INPLACE_OPERATORS = frozenset(
    (operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ipow, operator.ifloordiv, operator.imod)
)
#: 0-d operations that cost about as much as a load when inlined (no libm call): not worth a kernel of their own
_CHEAP_SCALAR_OPS = frozenset(
    """add sub mul div truediv floordiv neg pos abs rsub radd rmul rtruediv true_divide multiply subtract
    iadd isub imul itruediv maximum minimum max min clamp clamp_min clamp_max where lt le gt ge eq ne
    logical_not reciprocal sign to float double half bfloat16 long int bool type type_as clone detach
    contiguous view reshape squeeze unsqueeze expand getitem""".split()
)


def _op_name(node: torch.fx.Node) -> str:
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    return name.strip("_")


def hoist_scalars(gm: torch.fx.GraphModule) -> int:
    """Make inductor compute each costly 0-d intermediate that feeds a full-size op once, in its own kernel.

    Inductor otherwise inlines 0-d computations (``lr / (1 - beta1**step)``, ``sqrt(1 - beta2**step)``) into
    the elementwise kernel that consumes them, and because its C++ is built with ``-fmath-errno`` the compiler
    cannot hoist the ``pow``/``sqrt``/``exp`` calls out of the vector loop: they are recomputed for every 16
    elements, which measured ~2x slower than torch's fused AdamW on CPU. ``as_strided`` to the same 0-d shape
    is an identity view whose lowering realizes its input. Only chains that contain a libm call are hoisted
    (cheap arithmetic stays inlined: every hoisted scalar adds fusion work to inductor's scheduler, whose time
    grows quickly with their number); in-place nodes and graph inputs are left alone.
    """
    costly: set[torch.fx.Node] = set()  # 0-d nodes, not yet hoisted, whose computation calls libm
    count = 0
    for node in list(gm.graph.nodes):
        if node.op not in ("call_function", "call_method"):
            continue
        value = node.meta.get("example_value")
        if not isinstance(value, Tensor) or value.dim() != 0:
            continue
        name = _op_name(node)
        if name not in _CHEAP_SCALAR_OPS or any(arg in costly for arg in node.all_input_nodes):
            costly.add(node)
        if node not in costly or node.target in _INPLACE_OPERATORS or _is_inplace_method(node):
            continue
        if not any(_is_full_size(user) for user in node.users):
            continue
        with gm.graph.inserting_after(node):
            hoisted = gm.graph.call_function(torch.as_strided, (node, (), ()))
        hoisted.meta["example_value"] = value
        node.replace_all_uses_with(hoisted, delete_user_cb=lambda user, new=hoisted: user is not new)
        count += 1
    if count:
        gm.recompile()
    return count


def _is_inplace_method(node: torch.fx.Node) -> bool:
    name = node.target if isinstance(node.target, str) else getattr(node.target, "__name__", "")
    return name.endswith("_") and not name.endswith("__")


def _is_full_size(node: torch.fx.Node) -> bool:
    value = node.meta.get("example_value")
    return isinstance(value, Tensor) and value.dim() > 0


def inductor_hoisting_scalars(gm: torch.fx.GraphModule, example_inputs: list[Any]) -> Callable:
    """torch.compile's default backend (inductor), after :func:`_hoist_scalars`."""
    hoist_scalars(gm)
    return torch._dynamo.lookup_backend("inductor")(gm, example_inputs)


def as_tensor(value: Any) -> Any:
    """Numbers become 0-d float64 tensors for the compiled path (no recompile when they change)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, float) and value - value != 0:  # ±inf, nan (math.isfinite breaks a traced graph)
        return value
    return torch.tensor(float(value), dtype=torch.float64)
