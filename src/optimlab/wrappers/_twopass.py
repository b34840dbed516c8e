"""The machinery shared by the wrappers that evaluate the gradient at perturbed weights (SAM family, AMP,
finite-difference gradient regularization): the two-call API, the closure API with micro-batches
(m-sharpness) and DDP ``no_sync``, and the ``torch.amp.GradScaler`` path.

A step has *ascent passes* (gradient at the current point → the wrapper moves the weights to w + ε) and one
*final pass* (gradient at w + ε → the wrapper restores w exactly, optionally combines the final gradient with
what it stashed from the ascent passes, and takes the base optimizer's step). A subclass supplies:

* :meth:`PerturbationWrapper.perturbation` — ``[(param, displacement from w)]`` from the current gradients;
* optionally :meth:`PerturbationWrapper.ascent_passes` (AMP's inner iterations), :meth:`_stash` (keep a
  first-pass gradient, e.g. FD-GR's g(w)), :meth:`_combine` (turn the final gradient into the one the base
  steps on) and :meth:`_end_step` (per-step bookkeeping such as FSAM's counter).

GradScaler: every gradient the wrapper reads is unscaled exactly once, through a *pass view* — an object that
shows the scaler the wrapper's param groups under its own identity — so the scaler's once-per-optimizer
bookkeeping holds for every pass and ``scaler.update()`` sees an overflow of any pass. The base step is then
taken directly (the gradients are already unscaled) and skipped when any pass overflowed; the parameters
are left at w.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..optim import finite_mask
from ._wrapper import WrapperOptimizer


class _PassView:
    """What a GradScaler sees for one pass: the wrapper's param groups under a separate identity."""

    def __init__(self, owner: WrapperOptimizer) -> None:
        self.owner = owner

    @property
    def param_groups(self):
        return self.owner.param_groups


def _scaler_on(scaler: torch.amp.GradScaler | None) -> bool:
    return scaler is not None and scaler.is_enabled()


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def no_sync_context(no_sync: Any) -> contextlib.AbstractContextManager:
    """The context a local (un-synchronized) pass runs in: ``no_sync`` is a ``DistributedDataParallel``
    module (its ``no_sync()`` is used), a callable returning a context manager, or None."""
    if no_sync is None:
        return contextlib.nullcontext()
    fn = getattr(no_sync, "no_sync", no_sync)
    if not callable(fn):
        raise TypeError(f"no_sync must be a DistributedDataParallel module or a callable, got {no_sync!r}")
    return fn()


