"""Per-sample gradients (``torch.func``) and the DP-SGD gradient: per-sample clipping plus Gaussian noise.

Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar & Zhang (2016), *Deep Learning with Differential Privacy*,
ACM CCS 2016, arXiv:1607.00133, Algorithm 1 (seed #133), for a batch ("lot") of L examples:

    g_i = ∇_θ ℓ(θ, x_i)                         per-example gradient (all parameters as one vector)
    ḡ_i = g_i / max(1, ‖g_i‖₂ / C)              clip each example to norm ≤ C
    g̃  = (Σ_i ḡ_i + N(0, σ² C² I)) / L          add Gaussian noise with std σ·C, average

θ is then updated with g̃ by any optimizer (the privacy argument does not depend on the update rule).

Privacy accounting is not done here. The (ε, δ) guarantee depends on how batches are sampled (the analysis
assumes Poisson sampling with rate q = L/N), on σ and on the number of steps. Compute it with Opacus (not a
dependency of optimlab)::

    from opacus.accountants import RDPAccountant      # or PRVAccountant
    accountant = RDPAccountant()
    for step in ...:
        result = dp_sgd_grad(model, loss_fn, x, y, max_norm=C, noise_multiplier=sigma, generator=gen,
                             expected_batch_size=q * N)
        optimizer.step()
        accountant.step(noise_multiplier=sigma, sample_rate=q)
    epsilon = accountant.get_epsilon(delta=1e-5)

``torch.Generator`` is not a cryptographically secure RNG, and floating-point Gaussian samplers leak through
their low bits; for a deployed privacy guarantee use Opacus' ``secure_mode``. This module is the mechanism for
research and for tests of the method. Models with BatchNorm (which mixes samples) have no per-sample gradient;
use GroupNorm/LayerNorm, as Opacus requires too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad_and_value, vmap

from ._common import check_nonnegative, check_positive


class DPSGDResult(NamedTuple):
    """Output of :func:`dp_sgd_grad`.

    ``grads``: name → the noisy averaged gradient g̃ (also written to ``p.grad`` unless ``write_grad=False``);
    ``per_sample_norms``: (B,) ‖g_i‖ before clipping; ``fraction_clipped``: share of samples with ‖g_i‖ > C;
    ``loss``: mean per-sample loss (detached; computing it leaks information, log it only for debugging).
    """

    grads: dict[str, Tensor]
    per_sample_norms: Tensor
    fraction_clipped: Tensor
    loss: Tensor


def _trainable(model: nn.Module) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    params, frozen = {}, {}
    for name, p in model.named_parameters():
        (params if p.requires_grad else frozen)[name] = p.detach()
    frozen.update(dict(model.named_buffers()))
    return params, frozen


def per_sample_grads(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor | Sequence[Tensor],
    targets: Tensor,
    *,
    chunk_size: int | None = None,
    randomness: str = "error",
) -> tuple[dict[str, Tensor], Tensor]:
    """Gradients of ``loss_fn(model(x_i[None]), y_i[None])`` for every sample i, with torch.func.

    ``inputs``: a (B, ...) tensor, or a sequence of such tensors passed to the model as positional arguments;
    ``targets``: (B, ...). ``loss_fn`` sees a batch of one, so ``reduction="mean"`` or ``"sum"`` both give the
    per-sample loss. Only parameters with ``requires_grad`` are differentiated; buffers and frozen parameters
    are passed through unchanged (and never updated, e.g. BatchNorm running stats).
    ``chunk_size`` bounds memory (``torch.func.vmap`` chunking); ``randomness`` is vmap's: ``"error"`` (default)
    refuses random ops such as dropout in training mode, ``"different"`` draws independently per sample.
    Returns ({name: (B, *param.shape)}, losses (B,)); nothing is written to ``p.grad``.
    """
    params, frozen = _trainable(model)
    xs = (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)

    def loss_one(p: dict[str, Tensor], x: tuple[Tensor, ...], y: Tensor) -> Tensor:
        out = functional_call(model, (p, frozen), tuple(t.unsqueeze(0) for t in x))
        return loss_fn(out, y.unsqueeze(0))

    fn = vmap(grad_and_value(loss_one), in_dims=(None, 0, 0), chunk_size=chunk_size, randomness=randomness)
    grads, losses = fn(params, xs, targets)
    return dict(grads), losses


def per_sample_norms(per_sample: Mapping[str, Tensor] | Sequence[Tensor]) -> Tensor:
    """(B,) L2 norm of each sample's gradient over all parameters jointly."""
    tensors = list(per_sample.values()) if isinstance(per_sample, Mapping) else list(per_sample)
    per_tensor = [torch.linalg.vector_norm(t.flatten(1), dim=1) for t in tensors]
    return torch.linalg.vector_norm(torch.stack(per_tensor, dim=1), dim=1)


