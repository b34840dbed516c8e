"""Bloop: Hsieh, Thornton, Ndiaye, Klein, Cuturi & Ablin (2024), *Careful with that Scalpel: Improving Gradient
Surgery with an EMA*, arXiv:2402.02998.

The auxiliary loss is minimized among the minimizers of the main (training) loss. The update direction is

    m ← β m + (1 − β) g_main,        d = g_main + λ (g_aux − (⟨g_aux, m⟩ / ‖m‖²) m)

so the auxiliary part is orthogonal to the EMA m of the main gradients rather than to the noisy minibatch
gradient (β = 0 is gradient surgery without EMA). The projection is over all parameters as one vector; it is
invariant to the scale of m, so the zero-initialized EMA needs no bias correction. ``d`` goes to ``.grad``;
any optimizer then steps.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

__all__ = ["Bloop"]


class Bloop:
    """Bloop gradient combination (arXiv:2402.02998) over ``params``: ``backward(main_loss, aux_loss)``.

    ``lam`` (λ ≥ 0) weighs the projected auxiliary gradient; ``beta`` ∈ [0, 1) is the EMA rate of the main
    gradient (0: project on the current minibatch gradient, the no-EMA baseline)."""

    def __init__(self, params: Iterable[Tensor], *, lam: float = 1.0, beta: float = 0.99, eps: float = 1e-30) -> None:
        self.params = [p for p in params]
        if not self.params:
            raise ValueError("params is empty")
        lam, beta, eps = float(lam), float(beta), float(eps)
        if not lam >= 0.0:
            raise ValueError(f"lam must be >= 0, got {lam}")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}")
        if not eps > 0.0:
            raise ValueError(f"eps must be > 0, got {eps}")
        self.lam, self.beta, self.eps = lam, beta, eps
        self.ema = [torch.zeros_like(p, memory_format=torch.preserve_format).detach() for p in self.params]
        self.steps = torch.zeros((), dtype=torch.int64)

    @torch.no_grad()
    def direction(self, main_grads: Sequence[Tensor], aux_grads: Sequence[Tensor]) -> list[Tensor]:
        """Update the EMA with ``main_grads`` and return the Bloop direction (one tensor per parameter)."""
        for m, g in zip(self.ema, main_grads):
            m.mul_(self.beta).add_(g, alpha=1.0 - self.beta)
        dot = sum((a.to(torch.float64) * m.to(torch.float64)).sum() for a, m in zip(aux_grads, self.ema))
        sq = sum(m.to(torch.float64).pow(2).sum() for m in self.ema)
        coef = float(dot / sq) if float(sq) > self.eps else 0.0
        self.steps += 1
        return [g + self.lam * (a - coef * m) for g, a, m in zip(main_grads, aux_grads, self.ema)]

    def backward(self, main_loss: Tensor, aux_loss: Tensor, *, retain_graph: bool = False) -> None:
        """Gradients of both losses, their Bloop combination accumulated into the parameters' ``.grad``."""
        g_main = torch.autograd.grad(main_loss, self.params, retain_graph=True, allow_unused=True)
        g_aux = torch.autograd.grad(aux_loss, self.params, retain_graph=retain_graph, allow_unused=True)
        g_main = [torch.zeros_like(p) if g is None else g for g, p in zip(g_main, self.params)]
        g_aux = [torch.zeros_like(p) if g is None else g for g, p in zip(g_aux, self.params)]
        for p, d in zip(self.params, self.direction(g_main, g_aux)):
            if p.grad is None:
                p.grad = d.detach().clone()
            else:
                p.grad.add_(d)

    def state_dict(self) -> dict[str, object]:
        return {"ema": [m.clone() for m in self.ema], "steps": self.steps.clone()}

    def load_state_dict(self, state: dict[str, object]) -> None:
        ema = state["ema"]
        if len(ema) != len(self.ema) or any(a.shape != b.shape for a, b in zip(ema, self.ema)):
            raise ValueError("state does not match the parameters of this Bloop")
        for m, saved in zip(self.ema, ema):
            m.copy_(saved)
        self.steps = state["steps"].clone()
