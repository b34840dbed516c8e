"""Finite-difference gradient regularization (Karakida, Takase, Hayase & Osawa, 2023, *Understanding Gradient
Regularization in Deep Learning: Efficient Finite-Difference Computation and Implicit Bias*, ICML 2023,
arXiv:2210.02720, seed #55).

Gradient regularization minimizes L̃(w) = L(w) + (γ/2)‖∇L(w)‖², whose gradient g + γHg needs a
Hessian-vector product (double backprop). The finite difference along g replaces Hg with a second gradient:

* forward (F-GR, an ascent step first):  Hg ≈ (∇L(w + h g) − g)/h, so the base steps on
  (1 − γ/h)·g + (γ/h)·∇L(w + h g);
* backward (B-GR, a descent step first): Hg ≈ (g − ∇L(w − h g))/h, so the base steps on
  (1 + γ/h)·g − (γ/h)·∇L(w − h g).

Two gradient evaluations per step, like SAM; γ = h turns F-GR into unnormalized SAM (USAM with ρ = h). The
paper finds F-GR with a relatively large ascent step generalizes best and better than B-GR and double
backprop; its experiments sweep γ ∈ {1e-4, ..., 1e-1} and the step (ε in the paper, ``h`` here)
∈ {0.01, ..., 0.5} (SGD, momentum 0.9, weight decay 1e-4, lr 0.1 cosine). There is no single default: the
registry uses γ = 0.01, h = 0.1 from that grid. (The ascent step is written here unnormalized, as in the
derivation; the authors' code was not available to check whether their runs normalize it.)

Because g(w) enters the update, it is kept from the first pass (one transient copy, besides w), and under DDP
the first pass must be synchronized: ``no_sync`` is refused.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from ..optim import OneOf, Range
from ._twopass import PerturbationWrapper


class FDGR(PerturbationWrapper):
    """Finite-difference gradient regularization (Karakida et al., 2023): the base steps on
    ``(1 − γ/h) g + (γ/h) ∇L(w + h g)`` (``variant="forward"``) or ``(1 + γ/h) g − (γ/h) ∇L(w − h g)``
    (``variant="backward"``), a finite-difference estimate of the gradient of L + (γ/2)‖∇L‖².

    ``FDGR(model.parameters(), base="sgd", gamma=0.01, h=0.1, lr=0.1, momentum=0.9)``; ``gamma`` and ``h`` may
    differ per param group. After the step, ``.grad`` holds the combined gradient the base used.
    """

    hyperparameters = {
        "gamma": Range(0.0),
        "h": Range(0.0, low_open=True),
        "variant": OneOf(("forward", "backward")),
    }
    uses_first_pass_gradient = True
    _transient_keys = ("w", "grad_w")

    def __init__(
        self,
        params,
        base: Any = "sgd",
        gamma: float = 0.01,
        h: float = 0.1,
        variant: str = "forward",
        **base_kwargs: Any,
    ) -> None:
        super().__init__(params, base, base_kwargs, dict(gamma=gamma, h=h, variant=variant))

    def _stash(self) -> None:
        for _, p in self.params_with_grad:
            self._stash_grad(p, "grad_w")

    @torch.no_grad()
    def perturbation(self) -> list[tuple[Tensor, Tensor]]:
        """[(param, ±h·g)]: the ascent (forward) or descent (backward) finite-difference step."""
        out = []
        for group, p in self.params_with_grad:
            sign = 1.0 if group["variant"] == "forward" else -1.0
            out.append((p, self._effective(group, p.grad) * (sign * group["h"])))
        return out

    @torch.no_grad()
    def _combine(self) -> None:
        for group in self.param_groups:
            c = group["gamma"] / group["h"]
            for p in group["params"]:
                g = self.state[p].get("grad_w") if p in self.state else None
                if g is None or p.grad is None:
                    continue
                if group["variant"] == "forward":  # (1 − c) g + c g⁺
                    p.grad.mul_(c).add_(g, alpha=1.0 - c)
                else:  # (1 + c) g − c g⁻
                    p.grad.mul_(-c).add_(g, alpha=1.0 + c)


_PAPER = R.Paper(
    "Understanding Gradient Regularization in Deep Learning: Efficient Finite-Difference Computation and Implicit Bias",
    "Karakida, Takase, Hayase, Osawa",
    2023,
    "2210.02720",
    "#55",
)

for _name, _overrides, _summary in (
    ("fdgr", {}, "gradient regularization by a forward difference: (1 - γ/h) g + (γ/h) ∇L(w + h g)"),
    (
        "fdgr_backward",
        {"variant": "backward"},
        "gradient regularization by a backward difference: (1 + γ/h) g - (γ/h) ∇L(w - h g)",
    ),
):
    R.register(
        R.AlgorithmSpec(
            name=_name,
            cls=FDGR,
            family="sharpness",
            paper=_PAPER,
            summary=_summary,
            hparams="base lr momentum weight_decay gamma h variant",
            paper_defaults=dict(lr=0.1, momentum=0.9, weight_decay=1e-4, **_overrides),
            search_space={
                "lr": R.LogUniform(1e-4, 1.0),
                "gamma": R.LogUniform(1e-4, 0.1),
                "h": R.LogUniform(0.01, 0.5),
            },
            state_tensors=1,  # the SGD-momentum buffer; w and g(w) live only inside a step
            notes="ascent step unnormalized (the derivation); gamma = h gives USAM with rho = h",
        )
    )
