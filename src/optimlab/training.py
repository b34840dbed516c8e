"""The public closure contract: what an optimizer needs from a training step, and one step that gives it.

Some optimizers re-evaluate the loss (a closure: SAM family, second-order methods), some differentiate the
gradient again (Hessian-vector products: the closure's backward needs ``create_graph=True``), Sophia-G estimates
curvature from the model's logits (the closure returns ``(loss, logits)``), ImbSAM needs class-split losses.
:func:`capabilities` reads these needs from the optimizer's class (the single place they are stated: the class
attributes ``requires_closure``, ``requires_hvp``, ``requires_logits``, ``requires_head_tail``; a wrapper also
needs what its base needs). :func:`closure_backward` is the backward a closure owes an optimizer and
:func:`train_step` is one whole step (zero_grad, forward, backward, step) for any optimizer; the benchmark and the
claims drive every optimizer through them.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["Capabilities", "capabilities", "closure_backward", "create_graph_warning_silenced", "train_step"]


@dataclass(frozen=True)
class Capabilities:
    """What a step of an optimizer needs from the training loop."""

    #: ``step`` must be given a closure that re-evaluates the loss
    closure: bool = False
    #: the closure's backward must build a graph (``create_graph=True``) for Hessian-vector products
    hvp: bool = False
    #: the closure returns ``(loss, logits)`` (Sophia-G's Gauss-Newton-Bartlett estimator)
    logits: bool = False
    #: the closure returns the class-split losses ``(head_loss, tail_loss)`` (ImbSAM)
    head_tail: bool = False


def capabilities(optimizer: Any) -> Capabilities:
    """The needs of an optimizer class or instance (or of a registry record, through its class).

    A wrapper instance (an object with a ``base`` optimizer) also needs what its base needs: SAM around Sophia-H
    still needs ``create_graph``."""
    cls = getattr(optimizer, "cls", None) if not isinstance(optimizer, (type, torch.optim.Optimizer)) else None
    obj = cls if cls is not None else optimizer
    own = Capabilities(
        closure=bool(getattr(obj, "requires_closure", False)),
        hvp=bool(getattr(obj, "requires_hvp", False)),
        logits=bool(getattr(obj, "requires_logits", False)),
        head_tail=bool(getattr(obj, "requires_head_tail", False)),
    )
    base = getattr(obj, "base", None) if not isinstance(obj, type) else None
    if isinstance(base, torch.optim.Optimizer):
        inner = capabilities(base)
        own = Capabilities(
            closure=own.closure or inner.closure or inner.logits,
            hvp=own.hvp or inner.hvp,
            logits=own.logits or inner.logits,
            head_tail=own.head_tail or inner.head_tail,
        )
    return own


def closure_backward(optimizer: torch.optim.Optimizer, loss: Tensor, *, create_graph: bool, logits: bool) -> None:
    """The backward a closure owes ``optimizer``: ``create_graph`` for Hessian-vector products; with ``logits``
    (the closure returns ``(loss, logits)``, Sophia-G) the forward graph is kept on the steps where the optimizer's
    ``refresh_due()`` says it will backpropagate through the logits, and only then."""
    refresh_due = getattr(optimizer, "refresh_due", None)
    keep = logits and (bool(refresh_due()) if callable(refresh_due) else True)
    loss.backward(create_graph=create_graph, retain_graph=keep or create_graph)


@contextlib.contextmanager
def create_graph_warning_silenced() -> Iterator[None]:
    """Silence torch's warning that ``backward(create_graph=True)`` leaks through the parameter ↔ gradient cycle,
    for harnesses that drop the gradients after every step (which is what the warning asks for)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Using backward\(\) with create_graph=True")
        yield


def train_step(
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[], Tensor | tuple[Tensor, Any]],
    *,
    needs: Capabilities | None = None,
) -> Tensor:
    """One step of ``optimizer`` on ``loss_fn()``; returns the (detached) loss before the step (NaN if the
    optimizer never evaluated its closure).

    ``loss_fn`` runs the forward pass and returns the loss, or ``(loss, logits)``: optimizers that estimate
    curvature from the logits get them (with the forward graph kept only on the steps that use it); every other
    optimizer ignores them. The step goes through a closure where the optimizer needs one, with
    ``create_graph=True`` where it needs Hessian-vector products (the gradients, which then carry a graph, are
    dropped after the step). ``needs`` overrides :func:`capabilities` (for another library's optimizer whose
    class does not say what it needs, e.g. ``torch.optim.LBFGS``'s closure)."""
    needs = capabilities(optimizer) if needs is None else needs
    if needs.head_tail:
        raise TypeError(
            f"{type(optimizer).__name__} needs class-split (head, tail) losses; call its step with such a closure"
        )
    seen: list[Tensor] = []

    def closure():
        optimizer.zero_grad(set_to_none=True)
        out = loss_fn()
        loss, logits = out if isinstance(out, tuple) else (out, None)
        if needs.logits and logits is None:
            raise TypeError(f"{type(optimizer).__name__} needs the logits: loss_fn must return (loss, logits)")
        closure_backward(optimizer, loss, create_graph=needs.hvp, logits=needs.logits)
        seen.append(loss.detach())
        return (loss, logits) if needs.logits else loss

    with create_graph_warning_silenced():  # the graph kept by create_graph is released below
        if needs.closure or needs.logits:
            optimizer.step(closure)
        else:
            closure()
            optimizer.step()
    if needs.hvp:
        optimizer.zero_grad(set_to_none=True)
    return seen[0] if seen else torch.tensor(float("nan"))