class PerturbationWrapper(WrapperOptimizer):
    """Base of the perturb → re-evaluate → restore wrappers (see the module docstring)."""

    requires_closure: ClassVar[bool] = True
    #: whether a gradient from an ascent pass enters the final update (then it must be synchronized under
    #: DDP, so ``no_sync`` is refused)
    uses_first_pass_gradient: ClassVar[bool] = False
    #: per-parameter state entries that live only inside one step (w, stashed gradients)
    _transient_keys: ClassVar[tuple[str, ...]] = ("w",)

    def _init_transient(self) -> None:
        super()._init_transient()
        self._views: list[_PassView] = []
        self._pass_index = 0  # passes unscaled in the current step (index of the next view)
        self._skip_step = False  # a pass overflowed: restore w, take no base step
        self._local_pass = False  # an ascent pass runs under DDP no_sync
        self._excluded: list[tuple[dict[str, Any], Tensor]] = []  # non-finite first-pass gradient: no step
        self._unscaled: bool | None = None  # unscale_() was called for the current pass: its finiteness

    # ----------------------------------------------------------------- subclass interface
    def perturbation(self) -> list[tuple[Tensor, Tensor]]:
        """``[(param, ε)]``: the displacement from w to apply, computed from the current gradients (taken at
        the current, possibly already perturbed, point)."""
        raise NotImplementedError

    def ascent_passes(self) -> int:
        """Number of ascent passes per step (1; AMP's inner iterations)."""
        return 1

    def _stash(self) -> None:
        """Called in each ascent pass before the perturbation, with the (unscaled) gradients in ``.grad``."""

    def _combine(self) -> None:
        """Called after the final pass with the (unscaled) final gradients in ``.grad``; may rewrite them."""

    def _end_batch(self) -> None:
        """Called after the final pass of each (micro-)batch, once w is restored."""

    def _end_step(self, stepped: bool) -> None:
        """Called once per optimizer step after the base step (``stepped``) or after a skipped one."""

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def _effective(group: dict[str, Any], grad: Tensor) -> Tensor:
        """The gradient of the minimized objective (``maximize`` flips it), for computing perturbations."""
        return -grad if group.get("maximize", False) else grad

    def _stash_grad(self, p: Tensor, key: str) -> None:
        if self._local_pass:
            raise RuntimeError(
                f"{type(self).__name__} uses a first-pass gradient in its update; it must be synchronized across "
                "workers, so the first pass cannot run under no_sync"
            )
        self.state[p][key] = p.grad.detach().clone()

    def _view(self) -> _PassView:
        while len(self._views) <= self._pass_index:
            self._views.append(_PassView(self))
        view = self._views[self._pass_index]
        self._pass_index += 1
        return view

    @torch.no_grad()
    def _unscale(self, scaler: torch.amp.GradScaler | None, local: bool = False) -> bool:
        """Unscale the current gradients once (through a fresh pass view); False when any is inf/NaN.

        ``local``: the gradients were not synchronized (DDP no_sync); the overflow flag is then agreed on by
        all workers (an overflow anywhere is recorded by every worker's scaler, so the scales stay equal)."""
        if self._unscaled is not None:  # the user already unscaled this pass with unscale_()
            finite, self._unscaled = self._unscaled, None
            return finite
        if not _scaler_on(scaler):
            return True
        grads = [p.grad for _, p in self.params_with_grad]
        if not grads:
            scaler.unscale_(self._view())
            return True
        finite_here = torch.stack([torch.isfinite(g).all() for g in grads]).all()
        finite = finite_here
        if local and _distributed():
            flag = (~finite_here).to(torch.float32)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            finite = flag == 0
            if bool(finite_here) and not bool(finite):
                grads[0][(0,) * grads[0].dim()] = float("inf")  # so this worker's scaler records the overflow too
        scaler.unscale_(self._view())
        return bool(finite)

    def unscale_(self, scaler: torch.amp.GradScaler | None, local: bool = False) -> bool:
        """Unscale the current pass's gradients now (to clip or inspect them between ``backward`` and
        ``first_step``/``second_step``, which then do not unscale them again); returns False on inf/NaN.
        ``local=True`` for a first pass run under DDP ``no_sync``."""
        finite = self._unscale(scaler, local)
        self._unscaled = finite if _scaler_on(scaler) else None
        return finite

    def _screen_first_pass(self) -> None:
        """The base optimizer's non-finite policy (``nonfinite`` of an optimlab base; torch's: propagate), applied
        per parameter to the ascent pass's gradients: under ``"skip"`` a parameter whose gradient holds NaN/Inf
        is left out of the perturbation and of its norm, and takes no step (parameter, base state and step
        counter untouched, counted in ``nonfinite_skips``); the others step as usual. ``"raise"`` raises
        ``FloatingPointError``. Under a GradScaler an overflow skips the whole step instead, as the scaler does."""
        policy = getattr(self.base, "nonfinite", "propagate")
        if policy == "propagate":
            return
        with_grad = self.params_with_grad
        keep = finite_mask([p.grad for _, p in with_grad])
        bad = [(g, p) for (g, p), ok in zip(with_grad, keep) if not ok]
        if bad and policy == "raise":
            raise FloatingPointError(f"{type(self).__name__}: non-finite gradient in {len(bad)} parameter(s)")
        for group, p in bad:
            p.grad = None
            if all(p is not q for _, q in self._excluded):
                self._excluded.append((group, p))

    def _restore(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                w = self.state[p].pop("w", None) if p in self.state else None
                if w is not None:
                    p.copy_(w)

    def _clear_transient_state(self) -> None:
        for state in self.state.values():
            for key in [k for k in state if k in self._transient_keys]:
                del state[key]

    # ----------------------------------------------------------------- the two-call API
    @torch.no_grad()
    def first_step(self, scaler: torch.amp.GradScaler | None = None) -> None:
        """An ascent pass: read the gradients at the current point, move to w + ε (w is kept for an exact
        restore) and zero the gradients. AMP calls this once per inner iteration."""
        if not self._unscale(scaler, local=self._local_pass):
            self._skip_step = True
        if not self._skip_step:
            self._screen_first_pass()
            self._stash()
            for p, e in self.perturbation():
                state = self.state[p]
                if "w" not in state:
                    state["w"] = p.detach().clone()
                    p.add_(e)
                else:
                    p.copy_(state["w"]).add_(e)
        self.zero_grad()

    @torch.no_grad()
    def _finish_pass(self, scaler: torch.amp.GradScaler | None) -> None:
        """After the final pass: unscale, combine, restore w. ``.grad`` then holds the gradient to step on."""
        if not self._unscale(scaler):
            self._skip_step = True
        if not self._skip_step:
            self._combine()
        self._restore()
        self._clear_transient_state()
        self._end_batch()

    @torch.no_grad()
    def _base_step(self) -> None:
        stepped = not self._skip_step
        if stepped:
            for group, p in self._excluded:
                p.grad = None
                group["nonfinite_skips"] = group.get("nonfinite_skips", 0) + 1
            self.base.step()
        self._excluded = []
        self._clear_transient_state()
        self._end_step(stepped)
        self._skip_step = False
        self._pass_index = 0

    @torch.no_grad()
    def second_step(self, scaler: torch.amp.GradScaler | None = None) -> None:
        """The final pass: return to w exactly and take the base step with the gradients at w + ε (skipped,
        with w restored, when any pass of this step overflowed under a GradScaler)."""
        self._finish_pass(scaler)
        self._base_step()

    # ----------------------------------------------------------------- the closure API
    def _backward_output(self, output: Any, scaler: torch.amp.GradScaler | None, final: bool) -> Any:
        """What the closure returned → the loss to report. The default closure has already called backward
        (on the scaled loss under a GradScaler) and returns the loss."""
        if isinstance(output, tuple):
            raise TypeError(
                f"{type(self).__name__}'s closure must call backward itself and return the loss; only ImbSAM takes "
                "a (head_loss, tail_loss) pair"
            )
        return output

    def _run_batch(self, call: Callable[[], Any], scaler, no_sync) -> Any:
        """All passes of one (micro-)batch; leaves the final gradient in ``.grad`` and the weights at w."""
        loss = None
        for i in range(self.ascent_passes()):
            self._local_pass = no_sync is not None
            try:
                with no_sync_context(no_sync), torch.enable_grad():
                    out = self._backward_output(call(), scaler, final=False)
                if i == 0:
                    loss = out
                self.first_step(scaler)
            finally:
                self._local_pass = False
        with torch.enable_grad():
            self._backward_output(call(), scaler, final=True)
        self._finish_pass(scaler)
        return loss

    def step(
        self,
        closure: Callable[..., Any] | None = None,
        scaler: torch.amp.GradScaler | None = None,
        *,
        micro_batches: int | None = None,
        no_sync: Any = None,
    ) -> Any:
        """One step; returns the loss at w (the mean over micro-batches).

        ``closure()`` zeroes the gradients, computes the loss, calls backward (on ``scaler.scale(loss)`` when a
        GradScaler is passed) and returns the loss; it is called once per pass. With ``micro_batches=m`` it is
        called as ``closure(k)`` for micro-batch ``k = 0..m-1``: each micro-batch gets its own perturbation from
        its own gradient and the final gradients are averaged (m-sharpness, Foret et al. 2021, §4.1) — the
        wrapper zeroes the gradients before every call, so the closure need not. ``no_sync``: a
        ``DistributedDataParallel`` module (or a callable returning a context manager) whose ``no_sync()`` wraps
        the ascent passes, so each worker perturbs with its local gradient (m-sharpness with m = the local
        batch) and only the final pass all-reduces. Call ``scaler.update()`` after the step as usual.
        """
        if closure is None:
            if self._checkpoint_init():
                return None
            raise RuntimeError(
                f"{type(self).__name__}.step() requires a closure that re-evaluates the model and returns the loss "
                "(it is called once per pass); or call first_step() and second_step() around your own backward passes"
            )
        if no_sync is not None and self.uses_first_pass_gradient:
            raise ValueError(
                f"{type(self).__name__} uses the first-pass gradient in its update; it must be synchronized, so "
                "no_sync is not supported"
            )
        self._pass_index = 0
        self._skip_step = False
        if micro_batches is None:
            loss = self._run_batch(closure, scaler, no_sync)
            self._base_step()
            return loss
        if isinstance(micro_batches, bool) or not isinstance(micro_batches, int) or micro_batches < 1:
            raise ValueError(f"micro_batches must be a positive integer, got {micro_batches!r}")
        params = [p for g in self.param_groups for p in g["params"]]
        total: dict[Tensor, Tensor] = {}
        losses = []
        for k in range(micro_batches):

            def call(k=k):
                self.zero_grad()
                return closure(k)

            losses.append(self._run_batch(call, scaler, no_sync))
            with torch.no_grad():
                for p in params:
                    if p.grad is not None:
                        if p in total:
                            total[p].add_(p.grad)
                        else:
                            total[p] = p.grad.detach().clone()
        with torch.no_grad():
            for p in params:
                p.grad = total[p].div_(micro_batches) if p in total else None
        self._base_step()
        valid = [x for x in losses if isinstance(x, Tensor)]
        return torch.stack([x.detach() for x in valid]).mean() if len(valid) == len(losses) else losses
