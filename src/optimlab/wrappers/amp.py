"""AMP — adversarial model perturbation (Zheng, Zhang & Mao, 2021, *Regularizing Neural Networks via
Adversarial Model Perturbation*, CVPR 2021, arXiv:2010.04925, seed #85). Not mixed precision.

AMP minimizes the "AMP loss" J(w) = max_{‖Δ‖ ≤ ε} L(w + Δ), approximating the inner maximization by N steps of
gradient ascent with step size ζ, each followed by the projection onto the ε-ball (the paper's Algorithm 1):

    Δ₀ = 0;  Δₙ₊₁ = Π_ε(Δₙ + ζ ∇L(w + Δₙ)), n = 0..N−1;   base step on ∇L(w + Δ_N),

Π_ε(Δ) = Δ · min(1, ε/‖Δ‖). Defaults ε = 0.5, ζ = 1, N = 1 and the outer SGD (lr 0.1, Nesterov momentum 0.9,
weight decay 1e-4) are those of the authors' code (github.com/hiyouga/AMP-Regularizer, ``amp.py`` and
``main.py``). The authors' code projects each parameter tensor onto its own ε-ball (``dev.norm()`` per
tensor); the paper states one ball for the whole parameter vector. ``per_tensor=False`` (default) follows the
paper, ``per_tensor=True`` the code — note that ε = 0.5 was tuned with the latter. With N = 1, AMP is SAM with
ρ = ε when ‖ζ g‖ ≥ ε and USAM with ρ = ζ otherwise.

The closure is called N + 1 times per step; with the two-call API call ``first_step()`` after each of the N
ascent backward passes and ``second_step()`` after the last one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from ..optim import OneOf, Range
from ._twopass import PerturbationWrapper
from .sam import _sq_norm


class AMP(PerturbationWrapper):
    """Adversarial model perturbation (Zheng et al., 2021): the base optimizer steps on the gradient at
    w + Δ, Δ found by ``inner_steps`` projected gradient-ascent steps of size ``inner_lr`` in the ball of
    radius ``epsilon`` (global norm, or per tensor with ``per_tensor=True`` as in the authors' code).

    ``AMP(model.parameters(), base="sgd", epsilon=0.5, inner_lr=1.0, inner_steps=1, lr=0.1, momentum=0.9)``.
    ``epsilon``/``inner_lr`` may differ per param group (the global projection then scales each group by
    min(1, ε_group/‖Δ‖)); ``inner_steps`` of a group is how many of the step's ascent passes move it.
    """

    hyperparameters = {
        "epsilon": Range(0.0),
        "inner_lr": Range(0.0),
        "inner_steps": Range(1, integer=True),
        "per_tensor": OneOf((True, False)),
    }

    def __init__(
        self,
        params,
        base: Any = "sgd",
        epsilon: float = 0.5,
        inner_lr: float = 1.0,
        inner_steps: int = 1,
        per_tensor: bool = False,
        **base_kwargs: Any,
    ) -> None:
        defaults = dict(epsilon=epsilon, inner_lr=inner_lr, inner_steps=inner_steps, per_tensor=per_tensor)
        super().__init__(params, base, base_kwargs, defaults)

    def _init_transient(self) -> None:
        super()._init_transient()
        self._inner = 0  # ascent passes done in the current step

    def ascent_passes(self) -> int:
        return max(group["inner_steps"] for group in self.param_groups)

    @torch.no_grad()
    def perturbation(self) -> list[tuple[Tensor, Tensor]]:
        """[(param, Δ)]: one projected ascent step from the current Δ = p − w (0 on the first call)."""
        n = self._inner
        self._inner += 1
        moving = [(g, p) for g, p in self.params_with_grad if n < g["inner_steps"]]
        deltas = []
        for group, p in moving:
            w = self.state[p].get("w") if p in self.state else None
            step = self._effective(group, p.grad) * group["inner_lr"]
            deltas.append((group, p, step if w is None else (p - w) + step))
        if not deltas:
            return []
        if any(not g["per_tensor"] for g, _, _ in deltas):
            total = torch.stack([_sq_norm(d) for g, _, d in deltas if not g["per_tensor"]]).sum().sqrt()
        out = []
        for group, p, d in deltas:
            norm = _sq_norm(d).sqrt() if group["per_tensor"] else total
            coef = torch.clamp(group["epsilon"] / (norm + 1e-12), max=1.0)
            out.append((p, d * coef.to(d.dtype)))
        return out

    def _end_batch(self) -> None:
        self._inner = 0


R.register(
    R.AlgorithmSpec(
        name="amp",
        cls=AMP,
        family="sharpness",
        paper=R.Paper(
            "Regularizing Neural Networks via Adversarial Model Perturbation",
            "Zheng, Zhang, Mao",
            2021,
            "2010.04925",
            "#85",
        ),
        summary="adversarial model perturbation: N projected ascent steps Δ ← Π_ε(Δ + ζ∇L(w+Δ)), base step at w + Δ",
        hparams="base lr momentum nesterov weight_decay epsilon inner_lr inner_steps",
        paper_defaults=dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4),
        search_space={
            "lr": R.LogUniform(1e-4, 1.0),
            "epsilon": R.LogUniform(0.05, 2.0),
            "inner_lr": R.LogUniform(0.1, 2.0),
        },
        state_tensors=1,  # the SGD-momentum buffer; w lives only inside a step
        notes=(
            "global projection (the paper) by default; the authors' code projects per tensor (per_tensor=True); "
            "defaults from their main.py"
        ),
        conventions=(
            R.Convention(
                point="the ε-ball of the perturbation",
                paper="one ball for the whole parameter vector",
                elsewhere="the authors' code: one ball per parameter tensor (ε = 0.5 was tuned with it)",
                switch="per_tensor",
                choices=((False, "the paper"), (True, "the authors' code")),
            ),
        ),
    )
)
