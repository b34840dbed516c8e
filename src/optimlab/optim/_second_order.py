"""Shared machinery of the optimizers whose step needs the whole model before the per-tensor update.

AdaHessian, Sophia-H, OASIS and SANIA-Hutchinson need Hessian-vector products, which couple every parameter
(one double backward through the loss); Sophia-G needs the model's logits (Gauss–Newton–Bartlett); OASIS and SANIA
need global quantities (norms over all parameters, the loss value). :class:`SecondOrderOptimizer` runs that
whole-model part in the step pipeline's ``prepare`` hook (eagerly, once per step), then the base class's
per-tensor loop runs the algorithm's update function as for any other optimizer (eager or compiled).

Conventions shared by these optimizers:

* **Closure contract.** ``step(closure)`` is required. The closure zeroes the gradients, computes the loss, calls
  ``loss.backward(create_graph=True)`` when the optimizer needs Hessian-vector products (``requires_hvp``) and
  returns the loss. Without ``create_graph`` the gradients have no graph and the step raises a ``RuntimeError``
  saying so. After the curvature is computed the gradients are replaced by detached copies (``p.grad =
  p.grad.detach()``), which frees the double-backward graph and breaks the parameter ↔ gradient reference cycle
  that ``backward(create_graph=True)`` creates.
* **Random probes resume exactly without stored generator state.** The probes of the Hutchinson estimator (and
  Sophia-G's sampled labels) at optimizer step ``t`` come from a fresh ``torch.Generator`` seeded with
  :func:`probe_seed` ``(seed, t)`` (``seed`` is the optimizer's ``seed=`` option), drawn for the parameters that
  refresh their curvature at that step in param-group order. The step counter is in the state dict, so a resumed
  run draws exactly the probes of an uninterrupted one. The generator lives on the first such parameter's device.
* **Maximize.** Curvature is that of the objective being minimized: with ``maximize=True`` the Hessian estimate
  is negated (the Hessian of −f).
* **Non-finite values.** With ``nonfinite="skip"`` a parameter whose gradient (or curvature estimate) is not
  finite leaves its curvature state untouched and is left out of global norms; ``"raise"`` raises
  ``FloatingPointError``; ``"propagate"`` uses the values as they are.
* **Precision.** Estimates are accumulated in at least float32 (bf16/fp16 parameters keep fp32 state).
* **Complex parameters** are not supported (the Hessian of a real loss in complex parameters is not an
  elementwise object).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import torch
from torch import Tensor

import optimlab.curvature as C  # absolute: `from .. import curvature` would go through optimlab.__getattr__

from ._base import Optimizer, Slot
from ._rules import OneOf, Range

#: hyperparameter rules shared by the Hutchinson-based optimizers
PROBE_RULES = {
    "hessian_samples": Range(1, integer=True),
    "hessian_distribution": OneOf(("rademacher", "gaussian")),
}

_NO_GRAPH = (
    "{name} needs Hessian-vector products, but the gradients have no autograd graph: the closure must call "
    "loss.backward(create_graph=True) (or compute the gradients with torch.autograd.grad(..., create_graph=True) "
    "and assign them to p.grad)."
)


def probe_seed(seed: int, step: int) -> int:
    """The seed of the probe generator at optimizer step ``step`` (1-based) for the optimizer option ``seed``.

    A fixed, documented function of (seed, step) so that references and resumed runs draw the same probes."""
    return (int(seed) * 1_000_003 + int(step) * 2_654_435_761 + 97_531) % (2**63)


def refresh_due(step: int, period: int) -> bool:
    """Curvature is refreshed at steps 1, 1 + period, 1 + 2·period, ... (Sophia's "t mod k = 1")."""
    return (int(step) - 1) % int(period) == 0


#: one parameter in a step (the base class's :class:`~optimlab.optim._base.Slot`): ``group``, ``p``, ``state``,
#: ``work`` (the fp32 view the update sees), ``grad`` (as the update sees it, detached) and ``t`` (1-based step)
Entry = Slot


class SecondOrderOptimizer(Optimizer):
    """Base of optimizers with a whole-model part (curvature, global step sizes) before the per-tensor update.

    Subclasses implement the pipeline's :meth:`~optimlab.optim._base.Optimizer.prepare` hook; it may write
    curvature state and set per-group scalars that :meth:`hyper` hands to the update function (see the module
    docstring for the shared conventions).
    """

    requires_closure: ClassVar[bool] = True
    supports_complex: ClassVar[bool] = False

    def _split_output(self, output: Any) -> tuple[Any, tuple]:
        """(loss, extra outputs of the closure); a closure normally returns just the loss."""
        if isinstance(output, (tuple, list)):
            return output[0], tuple(output[1:])
        return output, ()

    # ----------------------------------------------------------------- helpers for subclasses
    def _finite_estimates(self, entries: Sequence[Entry], estimates: Sequence[Tensor]) -> list[tuple[Entry, Tensor]]:
        """Pairs (entry, estimate) that the non-finite policy lets through (a skipped estimate leaves the
        curvature state untouched; the parameter still steps)."""
        by_id = {id(e): d for e, d in zip(entries, estimates)}
        kept = self._screen(list(entries), list(estimates), "curvature estimate", count=False)
        return [(e, by_id[id(e)]) for e in kept]

    def _generator(self, step: int, device: torch.device) -> torch.Generator:
        return C.make_generator(probe_seed(self.seed, step), device)

    def _hessian_diagonals(
        self,
        entries: Sequence[Entry],
        probes: Callable[[Entry], tuple[int, str]] | None = None,
    ) -> list[tuple[Entry, Tensor]]:
        """Hutchinson estimates of diag(H) for ``entries`` (one shared double backward per probe).

        ``probes(entry) -> (num_samples, distribution)``; default the group's ``hessian_samples`` and
        ``hessian_distribution``. Entries with different settings get separate estimator calls, drawn one after
        the other from the step's generator (seeded by :func:`probe_seed` with the first entry's step).
        """
        entries = list(entries)
        if not entries:
            return []
        grads = [e.p.grad for e in entries]
        if not any(g.grad_fn is not None for g in grads):
            raise RuntimeError(_NO_GRAPH.format(name=type(self).__name__))
        if probes is None:
            probes = lambda e: (e.group["hessian_samples"], e.group["hessian_distribution"])  # noqa: E731
        generator = self._generator(entries[0].t, entries[0].p.device)
        keys: dict[tuple[int, str], list[int]] = {}
        for i, e in enumerate(entries):
            keys.setdefault(probes(e), []).append(i)
        estimates: list[Tensor | None] = [None] * len(entries)
        for (samples, distribution), index in keys.items():
            params = [entries[i].p for i in index]
            hvp_fn = functools.partial(C.hvp, [grads[i] for i in index], params)
            diag = C.hutchinson_diagonal(hvp_fn, params, generator, num_samples=samples, distribution=distribution)
            for i, d in zip(index, diag):
                estimates[i] = -d if entries[i].group["maximize"] else d
        return self._finite_estimates(entries, estimates)
