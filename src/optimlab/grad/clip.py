"""Global-norm and value clipping, numerically identical to ``torch.nn.utils.clip_grad_norm_`` /
``clip_grad_value_`` (tested bit for bit), plus a choice of what to do with a non-finite norm and the
pre-clip statistics for logging.

Pascanu, Mikolov & Bengio (2013), *On the difficulty of training recurrent neural networks*, arXiv:1211.5063
(norm clipping, seed #27): g ← g·min(1, c/‖g‖) with the norm over all parameters.
"""

from __future__ import annotations

from typing import Literal

import torch

from ._common import ClipStats, TensorOrTensors, check_nonnegative, fraction, grads_of, l2_norm, scalar

NonFinite = Literal["propagate", "raise", "skip", "zero"]
_NONFINITE = ("propagate", "raise", "skip", "zero")  # the optimizers' policy names, plus "zero"


def _total_norm(grads, norm_type: float, foreach: bool | None) -> torch.Tensor:
    get_total_norm = getattr(torch.nn.utils, "get_total_norm", None)  # torch >= 2.6: torch's own reduction
    if get_total_norm is not None:
        return get_total_norm(grads, norm_type, False, foreach)
    if not grads:
        return torch.tensor(0.0)
    device = grads[0].device
    norms = [torch.linalg.vector_norm(g, norm_type).to(device) for g in grads]
    return torch.linalg.vector_norm(torch.stack(norms), norm_type)


@torch.no_grad()
def clip_grad_norm_(
    parameters: TensorOrTensors,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
    *,
    nonfinite: NonFinite | None = None,
) -> ClipStats:
    """Scale all gradients by ``min(1, max_norm / (total_norm + 1e-6))``, in place (torch's exact formula).

    ``parameters``: parameters (their ``.grad`` is used) or gradient tensors; see :func:`grads_of`.
    ``norm_type``: p of the p-norm over all gradients viewed as one vector (``float('inf')`` allowed).

    Non-finite total norm (``nan``/``inf``), chosen by ``nonfinite``:

    * ``"propagate"`` (default, torch's behaviour): scale anyway; the gradients become NaN/0 — the step that
      follows is poisoned, which a NaN guard downstream (or the optimizer's NaN policy) must catch;
    * ``"raise"``: raise ``RuntimeError`` (what ``error_if_nonfinite=True`` selects, torch's error; costs a host
      synchronisation);
    * ``"skip"``: leave the gradients untouched and report the norm, so the caller can skip the step
      (GradScaler-style);
    * ``"zero"``: set every gradient to zero (the step becomes a no-op apart from weight decay).

    ``foreach`` is accepted for signature compatibility and forwarded to torch's norm reduction.
    Returns :class:`ClipStats`: the pre-clip ``total_norm``, ``threshold = max_norm`` and ``fraction_clipped``
    = 1 when the gradients were scaled down (or, for a non-finite norm, modified) and 0 otherwise.
    """
    max_norm = check_nonnegative("max_norm", max_norm)
    mode = nonfinite if nonfinite is not None else ("raise" if error_if_nonfinite else "propagate")
    if mode not in _NONFINITE:
        raise ValueError(f"nonfinite must be one of {_NONFINITE}, got {nonfinite!r}")
    grads = grads_of(parameters)
    norm_type = float(norm_type)
    total_norm = _total_norm(grads, norm_type, foreach)
    if not grads:
        return ClipStats(total_norm, torch.tensor(max_norm), torch.tensor(0.0))
    finite = total_norm.isfinite()
    if mode == "raise" and not bool(finite):
        raise RuntimeError(
            f"The total norm of order {norm_type} of the gradients is non-finite ({float(total_norm)}), so it "
            "cannot be clipped; pass nonfinite='skip' or 'zero' to handle it, or 'propagate' to scale anyway"
        )
    coef = torch.clamp(max_norm / (total_norm + 1e-6), max=1.0)
    if mode == "skip":
        coef = torch.where(finite, coef, torch.ones_like(coef))
    for g in grads:
        g.mul_(coef.to(g.device))
        if mode == "zero":
            g.masked_fill_(~finite.to(g.device), 0.0)
    clipped = torch.where(finite, coef < 1.0, torch.tensor(mode != "skip", device=coef.device))
    return ClipStats(total_norm, scalar(max_norm, grads), clipped.to(torch.float32))


@torch.no_grad()
def clip_grad_value_(parameters: TensorOrTensors, clip_value: float, foreach: bool | None = None) -> ClipStats:
    """Clamp every gradient coordinate to ``[-clip_value, clip_value]``, in place (as torch).

    ``foreach`` is accepted for signature compatibility (the clamp is the same either way).
    Returns :class:`ClipStats` with the pre-clip L2 ``total_norm``, ``threshold = clip_value`` and the fraction of
    coordinates with ``|g| > clip_value``. NaN coordinates stay NaN and are not counted as clipped.
    """
    clip_value = check_nonnegative("clip_value", clip_value)
    grads = grads_of(parameters)
    total_norm = l2_norm(grads)
    count, total = 0, 0
    for g in grads:
        count = count + (g.abs() > clip_value).sum().to(grads[0].device)
        total += g.numel()
        g.clamp_(min=-clip_value, max=clip_value)
    return ClipStats(total_norm, scalar(clip_value, grads), fraction(count, total, grads))
