"""Sharpness-Aware Minimization and its direct variants, wrapping any base optimizer.

SAM: Foret, Kleiner, Mobahi & Neyshabur (2021), *Sharpness-Aware Minimization for Efficiently Improving
Generalization*, arXiv:2010.01412. ASAM: Kwon, Kim, Park & Choi (2021), *ASAM: Adaptive Sharpness-Aware
Minimization for Scale-Invariant Learning of Deep Neural Networks*, arXiv:2102.11600. USAM (unnormalized SAM):
Andriushchenko & Flammarion (2022), *Towards Understanding Sharpness-Aware Minimization*, arXiv:2206.06232.
SAM-ON: Mueller, Vlaar, Rolnick & Hein (2023), *Normalization Layers Are All That Sharpness-Aware Minimization
Needs*, arXiv:2306.04226.

One step: g = ∇L(w); ε = ρ·T²g/‖Tg‖ (SAM: T = I; ASAM: T = |w| + η elementwise; USAM: ε = ρ·g); the gradient at
w + ε drives the base optimizer from w. The norm is global over every perturbed parameter with a gradient; ρ
may differ per param group; groups with ``perturb=False`` are not perturbed (SAM-ON).

Ways to drive it (the same for every wrapper built on :class:`PerturbationWrapper`):

* ``opt.step(closure)``: the closure zeroes grads, computes the loss, calls backward and returns the loss; it is
  called twice (at w, then at w + ε).
* m-sharpness: ``opt.step(closure, micro_batches=m)`` calls ``closure(k)`` for micro-batch ``k``; each
  micro-batch is perturbed with its own gradient and the gradients at the perturbed points are averaged.
* DDP: ``opt.step(closure, no_sync=ddp_model)`` runs the first pass under ``ddp_model.no_sync()``: each worker
  perturbs with its local gradient (m-sharpness with m = the local batch) and only the second pass all-reduces.
* two calls, for loops that cannot pass a closure (gradient accumulation, clipping between passes, your own
  ``no_sync``)::

      with ddp_model.no_sync():                        # optional: local first pass
          loss_fn(model(x), y).backward()              # gradient at w (accumulate over micro-batches if needed)
      opt.first_step()                                 # w ← w + ε, grads zeroed
      loss_fn(model(x), y).backward()                  # gradient at w + ε
      optimlab.grad.clip_grad_norm_(model.parameters(), 1.0)   # optional
      opt.second_step()                                # w restored, base step

* mixed precision with a ``torch.amp.GradScaler``: pass ``scaler=`` to ``step``/``first_step``/``second_step``
  and call ``scaler.update()`` after the step as usual. Each pass is unscaled exactly once (through a view of
  the wrapper that the scaler tracks separately) and checked for inf/NaN; if any pass overflows, the
  parameters are left at w, no base step is taken and the scaler lowers its scale. With the two-call API,
  ``opt.unscale_(scaler)`` unscales the current pass early (to clip it before ``second_step``), and
  ``opt.unscale_(scaler, local=True)`` before ``first_step`` makes the workers agree on an overflow in a
  first pass you ran under your own ``no_sync`` (``step(..., no_sync=...)`` does this itself).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .. import registry as R
from ..optim import OneOf, Range
from ..routing import trainable_parameters
from ._twopass import PerturbationWrapper


def _sq_norm(x: Tensor) -> Tensor:
    """Squared L2 norm, accumulated in at least fp32, in the same order for every memory layout."""
    return (x.float() if x.dtype in (torch.float16, torch.bfloat16) else x).contiguous().pow(2).sum()


class SAM(PerturbationWrapper):
    """Sharpness-Aware Minimization (Foret et al., 2021) around any base optimizer.

    ``SAM(model.parameters(), base="sgd", rho=0.05, lr=0.1, momentum=0.9)`` builds the base from the registry
    (or pass an optimizer class, or ``SAM(None, base=existing_optimizer)``). Extra keyword arguments go to the base.
    ``adaptive=True`` gives ASAM's scale-invariant ε = ρ·T²g/‖Tg‖ with T = |w| + eta; ``normalize=False`` gives
    USAM's ε = ρ·g. A param group with ``perturb=False`` is left out of the perturbation and of its norm (it is
    still updated by the base with the gradient at w + ε): SAM-ON (:class:`SAMON`) perturbs only the
    normalization layers this way.

    m-sharpness: ``opt.step(closure, micro_batches=m)`` with ``closure(k)`` computing micro-batch ``k``'s loss
    (see :meth:`PerturbationWrapper.step`). DDP: ``opt.step(closure, no_sync=ddp_model)``.
    """

    hyperparameters = {
        "rho": Range(0.0),
        "adaptive": OneOf((True, False)),
        "eta": Range(0.0),
        "normalize": OneOf((True, False)),
        "perturb": OneOf((True, False)),
    }

    def __init__(
        self,
        params,
        base: Any = "sgd",
        rho: float = 0.05,
        adaptive: bool = False,
        eta: float = 0.01,
        normalize: bool = True,
        perturb: bool = True,
        **base_kwargs: Any,
    ) -> None:
        defaults = dict(rho=rho, adaptive=adaptive, eta=eta, normalize=normalize, perturb=perturb)
        super().__init__(params, base, base_kwargs, defaults)

    # ----------------------------------------------------------------- the perturbation
    def _perturbed(self) -> list[tuple[dict[str, Any], Tensor, Tensor]]:
        """[(group, param, effective gradient)] of the parameters the perturbation moves."""
        return [(g, p, self._effective(g, p.grad)) for g, p in self.params_with_grad if g.get("perturb", True)]

    @torch.no_grad()
    def perturbation(self) -> list[tuple[Tensor, Tensor]]:
        """[(param, ε)] from the current gradients (the first pass); ε is 0 where a group has rho == 0; params
        of ``perturb=False`` groups are left out."""
        # direction d = T²g and the norm's terms ‖Tg‖² (T = |w| + η for ASAM, the identity otherwise)
        dirs, sq = [], []
        for group, p, g in self._perturbed():
            if group["adaptive"]:
                t = p.abs().add_(group["eta"])
                tg = t.mul_(g) if t.dtype == g.dtype else t * g
                sq.append(_sq_norm(tg))
                dirs.append((group, p, tg.mul_(p.abs().add_(group["eta"])), True))  # T²g, a temporary
            else:
                sq.append(_sq_norm(g))
                dirs.append((group, p, g, False))  # the gradient itself: not to be modified
        norm = torch.stack(sq).sum().sqrt() if sq and any(g["normalize"] for g, *_ in dirs) else None
        out = []
        for group, p, d, owned in dirs:
            scale = group["rho"] / (norm.to(d.dtype) + 1e-12) if group["normalize"] else group["rho"]
            out.append((p, d.mul_(scale) if owned else d * scale))
        return out


# --------------------------------------------------------------------------------------------- SAM-ON
#: module types whose affine parameters SAM-ON perturbs
NORM_LAYERS: tuple[type, ...] = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm) + (
    (nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()
)


def norm_layer_param_groups(
    model: nn.Module,
    *,
    norm_types: tuple[type, ...] = NORM_LAYERS,
    is_norm: Any = None,
    **group_options: Any,
) -> list[dict[str, Any]]:
    """Param groups for SAM-ON: the parameters of normalization layers with ``perturb=True``, all others with
    ``perturb=False``.

    A parameter is a normalization parameter when its module is an instance of ``norm_types`` (BatchNorm*,
    LayerNorm, GroupNorm, RMSNorm, SyncBatchNorm, InstanceNorm with affine parameters) or when
    ``is_norm(name, param, module)`` returns True (e.g. for a custom norm layer). Frozen parameters are left
    out. Extra keyword arguments (``weight_decay=...``) are copied into both groups; an empty group is dropped.

    >>> opt = SAMON(norm_layer_param_groups(model), base="sgd", lr=0.1, momentum=0.9)   # doctest: +SKIP
    """
    norm, rest = [], []
    for full, p, module in trainable_parameters(model):
        flagged = isinstance(module, norm_types) or (is_norm is not None and bool(is_norm(full, p, module)))
        (norm if flagged else rest).append(p)
    groups = []
    if norm:
        groups.append({"params": norm, "perturb": True, **group_options})
    if rest:
        groups.append({"params": rest, "perturb": False, **group_options})
    return groups


class SAMON(SAM):
    """SAM-ON, "SAM-OnlyNorm" (Mueller, Vlaar, Rolnick & Hein, 2023, arXiv:2306.04226): SAM's perturbation is
    computed from, and applied to, the affine parameters of the normalization layers only; the gradient at the
    perturbed point then updates *all* parameters.

    An optimizer sees tensors, not modules: pass ``SAMON(model, ...)`` (the groups are built by
    :func:`norm_layer_param_groups`), or build them yourself — every group with ``perturb=False`` is left
    unperturbed, so ``SAMON(norm_layer_param_groups(model, weight_decay=5e-4), lr=0.1)`` works too. A plain
    list of tensors is perturbed entirely (then this is SAM with SAM-ON's larger default ρ).
    ``adaptive=True`` gives ASAM-ON. Any other SAM option applies.
    """

    def __init__(self, params, base: Any = "sgd", rho: float = 0.5, **kwargs: Any) -> None:
        if isinstance(params, nn.Module):
            params = norm_layer_param_groups(params)
        super().__init__(params, base=base, rho=rho, **kwargs)


def _register(
    name: str,
    summary: str,
    paper: R.Paper,
    hparams: tuple[str, ...],
    paper_defaults: dict[str, Any],
    notes: str = "",
    cls: type = SAM,
    base_defaults: dict[str, Any] | None = None,
    conventions: tuple[R.Convention, ...] = (),
) -> None:
    base_defaults = {"lr": 0.05, "momentum": 0.9} if base_defaults is None else base_defaults
    rho = paper_defaults.get("rho", R.constructor_defaults(cls)["rho"])
    R.register(
        R.AlgorithmSpec(
            name=name,
            cls=cls,
            family="sharpness",
            paper=paper,
            summary=summary,
            hparams=("base", *base_defaults, *hparams),
            paper_defaults={**base_defaults, **paper_defaults},
            search_space={
                "lr": R.LogUniform(1e-4, 1.0),
                "rho": R.LogUniform(rho / 20, rho * 5),
            },
            state_tensors=1,  # the SGD-momentum base's buffer; ε lives only between the two passes
            notes=notes,
            conventions=conventions,
        )
    )


_register(
    "sam",
    "gradient at the worst point w + ρ g/‖g‖ of a ρ-ball drives the base optimizer (2 passes)",
    R.Paper(
        "Sharpness-Aware Minimization for Efficiently Improving Generalization",
        "Foret, Kleiner, Mobahi, Neyshabur",
        2021,
        "2010.01412",
        "#30",
    ),
    ("rho",),
    {},
)
_register(
    "asam",
    "SAM with the scale-invariant perturbation ρ T²g/‖Tg‖, T = |w| + η",
    R.Paper(
        "ASAM: Adaptive Sharpness-Aware Minimization for Scale-Invariant Learning of Deep Neural Networks",
        "Kwon, Kim, Park, Choi",
        2021,
        "2102.11600",
    ),
    ("rho", "adaptive", "eta"),
    {"rho": 0.5, "adaptive": True},
    notes="T = |w| + η on every parameter; the authors' code leaves non-'weight' parameters (biases) unnormalized.",
    conventions=(
        R.Convention(
            point="which parameters get the adaptive scale T = |w| + η",
            paper="—",
            elsewhere="the authors' code: only parameters named 'weight'; biases are left unscaled",
            fixed="every perturbed parameter",
        ),
    ),
)
_register(
    "usam",
    "unnormalized SAM: perturbation ρ g",
    R.Paper(
        "Towards Understanding Sharpness-Aware Minimization", "Andriushchenko, Flammarion", 2022, "2206.06232", "#34"
    ),
    ("rho", "normalize"),
    {"normalize": False},
)
_register(
    "sam_on",
    "SAM-ON: SAM whose perturbation is computed from and applied to the normalization-layer parameters only",
    R.Paper(
        "Normalization Layers Are All That Sharpness-Aware Minimization Needs",
        "Mueller, Vlaar, Rolnick, Hein",
        2023,
        "2306.04226",
        "#42",
    ),
    ("rho",),
    {},
    notes=(
        "build the groups with norm_layer_param_groups(model) or pass the model itself (groups with perturb=False are "
        "not perturbed); defaults from the authors' train.py (rho=0.5, SGD lr=0.1, momentum=0.9, weight decay 5e-4); "
        "the paper tunes rho per setting, larger than SAM's (their ASAM-ON example uses rho=10)"
    ),
    cls=SAMON,
    base_defaults={"lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4},
)
