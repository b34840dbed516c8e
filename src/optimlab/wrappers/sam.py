"""Sharpness-Aware Minimization and its direct variants, wrapping any base optimizer.

SAM: Foret, Kleiner, Mobahi & Neyshabur (2021), *Sharpness-Aware Minimization for Efficiently Improving
Generalization*, arXiv:2010.01412. ASAM: Kwon, Kim, Park & Choi (2021), *ASAM: Adaptive Sharpness-Aware
Minimization for Scale-Invariant Learning of Deep Neural Networks*, arXiv:2102.11600. USAM (unnormalized SAM):
Andriushchenko & Flammarion (2022), *Towards Understanding Sharpness-Aware Minimization*, arXiv:2206.06232.

One step: g = ∇L(w); ε = ρ·T²g/‖Tg‖ (SAM: T = I; ASAM: T = |w| + η elementwise; USAM: ε = ρ·g); the gradient at
w + ε drives the base optimizer from w. The norm is global over every parameter with a gradient; ρ may differ per
param group.

Three ways to drive it:

* ``opt.step(closure)``: the closure zeroes grads, computes the loss, calls backward and returns the loss; it is
  called twice (at w, then at w + ε).
* two calls, for loops that cannot pass a closure (DDP ``no_sync`` on the first pass, clipping between passes)::

      loss(model(x), y).backward()           # gradient at w
      opt.first_step()                       # w ← w + ε, grads zeroed
      loss(model(x), y).backward()           # gradient at w + ε
      opt.second_step()                      # w restored, base step

* mixed precision with a ``torch.amp.GradScaler``: pass ``scaler=`` to ``step``/``first_step``/``second_step``
  and call ``scaler.update()`` after the step as usual. The first pass is unscaled once (through a view of the
  wrapper that the scaler tracks separately) and checked for inf/NaN; the second pass is unscaled once by
  ``scaler.step(base)``. If either pass overflows, the parameters are left at w and the scaler lowers its scale.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from ..optim._rules import OneOf, Range
from ._wrapper import WrapperOptimizer


def _sq_norm(x: Tensor) -> Tensor:
    """Squared L2 norm, accumulated in at least fp32."""
    return (x.float() if x.dtype in (torch.float16, torch.bfloat16) else x).pow(2).sum()


class _FirstPassView:
    """What a GradScaler sees for the first pass: the wrapper's param groups under a separate identity, so the
    scaler's once-per-step unscale bookkeeping for the base optimizer stays free for the second pass."""

    def __init__(self, owner: WrapperOptimizer) -> None:
        self.owner = owner

    @property
    def param_groups(self):
        return self.owner.param_groups


