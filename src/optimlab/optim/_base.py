"""The one optimizer base class and its step pipeline.

A subclass declares its hyperparameter rules, the names of its per-parameter state tensors, a function that
creates that state, and ONE per-tensor update function (the single source of truth for its math). Every step of
every optimlab optimizer goes through one pipeline, :meth:`Optimizer.step`:

1. **closure**: evaluated first when given (required for ``requires_closure`` classes);
2. **gather**: the parameters with gradients as :class:`Slot` s (working views, lazily created state);
3. **non-finite policy** (``nonfinite=``): ``"skip"`` (default) leaves a parameter with a NaN/Inf gradient and its
   state untouched for that step and counts it in ``group["nonfinite_skips"]``; ``"raise"`` raises
   ``FloatingPointError`` before anything moves; ``"propagate"`` applies the update as torch.optim does. One
   implementation (:meth:`Optimizer._screen`), also used by ``prepare`` hooks for curvature estimates and losses.
   It covers the update's *result* too: a finite gradient large enough to overflow inside the update (ℓ2 norm ≥
   the dtype's range^¼, :func:`screen_levels`; the same reduction that tests finiteness) and every update of a
   ``guard_every_update`` class (linear algebra: eigh, Cholesky, QR, SVD, solves) runs on a snapshot of its
   parameter and state; a NaN/Inf result or a ``torch.linalg.LinAlgError`` restores it and the policy applies in
   the same step. Ordinary gradients of elementwise rules pay nothing more than the gradient test;
4. **prepare** (public hook, :meth:`Optimizer.prepare`): the whole-model part of a step (curvature refresh, global
   step sizes, re-evaluating the closure); it may leave parameters out;
5. **update**: one call of the update function per parameter, bucketed by (param group, :meth:`Optimizer.layout`)
   so that parameters with different state layouts (a projected matrix and a bias; Muon's matrices and its
   fallback's vectors) each get their own function (:meth:`Optimizer.update_function`) and keyword arguments
   (:meth:`Optimizer.hyper`, derived from the update function's keyword-only parameters by default); an update
   with a ``batched`` form (``_compiled.py``) takes a bucket of same-shape tensors in one call (Muon's matrices).

Around that, the same way for every algorithm:

* torch.optim semantics: param groups, ``step(closure)``, ``maximize``, ``zero_grad``, LR schedulers,
  ``state_dict``/``load_state_dict`` (bit-exact, loads with ``torch.load(weights_only=True)``, state keeps its
  own dtype instead of being cast to the parameter's, no aliasing between a saved dict and the live state; a
  state dict that does not fit is refused at load, naming the key and the parameter), torch's implementation
  flags (``foreach`` has no effect, ``fused=True`` is ``compile=True``): see ``_compat.py`` and
  docs/compatibility.md;
* validation: every hyperparameter is checked when a group is added, ``ValueError`` names the field;
* dtypes: math in fp32 for bf16/fp16 parameters (state in fp32), optional stochastic rounding on write-back;
  complex parameters are updated through ``torch.view_as_real`` (elementwise rules only);
* execution: an eager per-tensor loop (measured faster than ``torch._foreach_*`` on CPU), or ``compile=True``,
  which compiles the bucket loop (called per chunk of same-shape tensors: one graph per shape and chunk length,
  dynamic sizes after a rank's second shape) with hyperparameters passed as 0-d tensors so a changing learning
  rate does not recompile. Integer hyperparameters (rules with ``integer=True``: iteration counts, periods, ranks) stay
  Python ints: they shape the computation, and changing one recompiles. Under ``compile=True`` the ``"skip"``
  policy is folded into the compiled step (unless the class has a ``prepare`` hook, which needs the policy's
  decision first): each gradient's test (NaN/Inf, and a norm large enough to overflow) and its guarded update
  (``where(ok, new, old)``) become one fused kernel per tensor instead of a separate eager pass over every gradient
  before the step; a large gradient's tensor is left as it was and re-run on the eager guarded path. The test
  still reads each gradient once more (measured +34% over ``"propagate"`` for AdamW on CPU, 1M params in 20
  tensors, where the update itself is memory-bound; a result test in the graph measured +139%).
  Under the user's own ``torch.compile`` (around ``step`` or the whole training step) the ``"skip"`` count is not
  read inside the graph (it reaches ``group["nonfinite_skips"]`` at the next eager ``step()`` or ``state_dict()``),
  and a large gradient is updated in the graph without the eager result check (that check needs the host).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Hashable, Iterable
from functools import partial
from itertools import groupby
from typing import Any, ClassVar

import torch
from torch import Tensor

from . import _compat, _kernels
from ._compiled import (
    LARGE_GRADIENT,
    NONFINITE_GRADIENT,
    UPDATED,
    apply_group,
    apply_group_skipping,
    as_tensor,
    compiled_loop,
    update_bucket,
)
from ._nonfinite import LARGE, NONFINITE, run_guarded, screen_levels
from ._rules import OneOf, Rule
from ._slot import LAYOUT, Slot, check_compilable_state

LOW_PRECISION = (torch.float16, torch.bfloat16)
NONFINITE_POLICIES = ("skip", "raise", "propagate")
#: parameter dtypes the update does not see directly (fp32 copies of low precision, real views of complex)
_VIEWED_DTYPES = frozenset((*LOW_PRECISION, torch.complex32, torch.complex64, torch.complex128))


def _advance(steps: list[Tensor]) -> list[float]:
    """Add one to every step counter (0-d tensors, in place) and return the new values as Python floats."""
    torch._foreach_add_(steps, 1)
    try:
        return torch.stack(steps).tolist()  # one read-back instead of one ``.item()`` per tensor
    except RuntimeError:  # counters on several devices
        return [s.item() for s in steps]


_KEYWORDS: dict[Callable, tuple[str, ...]] = {}


def _update_keywords(update: Callable) -> tuple[str, ...]:
    """The keyword-only parameters of an update function (of its bucket form if it has one), ``step``/``steps``
    excluded (cached per function)."""
    names = _KEYWORDS.get(update)
    if names is None:
        params = inspect.signature(getattr(update, "bucket", update)).parameters.values()
        keyword = inspect.Parameter.KEYWORD_ONLY
        names = tuple(p.name for p in params if p.kind is keyword and p.name not in ("step", "steps"))
        _KEYWORDS[update] = names
    return names


def _is_sharded(t: Tensor) -> bool:
    """Whether ``t`` is a DTensor (a parameter sharded by FSDP2 or tensor parallelism)."""
    return callable(getattr(t, "full_tensor", None))


def full_value(t: Tensor) -> Tensor:
    """The global value of a reduction (a sum, a norm) of sharded tensors: a DTensor's pending (partial) sum is
    all-reduced, so ``float()`` of it is the same on every rank; a plain tensor is returned as is."""
    return t.full_tensor() if _is_sharded(t) else t


class Optimizer(torch.optim.Optimizer):
    """Base class of every optimlab optimizer (see the module docstring)."""

    #: rule per hyperparameter; checked for ``defaults`` and for every added param group
    hyperparameters: ClassVar[dict[str, Rule]] = {}
    #: names of the per-parameter state tensors, in the order the update function takes them
    state_names: ClassVar[tuple[str, ...]] = ()
    #: whether the update rule is elementwise (complex params then go through view_as_real)
    supports_complex: ClassVar[bool] = True
    #: whether a sharded (DTensor, FSDP2) parameter is updated shard by shard: true for rules whose state is
    #: parameter-shaped and whose whole-tensor quantities DTensor computes globally (norms, means). Otherwise the
    #: pipeline gathers the full tensor and gradient (two all-gathers per parameter and step), updates it with full
    #: (replicated) state on every rank, and writes back the local shard: matrix rules (Newton-Schulz, eigenbases,
    #: Kronecker factors, projections), global quantization blocks, per-tensor buffers of another shape.
    shard_local: ClassVar[bool] = True
    #: state keys a class adds after ``init_state`` (in ``prepare``): accepted, not required, by ``load_state_dict``
    lazy_state_names: ClassVar[tuple[str, ...]] = ()
    #: whether the update takes sparse gradients (``nn.Embedding(sparse=True)``); others refuse them clearly
    supports_sparse: ClassVar[bool] = False
    #: whether every update runs guarded (snapshot, result check, restore on failure; see ``Optimizer._apply``),
    #: not only those of large gradients: rules built on linear algebra (eigh, Cholesky, QR), which can fail or
    #: lose finiteness for any gradient, and whose matrix work dwarfs the copy
    guard_every_update: ClassVar[bool] = False
    #: state tensors the result check leaves out: ones that hold ±Inf on purpose (sentinels of empty slots)
    unchecked_state: ClassVar[tuple[str, ...]] = ()
    #: whether ``step`` needs a closure (re-evaluates the loss)
    requires_closure: ClassVar[bool] = False
    #: whether the closure's backward must build a graph (``loss.backward(create_graph=True)``) for HVPs
    requires_hvp: ClassVar[bool] = False
    #: whether the closure returns ``(loss, logits)`` (curvature from the model's logits: Sophia-G)
    requires_logits: ClassVar[bool] = False
    #: whether the closure returns class-split losses ``(head_loss, tail_loss)`` (ImbSAM)
    requires_head_tail: ClassVar[bool] = False

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict[str, Any]],
        defaults: dict[str, Any],
        *,
        compile: bool = False,
        nonfinite: str = "skip",
        stochastic_rounding: bool = False,
        seed: int = 0,
        foreach: bool | None = None,
        fused: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
    ) -> None:
        OneOf(NONFINITE_POLICIES).check("nonfinite", nonfinite)
        OneOf((True, False)).check("compile", compile)
        # torch.optim's implementation flags (optim/_compat.py): foreach has no effect, fused=True is compile=True
        compile = _compat.implementation_flags(type(self).__name__, compile, foreach, fused, capturable, differentiable)
        OneOf((True, False)).check("stochastic_rounding", stochastic_rounding)
        defaults = {**defaults}
        defaults.setdefault("maximize", False)
        self._check_hyperparameters(defaults)
        self.nonfinite = nonfinite
        self.stochastic_rounding = stochastic_rounding
        self.seed = int(seed)
        self.compile = compile
        self._compiled_apply: dict[bool, Callable] | None = None
        self._index_of: dict[int, int] | None = None
        super().__init__(params, defaults)

    # ----------------------------------------------------------------- subclass interface
    @staticmethod
    def update(p: Tensor, grad: Tensor, *state: Tensor, step: Any, **hyper: Any) -> None:
        """The algorithm's per-tensor update, in place on ``p`` and the state tensors."""
        raise NotImplementedError

    def hyper(self, group: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments of the update from a param group: every keyword-only parameter of the update
        function (``step`` aside) that the group holds, with ``beta1``, ``beta2``, ... taken from ``betas``.
        Override only where the update takes something computed (a global step size, a layout's tensors)."""
        out: dict[str, Any] = {}
        for name in _update_keywords(self.update_function(group)):
            if name in group:
                out[name] = group[name]
            elif name.startswith("beta") and name[4:].isdigit() and "betas" in group:
                out[name] = group["betas"][int(name[4:]) - 1]
        return out

    def state_keys(self, group: dict[str, Any]) -> tuple[str, ...]:
        """Names of the state tensors for params of ``group`` (override when a flag adds or removes one)."""
        return self.state_names

    def init_state(self, p: Tensor, group: dict[str, Any]) -> list[Tensor]:
        """Fresh state tensors, one per ``state_keys(group)``; ``p`` is the fp32/real view the update sees."""
        return [torch.zeros_like(p, memory_format=torch.preserve_format) for _ in self.state_keys(group)]

    # ----------------------------------------------------------------- validation
    def _check_hyperparameters(self, group: dict[str, Any]) -> None:
        for name, rule in self.hyperparameters.items():
            if name in group:
                rule.check(name, group[name])
        OneOf((True, False)).check("maximize", group.get("maximize", False))
        _compat.as_scalars(group, self.hyperparameters)  # a [1]- or [1, 1]-shaped lr tensor acts as a 0-d one

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        self._index_of = None
        group = self.param_groups[-1]
        self._check_hyperparameters(group)
        group.setdefault("nonfinite_skips", 0)
        for i, p in enumerate(group["params"]):
            self._check_parameter(i, p)

    def _check_parameter(self, index: int, p: Tensor) -> None:
        """``ValueError`` naming parameter ``index`` of a new group if this optimizer cannot update it."""
        name = f"{type(self).__name__}: parameter {index} of param group {len(self.param_groups) - 1}"
        if p.is_meta:
            raise ValueError(
                f"{name} is on the 'meta' device and holds no data; materialize the model first "
                "(e.g. model.to_empty(device=...) and initialize it), then build the optimizer"
            )
        if p.layout != torch.strided or p.is_quantized:
            raise ValueError(f"{name} has layout {p.layout}; only dense (strided) parameters are supported")
        if not (p.is_floating_point() or p.is_complex()):
            raise ValueError(
                f"{name} has dtype {p.dtype}; only floating-point (and, for elementwise rules, complex) parameters "
                "can be optimized"
            )
        if p.is_complex() and not self.supports_complex:
            raise ValueError(f"{type(self).__name__} does not support complex parameters")

    # ----------------------------------------------------------------- pipeline hooks
    def layout(self, p: Tensor, group: dict[str, Any]) -> Hashable:
        """The state layout of ``p`` (hashable; ``None``: the class's one layout). Parameters of a group that share
        a layout are updated together; ``state_keys``/``init_state``/``hyper``/``update_function`` then see the
        group with the layout under ``group[LAYOUT]`` and ``group["params"]`` restricted to those parameters.
        Once ``p`` has state its layout must stay the same."""
        return None

    def prepare(self, slots: list[Slot], loss: Any, extras: tuple, closure: Callable[[], Any] | None) -> list[Slot]:
        """The whole-model part of a step, between the non-finite policy and the per-tensor updates: curvature
        refresh, global step sizes, re-evaluating ``closure``. ``slots`` are the parameters the policy lets
        through; returns those to update (a subset). Overriding it makes the policy run eagerly before it, also
        under ``compile=True``."""
        return slots

    def update_function(self, group: dict[str, Any]) -> Callable[..., None]:
        """The per-tensor update for the parameters of ``group`` (one layout of it): ``update`` by default."""
        return self.update

    # ----------------------------------------------------------------- the step pipeline
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; ``closure`` re-evaluates the model and returns the loss.

        The one pipeline every optimlab optimizer steps through: evaluate the closure → gather the parameters
        with gradients (state created lazily) → the non-finite policy → :meth:`prepare` → the per-tensor
        updates, one call of :meth:`update_function` per parameter (eager loop, or compiled per group)."""
        # read first, before anything can break the graph: code resumed after a graph break may run eagerly
        # while its callees are still compiled one frame at a time
        traced = torch.compiler.is_compiling()
        if not traced:
            self._fold_skips()
        output = None
        if closure is not None:
            with torch.enable_grad():
                output = closure()
        elif self.requires_closure:
            if _compat.is_checkpoint_init(self, self.state):
                self._gather()  # creates every parameter's state; updates nothing
                return None
            graph = "loss.backward(create_graph=True)" if self.requires_hvp else "backward"
            raise RuntimeError(
                f"{type(self).__name__}.step() requires a closure that re-evaluates the model, calls {graph} and "
                "returns the loss"
            )
        loss, extras = self._split_output(output)
        slots = self._gather()
        custom_prepare = type(self).prepare is not Optimizer.prepare
        in_graph = self.compile or traced
        if slots and (custom_prepare or not in_graph or self.nonfinite == "raise" or self.guard_every_update):
            slots = self._screen(slots, [s.grad for s in slots], "gradient")
        if custom_prepare and slots:
            for slot in slots:
                if slot.guarded:
                    slot.snapshot()  # prepare may write state (curvature EMAs)
            slots = self.prepare(slots, loss, extras, closure)
        if self.requires_closure:  # only a closure's backward can leave a graph on the gradients
            self._detach_grads()
        if slots:
            self._apply(slots, traced)
        return loss

    def _split_output(self, output: Any) -> tuple[Any, tuple]:
        """(loss, extra outputs) of what the closure returned; by default the whole output is the loss."""
        return output, ()

    def _gather(self) -> list[Slot]:
        """Every parameter with a gradient, as a :class:`Slot`; state is created on a parameter's first step.

        Per-tensor Python work is kept small (it is paid for every tensor on every step): working views are only
        built for parameters that need them (low precision, complex, maximize)."""
        slots: list[Slot] = []
        state_of = self.state
        has_layouts = type(self).layout is not Optimizer.layout
        for group in self.param_groups:
            maximize = group["maximize"]
            keys = None if has_layouts else self.state_keys(group)
            for p in group["params"]:
                grad = p.grad
                if grad is None or p.numel() == 0:  # a zero-size parameter has nothing to update: no state, no step
                    continue
                if grad.is_sparse and not self.supports_sparse:
                    raise RuntimeError(f"{type(self).__name__} does not support sparse gradients")
                copied = False
                if _is_sharded(p) and not self.shard_local:
                    work, grad, _ = self._working_views(p.full_tensor(), grad.full_tensor(), maximize)
                    copied = True
                elif maximize or p.dtype in _VIEWED_DTYPES or not (p.is_contiguous() and grad.is_contiguous()):
                    work, grad, copied = self._working_views(p, grad, maximize)
                else:
                    work = p
                if grad.grad_fn is not None:
                    grad = grad.detach()
                layout = self.layout(p, group) if has_layouts else None
                state = state_of[p]
                if not state:
                    view = group if not has_layouts else {**group, LAYOUT: layout}
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    for name, tensor in zip(keys or self.state_keys(view), self.init_state(work, view)):
                        state[name] = tensor
                    check_compilable_state(type(self).__name__, state, self.update_function(view), work)
                slots.append(Slot(group, p, work, grad, state, layout, copied))
        return slots

    def _screen(self, slots: list[Slot], values: list[Tensor], what: str, count: bool = True) -> list[Slot]:
        """The non-finite policy, the one implementation: the slots whose value (the gradient, a curvature
        estimate, the loss, ...) is free of NaN/Inf. ``"skip"`` drops the others (counted per group in
        ``group["nonfinite_skips"]`` when ``count``), ``"raise"`` raises ``FloatingPointError`` before anything
        is modified, ``"propagate"`` keeps every slot. A slot whose value is finite but large enough for its
        update to overflow (:func:`screen_levels`) is marked ``guarded``: :meth:`_apply` checks its result."""
        if self.nonfinite == "propagate" or not slots:
            return slots
        levels = screen_levels(values)
        kept = []
        for slot, level in zip(slots, levels):
            if level == NONFINITE:
                continue
            slot.guarded = slot.guarded or level == LARGE or self.guard_every_update
            kept.append(slot)
        if len(kept) == len(slots):
            return slots
        if self.nonfinite == "raise":
            raise FloatingPointError(
                f"{type(self).__name__}: non-finite {what} in {len(slots) - len(kept)} parameter(s) this step"
            )
        if count:
            for slot, level in zip(slots, levels):
                if level == NONFINITE:
                    slot.group["nonfinite_skips"] += 1
        return kept

    def _apply(self, slots: list[Slot], traced: bool = False) -> None:
        """The per-tensor updates: one bucket per (param group, layout), eager loop or compiled.

        A ``guarded`` slot (a large gradient, or ``guard_every_update``) is updated first, eagerly, on a snapshot of
        its parameter and state: if its result holds a NaN/Inf or its linear algebra fails
        (``torch.linalg.LinAlgError``), the snapshot is restored and the policy applies (``"skip"``: counted in
        ``nonfinite_skips``; ``"raise"``: every guarded slot is restored, then ``FloatingPointError``, before any
        other parameter moves, eagerly). Compiled, the graph tests each gradient (:func:`apply_group_skipping`),
        leaves the large ones as they were and hands them to that guarded path (``guard_every_update`` classes
        step eagerly).

        ``traced``: the step is traced by the user's ``torch.compile``. The graph path is then taken inline (no
        nested compile): step counters and hyperparameters stay tensors, because Python-float counters would be
        traced as symbolic floats, which torch 2.13 miscompiles in the bias corrections."""
        buckets: dict[tuple[int, Hashable], list[Slot]] = {}
        for slot in slots:
            buckets.setdefault((id(slot.group), slot.layout), []).append(slot)
        in_graph = self.compile or traced
        checked_in_graph = in_graph and self.nonfinite != "propagate"
        eager = not in_graph or (checked_in_graph and self.guard_every_update)  # LinAlgError is caught eagerly
        later: list[tuple[Callable, Slot, list[Tensor], float, dict[str, Any]]] = []
        guarded: list[tuple[Callable, Slot, list[Tensor], float, dict[str, Any]]] = []
        for bucket in buckets.values():
            group, layout = bucket[0].group, bucket[0].layout
            view = group if layout is None else {**group, "params": [s.p for s in bucket], LAYOUT: layout}
            update = self.update_function(view)
            hyper = self.hyper(view)
            keys = self.state_keys(view)
            states = [[s.state[name] for name in keys] for s in bucket]
            steps = [s.state["step"] for s in bucket]
            if eager:
                for s, state, step in zip(bucket, states, _advance(steps)):
                    (guarded if s.guarded else later).append((update, s, state, step, hyper))
                continue
            structural = self._integer_hyperparameters()
            as_tensors = {k: v if k in structural else as_tensor(v) for k, v in hyper.items()}
            if traced:  # under the user's compile a large gradient is updated in the graph (no eager re-run there)
                loop = partial(apply_group_skipping, guard_large=False) if checked_in_graph else apply_group
            else:
                loop = self._compiled(checked_in_graph)
            codes = loop(update, [s.work for s in bucket], [s.grad for s in bucket], states, steps, as_tensors)
            if not checked_in_graph:
                codes = [UPDATED] * len(bucket)
            elif traced and self.nonfinite == "skip":  # no host read inside the user's graph
                self._count_later(group, (codes == NONFINITE_GRADIENT).sum())
                codes = [UPDATED] * len(bucket)  # the skipped ones kept their old values: writing back is a no-op
            else:
                codes = codes.tolist()
            failed = codes.count(NONFINITE_GRADIENT)
            if failed and self.nonfinite == "raise":
                raise FloatingPointError(f"{type(self).__name__}: non-finite gradient in {failed} parameter(s)")
            group["nonfinite_skips"] += failed
            for s, state, code in zip(bucket, states, codes):
                if code == LARGE_GRADIENT:  # left as it was in the graph: update it eagerly, guarded
                    (step,) = _advance([s.state["step"]])
                    guarded.append((update, s, state, step, hyper))
                elif code != NONFINITE_GRADIENT and s.copied:
                    self._write_back(s.p, s.work, s.state["step"])
        if guarded:
            try:
                run_guarded(self, guarded)
            except FloatingPointError:
                for _, s, *_ in later:  # "raise": nothing moves, counters included
                    s.state["step"].sub_(1)
                raise
        for (update, _), run in groupby(later, key=lambda task: (task[0], id(task[4]))):  # one run per bucket
            run = list(run)
            works, grads = [task[1].work for task in run], [task[1].grad for task in run]
            update_bucket(update, works, grads, [task[2] for task in run], [task[3] for task in run], run[0][4])
            for _, s, *_ in run:
                if s.copied:
                    self._write_back(s.p, s.work, s.state["step"])

    def _count_later(self, group: dict[str, Any], skipped: Tensor) -> None:
        """Under the user's ``torch.compile`` the skip count stays a tensor (reading it would break the graph, one
        break per step); :meth:`_fold_skips` adds it to ``group["nonfinite_skips"]`` at the next eager step or
        ``state_dict()``."""
        pending = self.__dict__.setdefault("_pending_skips", {})
        key = id(group)
        pending[key] = pending[key] + skipped if key in pending else skipped

    def _fold_skips(self) -> None:
        pending = self.__dict__.pop("_pending_skips", None)
        for group in self.param_groups if pending else ():
            if id(group) in pending:
                group["nonfinite_skips"] += int(pending[id(group)])

    def _detach_grads(self) -> None:
        """Drop the autograd graph the gradients may carry after a closure's ``backward(create_graph=True)``
        (frees the double-backward graph and breaks the parameter ↔ gradient reference cycle it makes)."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None and p.grad.grad_fn is not None:
                    p.grad = p.grad.detach()

    @staticmethod
    def _working_views(p: Tensor, grad: Tensor, maximize: bool) -> tuple[Tensor, Tensor, bool]:
        """The tensors the update sees, and whether the first is a copy to write back: real views of complex
        params, fp32 copies of low-precision ones, contiguous copies of non-contiguous ones (a transposed parameter
        steps exactly as its contiguous twin: matrix products and reductions round by memory layout), the gradient
        negated under ``maximize``."""
        work, copied = p, False
        if p.is_complex():
            if not p.is_contiguous():
                work, copied = p.contiguous(), True
            work, grad = torch.view_as_real(work), torch.view_as_real(grad.contiguous())
        if work.dtype in LOW_PRECISION:
            work, grad, copied = work.float(), grad.float(), True
        if not work.is_contiguous():
            work, copied = work.contiguous(), True
        if not grad.is_sparse:  # sparse gradients (SGD) stay sparse
            grad = grad.contiguous()
        if maximize:
            grad = -grad
        return work, grad, copied

    def _write_back(self, p: Tensor, work: Tensor, step: Tensor) -> None:
        """Copy an updated working copy into the parameter: the local shard of a gathered full tensor, rounded
        (stochastically when asked) to a low-precision dtype."""
        target = p
        if _is_sharded(p):
            from torch.distributed.tensor import DTensor, Replicate

            full = DTensor.from_local(work, p.device_mesh, [Replicate()] * p.device_mesh.ndim, run_check=False)
            work, target = full.redistribute(p.device_mesh, p.placements).to_local(), p.to_local()
        if target.is_complex():
            if not target.is_contiguous():
                target.copy_(torch.view_as_complex(work))
                return
            target = torch.view_as_real(target)
        if self.stochastic_rounding and target.dtype in LOW_PRECISION:
            gen = torch.Generator(device=p.device)
            # a deterministic stream per (seed, parameter, step): resuming needs no saved RNG state
            index = self._param_index(p)
            gen.manual_seed((self.seed * 1_000_003 + index * 7_919 + int(step.item())) % (2**63))
            _kernels.copy_stochastic_(target, work, gen)
        else:
            target.copy_(work)

    def _param_index(self, p: Tensor) -> int:
        if self._index_of is None:
            self._index_of = {id(q): i for i, q in enumerate(q for g in self.param_groups for q in g["params"])}
        return self._index_of[id(p)]

    @classmethod
    def _integer_hyperparameters(cls) -> frozenset[str]:
        """Names of the hyperparameters whose rule asks for an integer (kept as Python ints when compiled)."""
        names = cls.__dict__.get("_integer_names")
        if names is None:
            names = frozenset(name for name, rule in cls.hyperparameters.items() if getattr(rule, "integer", False))
            cls._integer_names = names
        return names

    def _compiled(self, skipping: bool = False) -> Callable:
        if self._compiled_apply is None:
            self._compiled_apply = {}
        if skipping not in self._compiled_apply:
            self._compiled_apply[skipping] = compiled_loop(type(self), skipping)
        return self._compiled_apply[skipping]

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        for key in ("nonfinite", "stochastic_rounding", "seed", "compile"):
            state[key] = getattr(self, key)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.__dict__.setdefault("_compiled_apply", None)
        self._index_of = None

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Like torch.optim's, but the state tensors are copies: a dict kept in memory does not change as
        training goes on. Entries a hook put into ``self.state`` that are not per-parameter dicts are kept as is."""
        self._fold_skips()
        sd = super().state_dict()
        sd["state"] = {k: _copied(s) if isinstance(s, dict) else s for k, s in sd["state"].items()}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Like torch.optim's, but checked first: per-parameter state of another algorithm or configuration, a
        missing key or a wrong-shaped tensor raises ``ValueError`` naming the key and the parameter, before
        anything changes (optim/_compat.py). State tensors keep the dtype they were saved with (fp32 state of bf16
        parameters stays fp32, real views of complex parameters stay real) and are copied, not aliased. As in
        torch, group keys missing from an older checkpoint come from the defaults and a plain-number ``step``
        loads."""
        _compat.check_state_dict(self, state_dict)
        defaults = dict(self.defaults)  # before torch's __setstate__ adds its own keys to them
        super().load_state_dict(state_dict)
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        for saved_id, p in zip(saved_ids, params):
            saved = state_dict["state"].get(saved_id)
            if isinstance(saved, dict):
                self.state[p] = _compat.restore_state(saved, p)
        for group in self.param_groups:
            _compat.fill_group_defaults(group, defaults)
            group.setdefault("nonfinite_skips", 0)
            self._check_hyperparameters(group)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"  group {i}: {len(group['params'])} tensors")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)


def _copied(state: dict[str, Any]) -> dict[str, Any]:
    """A per-parameter state dict with its tensors cloned."""
    return {name: (v.clone() if isinstance(v, Tensor) else v) for name, v in state.items()}
