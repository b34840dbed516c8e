"""Forward gradients: a gradient estimate from one forward-mode pass (``torch.func.jvp``), no backward.

Baydin, Pearlmutter, Syme, Wood & Torr (2022), *Gradients without Backpropagation*, arXiv:2202.08587: for
v ~ N(0, I), g = (∇f·v) v is an unbiased estimate of ∇f (E[v vᵀ] = I), with cosine to ∇f of order 1/√d.
Fournier, Rivaud, Belilovsky, Eickenberg & Oyallon (2023), *Can Forward Gradient Match Backpropagation?*,
arXiv:2306.06968 (seed #142): replace the random direction by a *guess* correlated with the gradient — e.g. the
gradient of a cheap local loss of each block — and use the projection of ∇f on it, g = (∇f·v / ‖v‖²) v, computed
block by block (one JVP per block); the closer the guess, the closer g is to ∇f.

:func:`forward_grad_` writes the estimate to ``.grad`` (any optimizer consumes it); :func:`forward_gradient` is the
underlying (f(θ), ∇f(θ)·v); :func:`module_loss` turns a module and a loss on its output into the function of the
parameters these need (``torch.func.functional_call``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

__all__ = ["ForwardGradResult", "forward_grad_", "forward_gradient", "module_loss"]

ParamFn = Callable[[tuple[Tensor, ...]], Tensor]


@dataclass
class ForwardGradResult:
    """``loss`` f(θ); ``derivatives`` (n_blocks,): the directional derivative ∇f·v of each block's tangent."""

    loss: Tensor
    derivatives: Tensor


def module_loss(
    module: nn.Module, loss_fn: Callable[[Tensor], Tensor], *args, **kwargs
) -> tuple[list[Tensor], ParamFn]:
    """(the module's parameters, fn) with fn(ps) = loss_fn(module(*args, **kwargs)) evaluated at parameters ``ps``
    (``torch.func.functional_call``; buffers are the module's own)."""
    names, params = zip(*[(n, p) for n, p in module.named_parameters()])

    def fn(ps: tuple[Tensor, ...]) -> Tensor:
        return loss_fn(torch.func.functional_call(module, dict(zip(names, ps)), args, kwargs))

    return list(params), fn


def forward_gradient(fn: ParamFn, params: Sequence[Tensor], tangents: Sequence[Tensor]) -> tuple[Tensor, Tensor]:
    """(f(θ), ∇f(θ)·v) in one forward-mode pass; ``fn`` maps a tuple of tensors (θ) to a scalar."""
    if len(params) != len(tangents):
        raise ValueError(f"tangents needs one tensor per parameter ({len(params)}), got {len(tangents)}")
    primals = tuple(p.detach() for p in params)
    loss, derivative = torch.func.jvp(lambda *ps: fn(ps), primals, tuple(t.detach() for t in tangents))
    return loss.detach(), derivative.detach()


def forward_grad_(
    params: Sequence[Tensor],
    fn: ParamFn,
    guesses: Sequence[Tensor] | None = None,
    *,
    blocks: Sequence[Sequence[int]] | None = None,
    normalize: bool | None = None,
    generator: torch.Generator | None = None,
) -> ForwardGradResult:
    """Write a forward-gradient estimate to each parameter's ``.grad``.

    ``guesses``: one direction per parameter; ``None`` draws v ~ N(0, I) (from ``generator``). ``blocks``: lists
    of parameter indices, each projected separately (one JVP per block; default: all parameters in one block).
    ``normalize``: g_b = (∇f·v_b / ‖v_b‖²) v_b (projection; default for given guesses) or (∇f·v_b) v_b (unbiased
    for Gaussian v; default for random ones)."""
    params = list(params)
    if not params:
        raise ValueError("params is empty")
    if guesses is None:
        guesses = [torch.randn(p.shape, generator=generator, dtype=p.dtype, device=p.device) for p in params]
        normalize = False if normalize is None else normalize
    else:
        guesses = [g.detach() for g in guesses]
        if len(guesses) != len(params):
            raise ValueError(f"guesses needs one tensor per parameter ({len(params)}), got {len(guesses)}")
        normalize = True if normalize is None else normalize
    blocks = [list(range(len(params)))] if blocks is None else [list(b) for b in blocks]
    covered = sorted(i for b in blocks for i in b)
    if covered != list(range(len(params))):
        raise ValueError("blocks must partition the parameter indices 0..len(params)-1")
    derivatives = torch.empty(len(blocks), dtype=torch.float64)
    loss = None
    for k, block in enumerate(blocks):
        members = set(block)
        tangents = [g if i in members else torch.zeros_like(g) for i, g in enumerate(guesses)]
        loss, d = forward_gradient(fn, params, tangents)
        derivatives[k] = float(d)
        scale = d
        if normalize:
            sq = sum(guesses[i].square().sum() for i in block)
            scale = d / sq if float(sq) > 0 else torch.zeros_like(d)
        for i in block:
            params[i].grad = (guesses[i] * scale).to(params[i].dtype)
    return ForwardGradResult(loss, derivatives)
