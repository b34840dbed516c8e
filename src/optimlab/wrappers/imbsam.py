"""ImbSAM: class-aware SAM for class-imbalanced recognition (Zhou, Qu, Xu & Shen, 2023, *ImbSAM: A Closer Look
at Sharpness-Aware Minimization in Class-Imbalanced Recognition*, ICCV 2023, arXiv:2308.07815, seed #71).

The loss is split by class prior into a head part L_H (frequent classes) and a tail part L_T (classes with few
training samples); only the tail part is made sharpness-aware:

    g = ∇L_H(w) + ∇L_T(w + ε_T),    ε_T = ρ ∇L_T(w) / ‖∇L_T(w)‖.

Verified against the authors' code (github.com/cool-xuan/Imbalanced_SAM: ``ImbSAM.first/second/third_step``
in ``imbsam.py`` and ``forbackward`` in ``utils/trainval.py``): the head and tail losses are the per-example
losses of each part summed and divided by the *whole* batch size (so L_H + L_T is the usual mean loss); one
forward at w serves both backward passes, one forward at w + ε gives the tail gradient there; ρ = 0.05;
tail classes are those with fewer than η = 20 training samples (a data-side choice, made in your closure).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from ._twopass import _scaler_on
from .sam import SAM


def split_losses(per_example_loss: Tensor, tail_mask: Tensor) -> tuple[Tensor, Tensor]:
    """(L_H, L_T) from unreduced per-example losses and a bool mask of the tail examples: each part summed
    and divided by the batch size, as the authors do (L_H + L_T is the mean loss)."""
    n = per_example_loss.shape[0]
    tail_mask = tail_mask.to(torch.bool)
    return per_example_loss[~tail_mask].sum() / n, per_example_loss[tail_mask].sum() / n


class ImbSAM(SAM):
    """ImbSAM (Zhou et al., 2023): SAM on the tail-class loss only; the head-class gradient is taken at w.

    The closure returns the pair ``(head_loss, tail_loss)`` and does **not** call backward — the wrapper
    backpropagates each part itself (through ``scaler.scale`` when a GradScaler is passed)::

        tail_classes = torch.tensor([...])                      # classes with few training samples
        def closure():
            losses = F.cross_entropy(model(x), y, reduction="none")
            return optimlab.wrappers.imbsam.split_losses(losses, torch.isin(y, tail_classes))
        opt.step(closure)                                       # returns L_H + L_T at w

    It is called twice (at w and at w + ε); the head loss of the second call is not used. A closure that calls
    backward itself and returns one loss (the usual convention) is treated as all-tail, i.e. plain SAM.

    Two-call API::

        head, tail = split_losses(loss_fn(model(x), y), is_tail)
        head.backward(retain_graph=True); opt.stash_head_gradient()    # keeps ∇L_H(w), zeroes grads
        tail.backward(); opt.first_step()                              # w ← w + ε_T
        split_losses(loss_fn(model(x), y), is_tail)[1].backward()
        opt.second_step()                                              # g = ∇L_T(w + ε_T) + ∇L_H(w)

    The head gradient enters the update, so under DDP the first pass must be synchronized (no ``no_sync``).
    All SAM options (``adaptive``, ``perturb``, m-sharpness with ``closure(k)``, GradScaler) apply.
    """

    requires_head_tail = True

    _transient_keys = ("w", "head_grad")

    @torch.no_grad()
    def stash_head_gradient(self, scaler: torch.amp.GradScaler | None = None) -> None:
        """Keep the current gradients as ∇L_H(w) (added to the final gradient in ``second_step``) and zero them."""
        if not self._unscale(scaler):
            self._skip_step = True
        for _, p in self.params_with_grad:
            self._stash_grad(p, "head_grad")
        self.zero_grad()

    def _combine(self) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                head = self.state[p].get("head_grad") if p in self.state else None
                if head is None:
                    continue
                if p.grad is None:
                    p.grad = head
                else:
                    p.grad.add_(head)

    def _backward_output(self, output: Any, scaler, final: bool) -> Any:
        if not isinstance(output, tuple):
            return output  # the closure did backward itself: all-tail (SAM)
        if len(output) != 2:
            raise TypeError(f"ImbSAM's closure returns (head_loss, tail_loss), got a tuple of {len(output)}")
        head, tail = output

        def backward(loss: Tensor, retain: bool = False) -> None:
            if loss.requires_grad:
                (scaler.scale(loss) if _scaler_on(scaler) else loss).backward(retain_graph=retain)

        self.zero_grad()
        if not final:
            backward(head, retain=True)
            self.stash_head_gradient(scaler)
        backward(tail)
        return head.detach() + tail.detach()


R.register(
    R.AlgorithmSpec(
        name="imbsam",
        cls=ImbSAM,
        family="sharpness",
        paper=R.Paper(
            "ImbSAM: A Closer Look at Sharpness-Aware Minimization in Class-Imbalanced Recognition",
            "Zhou, Qu, Xu, Shen",
            2023,
            "2308.07815",
            "#71",
        ),
        summary="SAM on the tail-class loss only: g = ∇L_H(w) + ∇L_T(w + ρ∇L_T/‖∇L_T‖); closure returns (L_H, L_T)",
        # the authors' scripts/train.py: SGD lr 0.01, momentum 0.9, weight decay 1e-3, rho 0.05
        hparams="base lr momentum weight_decay rho",
        paper_defaults=dict(lr=0.01, momentum=0.9, weight_decay=1e-3),
        search_space={"lr": R.LogUniform(1e-4, 1.0), "rho": R.LogUniform(0.0025, 0.25)},
        state_tensors=1,  # the SGD-momentum buffer; w and ∇L_H(w) live only inside a step
        notes=(
            "a closure returning one loss (backward done) is all-tail, i.e. SAM; the generic matrix runs that path, "
            "tests/test_sam_family.py checks the (head, tail) split against the reference"
        ),
    )
)