class SAM(WrapperOptimizer):
    """Sharpness-Aware Minimization (Foret et al., 2021) around any base optimizer.

    ``SAM(model.parameters(), base="sgd", rho=0.05, lr=0.1, momentum=0.9)`` builds the base from the registry
    (or pass an optimizer class, or ``SAM(None, base=existing_optimizer)``). Extra keyword arguments go to the base.
    ``adaptive=True`` gives ASAM's scale-invariant ε = ρ·T²g/‖Tg‖ with T = |w| + eta; ``normalize=False`` gives
    USAM's ε = ρ·g.
    """

    hyperparameters = {
        "rho": Range(0.0),
        "adaptive": OneOf((True, False)),
        "eta": Range(0.0),
        "normalize": OneOf((True, False)),
    }

    def __init__(
        self,
        params,
        base: Any = "sgd",
        rho: float = 0.05,
        adaptive: bool = False,
        eta: float = 0.01,
        normalize: bool = True,
        **base_kwargs: Any,
    ) -> None:
        defaults = dict(rho=rho, adaptive=adaptive, eta=eta, normalize=normalize)
        super().__init__(params, base, base_kwargs, defaults)
        self._first_pass_view = _FirstPassView(self)
        self._skip_step = False

    # ----------------------------------------------------------------- the two passes
    @torch.no_grad()
    def perturbation(self) -> list[tuple[Tensor, Tensor]]:
        """[(param, ε)] from the current gradients (the first pass); ε is 0 where a group has rho == 0."""
        pairs = self.params_with_grad
        scaled = []
        for group, p in pairs:
            g = -p.grad if group.get("maximize", False) else p.grad
            scaled.append((group, p, g, (p.abs() + group["eta"]) if group["adaptive"] else None))
        norm = None
        if any(group["normalize"] for group, *_ in scaled):
            sq = [_sq_norm((t * g) if t is not None else g) for _, _, g, t in scaled]
            norm = torch.stack(sq).sum().sqrt() if sq else torch.zeros(())
        out = []
        for group, p, g, t in scaled:
            e = g if t is None else t * t * g
            if group["normalize"]:
                e = e * (group["rho"] / (norm.to(e.dtype) + 1e-12))
            else:
                e = e * group["rho"]
            out.append((p, e))
        return out

    @torch.no_grad()
    def first_step(self, scaler: torch.amp.GradScaler | None = None) -> None:
        """Move to w + ε using the current gradients (w is kept for an exact restore), and zero the gradients."""
        self._skip_step = False
        if scaler is not None and scaler.is_enabled():
            scaler.unscale_(self._first_pass_view)  # records an overflow for scaler.update()
            self._skip_step = not all(bool(torch.isfinite(p.grad).all()) for _, p in self.params_with_grad)
        if not self._skip_step:
            for p, e in self.perturbation():
                self.state[p]["w"] = p.detach().clone()
                p.add_(e)
        self.zero_grad()

    @torch.no_grad()
    def second_step(self, scaler: torch.amp.GradScaler | None = None) -> None:
        """Return to w exactly and take the base step with the gradients at w + ε."""
        for group in self.param_groups:
            for p in group["params"]:
                w = self.state[p].pop("w", None)
                if w is not None:
                    p.copy_(w)
        if self._skip_step:
            self._skip_step = False  # the scaler already recorded the first pass's overflow
            return
        if scaler is not None and scaler.is_enabled():
            scaler.step(self.base)
        else:
            self.base.step()

    def step(self, closure: Callable[[], Any] | None = None, scaler: torch.amp.GradScaler | None = None) -> Any:
        """Both passes; ``closure`` must zero grads, compute the loss, backward it (scaled, with a scaler) and
        return it. Returns the loss at w."""
        if closure is None:
            raise RuntimeError(
                f"{type(self).__name__}.step() requires a closure that re-evaluates the model and returns the loss "
                "(it is called twice); or call first_step() and second_step() around your own backward passes"
            )
        with torch.enable_grad():
            loss = closure()
        self.first_step(scaler)
        with torch.enable_grad():
            closure()
        self.second_step(scaler)
        return loss


def _register(name: str, summary: str, paper: R.Paper, defaults: dict[str, Any], notes: str = "") -> None:
    R.register(
        R.AlgorithmSpec(
            name=name,
            cls=SAM,
            family="sharpness",
            paper=paper,
            summary=summary,
            defaults={"base": "sgd", "lr": 0.05, "momentum": 0.9, **defaults},
            search_space={
                "lr": R.LogUniform(1e-4, 1.0),
                "rho": R.LogUniform(defaults["rho"] / 20, defaults["rho"] * 5),
            },
            state_tensors=1,  # the SGD-momentum base's buffer; ε lives only between the two passes
            requires_closure=True,
            supports_complex=False,
            reference="tests.reference.sam:sam",
            test_hparams=dict(lr=0.05, momentum=0.8, weight_decay=0.01),
            # a fixed ρ biases SAM's fixed point by O(ρ): the convergence tests use a small one
            convergence_hparams={"quadratic": {"lr": 0.1, "rho": 1e-3}, "rosenbrock": {"lr": 1e-3, "rho": 1e-4}},
            notes=notes,
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
    {"rho": 0.05},
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
    {"rho": 0.5, "adaptive": True, "eta": 0.01},
    notes="T = |w| + η on every parameter; the authors' code leaves non-'weight' parameters (biases) unnormalized.",
)
_register(
    "usam",
    "unnormalized SAM: perturbation ρ g",
    R.Paper(
        "Towards Understanding Sharpness-Aware Minimization", "Andriushchenko, Flammarion", 2022, "2206.06232", "#34"
    ),
    {"rho": 0.05, "normalize": False},
)
