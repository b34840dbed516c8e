"""⊥Grad ("ortho-grad") wrapper (Prieto, Barsbey, Mediano & Birdal, 2025, *Grokking at the Edge of Numerical
Stability*, arXiv:2501.04697, seed #253).

Without regularization, training past 100% accuracy mostly scales the logits up along the weights ("naïve
loss minimization"), which drives softmax into floating-point collapse and delays grokking. ⊥Grad removes the
gradient component parallel to the weights, per parameter tensor w with gradient g (flattened):

    g⊥ = g − (⟨w, g⟩ / (⟨w, w⟩ + ε)) w,      g⊥ ← g⊥ · ‖g‖ / (‖g⊥‖ + ε),    ε = 1e-30,

and passes g⊥ to the base optimizer. Checked against the authors' ``orthograd.py`` (the ``OrthoGrad``
wrapper of github.com/LucasPrietoAl/grokking-at-the-edge-of-numerical-stability, as mirrored in its forks): the
same projection, rescale and ε in both denominators; their runs use AdamW with weight decay 0, betas
(0.9, 0.99). One gradient evaluation per step: ``requires_closure`` is False and the cost is ≈ the base's.

``p.grad`` is left as the user computed it: the base reads g⊥ through a temporary swap that is undone after
its step. Low-precision parameters are projected in fp32; complex ones through their real view. A
one-element tensor gets g⊥ = 0 exactly (its only direction is along w) unless w = 0.

⊥Grad is not an unconstrained minimizer: its update has no component along w, so with SGD the norm ‖w‖
never decreases and the fixed points are the critical points of the loss restricted to spheres ‖w‖ = r (a
curve through the minimizer). The generic convergence checks (quadratic from 0, Rosenbrock from (−1.5, 2),
whose minimizer has a smaller norm than the start) are therefore skipped by its record;
``tests/test_orthograd.py`` checks the constrained behaviour instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from ..optim import OneOf, Range
from ._wrapper import WrapperOptimizer

_LOW = (torch.float16, torch.bfloat16)


@torch.no_grad()
def orthogonalize(w: Tensor, g: Tensor, eps: float = 1e-30) -> Tensor:
    """g⊥ = g − (⟨w,g⟩/(⟨w,w⟩+ε)) w rescaled to ‖g‖ (a new tensor, g's dtype; math in ≥ fp32)."""
    if w.is_complex():
        w, g_real = torch.view_as_real(w), torch.view_as_real(g)
        return torch.view_as_complex(orthogonalize(w, g_real, eps).contiguous())
    if w.numel() == 1:  # the complement of a nonzero w in R¹ is {0}; computing it would amplify rounding
        return g * (w == 0).to(g.dtype)
    wf = w.float() if w.dtype in _LOW else w
    gf = g.float() if g.dtype in _LOW else g
    wv, gv = wf.reshape(-1), gf.reshape(-1)
    proj = torch.dot(wv, gv) / (torch.dot(wv, wv) + eps)
    perp = torch.addcmul(gv, wv, proj, value=-1.0)  # g − proj·w, the only full-size temporary
    perp.mul_(torch.linalg.vector_norm(gv) / (torch.linalg.vector_norm(perp) + eps))
    return perp.view_as(g).to(g.dtype)


class OrthoGrad(WrapperOptimizer):
    """⊥Grad (Prieto et al., 2025): the base optimizer steps on the gradient with its component along the
    weights removed (per tensor) and rescaled to the original norm.

    ``OrthoGrad(model.parameters(), base="adamw", lr=1e-2, betas=(0.9, 0.99), weight_decay=0.0)``; a group with
    ``orthogonalize=False`` (e.g. biases or embeddings) passes its gradient through unchanged. Single pass:
    ``step()`` works without a closure.
    """

    hyperparameters = {
        "ortho_eps": Range(0.0),
        "orthogonalize": OneOf((True, False)),
    }
    requires_closure = False

    def __init__(
        self,
        params,
        base: Any = "adamw",
        ortho_eps: float = 1e-30,
        orthogonalize: bool = True,
        **base_kwargs: Any,
    ) -> None:
        super().__init__(params, base, base_kwargs, dict(ortho_eps=ortho_eps, orthogonalize=orthogonalize))

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        swapped: list[tuple[Tensor, Tensor]] = []
        try:
            for group in self.param_groups:
                if not group["orthogonalize"]:
                    continue
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    if p.grad.is_sparse:
                        raise RuntimeError("OrthoGrad does not support sparse gradients")
                    swapped.append((p, p.grad))
                    p.grad = orthogonalize(p.detach(), p.grad, group["ortho_eps"])
            self.base.step()
        finally:
            for p, g in swapped:
                p.grad = g
        return loss


R.register(
    R.AlgorithmSpec(
        name="orthograd",
        cls=OrthoGrad,
        family="gradient_manipulation",
        paper=R.Paper(
            "Grokking at the Edge of Numerical Stability",
            "Prieto, Barsbey, Mediano, Birdal",
            2025,
            "2501.04697",
            "#253",
        ),
        summary="⊥Grad: the base steps on g minus its component along w (per tensor), rescaled to ‖g‖",
        # no weight decay (their Adam eps default is 1e-25; AdamW's 1e-8 is kept here)
        # the authors' ⊥AdamW run of their Fig. 1 (run_main_experiments.sh, utils.py): lr 0.01, betas (0.9, 0.99),
        hparams="base lr betas weight_decay",
        paper_defaults=dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.0),
        search_space={"lr": R.LogUniform(1e-5, 1e-1)},
        state_tensors=2,  # AdamW's moments; the wrapper keeps nothing
        notes=(
            "per-tensor projection, eps = 1e-30 in both denominators (the authors' orthograd.py); not an "
            "unconstrained minimizer: the matrix's convergence checks are skipped, tests/test_orthograd.py checks it"
        ),
    )
)
