"""Hessian-vector products without forming the Hessian (Pearlmutter 1994, *Fast Exact Multiplication by the
Hessian*).

Two forms, both exact up to rounding:

* :func:`hvp` — **double backward**. The caller builds the gradient with a graph
  (``torch.autograd.grad(loss, params, create_graph=True)``, or ``loss.backward(create_graph=True)`` and then
  ``[p.grad for p in params]``); ``H v`` is then the gradient of ``<g(θ), v>`` with respect to θ. This is what
  AdaHessian (Yao et al. 2021, arXiv:2006.00719) and Sophia-H (Liu et al. 2023, arXiv:2305.14342) do inside a
  training loop, because the gradient is needed anyway.
* :func:`functional_hvp` / :func:`functional_grad_and_hvp` — **forward-over-reverse** with ``torch.func``:
  ``H v = jvp(grad(f), (θ,), (v,))``. The loss is a pure function of a parameter pytree (a dict from
  ``model.named_parameters()`` used through ``torch.func.functional_call``, or a list of tensors). No graph is
  kept between calls, which suits eigen-solvers and sharpness measurements.

Both work on lists of tensors shaped like the parameters; an HVP "operator" elsewhere in
``optimlab.curvature`` is any callable ``vectors -> H·vectors`` on such lists, e.g.
``functools.partial(hvp, grads, params)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from .vectors import check_like

#: an HVP operator: maps a list of tensors shaped like the parameters to H times it (same shapes)
HVPFn = Callable[[list[Tensor]], Sequence[Tensor]]

_NO_GRAPH = (
    "hvp: none of the gradients has a grad_fn, so they cannot be differentiated again. Compute them with a "
    "graph: torch.autograd.grad(loss, params, create_graph=True) (or loss.backward(create_graph=True) and "
    "[p.grad for p in params])."
)


def hvp(
    grads: Sequence[Tensor | None],
    params: Sequence[Tensor],
    vectors: Sequence[Tensor],
    *,
    retain_graph: bool = True,
    create_graph: bool = False,
) -> list[Tensor]:
    """Hessian-vector product ``H v`` by double backward.

    Args:
        grads: the gradient of the loss with respect to ``params``, built with ``create_graph=True``. An entry
            may be ``None`` (a parameter the loss does not use) and an entry without ``grad_fn`` is taken to be
            constant in θ (the loss is linear in that parameter): both contribute zero Hessian rows. If *no*
            entry has a ``grad_fn`` the caller forgot ``create_graph`` and a ``ValueError`` says so.
        params: the parameters (leaf tensors with ``requires_grad``).
        vectors: ``v``, one tensor per parameter, of the parameter's shape.
        retain_graph: keep the graph for further products (several Hutchinson probes, Lanczos); the default.
        create_graph: build a graph of the product itself (to differentiate ``H v`` again).

    Returns:
        ``H v`` as a list shaped like ``params`` (zeros where the loss does not depend on a parameter).
    """
    params = list(params)
    grads = list(grads)
    check_like(vectors, params)
    if len(grads) != len(params):
        raise ValueError(f"hvp: got {len(grads)} gradients for {len(params)} parameters")
    live = [i for i, g in enumerate(grads) if g is not None and g.grad_fn is not None]
    if not live:
        raise ValueError(_NO_GRAPH)
    outputs = [grads[i] for i in live]
    grad_outputs = [vectors[i].to(dtype=grads[i].dtype, device=grads[i].device) for i in live]
    products = torch.autograd.grad(
        outputs,
        params,
        grad_outputs=grad_outputs,
        retain_graph=retain_graph or create_graph,
        create_graph=create_graph,
        allow_unused=True,
        materialize_grads=True,
    )
    return list(products)


def _jvp_of_grad(func: Callable[[Any], Tensor], params: Any, vectors: Any) -> tuple[Any, Any]:
    from torch.func import grad, jvp

    return jvp(grad(func), (params,), (vectors,))


def functional_hvp(func: Callable[[Any], Tensor], params: Any, vectors: Any) -> Any:
    """Hessian-vector product ``H v`` of a pure scalar function by forward-over-reverse (``torch.func``).

    Args:
        func: ``params -> scalar loss``; pure (no in-place updates of ``params``), e.g.
            ``lambda p: loss_fn(torch.func.functional_call(model, p, (x,)), y)``.
        params: a pytree of tensors (dict of named parameters, list or tuple); detached values are fine.
        vectors: ``v``, the same pytree structure and shapes as ``params``.

    Returns:
        ``H v`` with the structure of ``params``.
    """
    return _jvp_of_grad(func, params, vectors)[1]


def functional_grad_and_hvp(func: Callable[[Any], Tensor], params: Any, vectors: Any) -> tuple[Any, Any]:
    """``(∇f(θ), H v)`` in one forward-over-reverse pass (see :func:`functional_hvp`)."""
    return _jvp_of_grad(func, params, vectors)