@torch.no_grad()
def clip_per_sample_(per_sample: Mapping[str, Tensor] | Sequence[Tensor], max_norm: float) -> Tensor:
    """ḡ_i = g_i / max(1, ‖g_i‖/C) for every sample, in place (norm over all parameters jointly).

    Returns the (B,) per-sample norms *before* clipping.
    """
    c = check_positive("max_norm", max_norm)
    tensors = list(per_sample.values()) if isinstance(per_sample, Mapping) else list(per_sample)
    norms = per_sample_norms(tensors)
    divisor = (norms / c).clamp_min(1.0)
    for t in tensors:
        t.div_(divisor.reshape(-1, *([1] * (t.dim() - 1))).to(t.dtype))
    return norms


def dp_sgd_grad(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor | Sequence[Tensor],
    targets: Tensor,
    *,
    max_norm: float,
    noise_multiplier: float,
    generator: torch.Generator | None = None,
    expected_batch_size: float | None = None,
    write_grad: bool = True,
    chunk_size: int | None = None,
    randomness: str = "error",
) -> DPSGDResult:
    """The DP-SGD gradient g̃ = (Σ_i clip_C(g_i) + N(0, σ²C²I)) / L of Abadi et al. (2016), Algorithm 1.

    ``max_norm`` = C > 0; ``noise_multiplier`` = σ ≥ 0 (σ = 0: clipping only, no privacy);
    ``generator``: the source of the noise (draws in ``model.named_parameters()`` order; ``None`` uses torch's
    global RNG), on the parameters' device; ``expected_batch_size`` = L, default the actual batch size B (with
    Poisson sampling pass the expected size q·N, as Opacus does, so the noise scale does not depend on B).
    With ``write_grad`` the result *replaces* ``p.grad`` of every trainable parameter (no accumulation), ready
    for ``optimizer.step()``. See the module docstring for privacy accounting.
    """
    c = check_positive("max_norm", max_norm)
    sigma = check_nonnegative("noise_multiplier", noise_multiplier)
    grads, losses = per_sample_grads(model, loss_fn, inputs, targets, chunk_size=chunk_size, randomness=randomness)
    b = losses.shape[0]
    denom = float(expected_batch_size) if expected_batch_size is not None else float(b)
    check_positive("expected_batch_size", denom)
    norms = clip_per_sample_(grads, c)
    out: dict[str, Tensor] = {}
    named = dict(model.named_parameters())
    for name, g in grads.items():
        total = g.sum(0)
        if sigma > 0:
            noise = torch.randn(total.shape, generator=generator, dtype=total.dtype, device=total.device)
            total = total + noise * (sigma * c)
        out[name] = total / denom
        if write_grad:
            p = named[name]
            if p.grad is None:
                p.grad = out[name].clone()
            else:
                p.grad.copy_(out[name])
    clipped = (norms > c).to(torch.float32).mean()
    return DPSGDResult(out, norms, clipped, losses.detach().mean())
