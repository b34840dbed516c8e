"""FSAM: SAM with a Fisher mask (Zhong, Ding, Shen, Mi, Liu, Du & Tao, 2022, *Improving Sharpness-Aware
Minimization with Fisher Mask for Better Generalization on Language Models*, Findings of EMNLP 2022,
arXiv:2210.05497, seed #78).

Every ``mask_interval`` steps the diagonal empirical Fisher information of each parameter is estimated by the
squared first-pass gradient, F = g², and a binary mask keeps the ``1 − sparsity`` fraction of the entries with
the largest F (top-k over each param group's tensors together; k = ⌊n(1 − s)⌋). The perturbation is SAM's,
restricted to the mask:

    ε = ρ · (m ⊙ g) / ‖g‖,

with the norm over the unmasked gradient, as in the authors' code (``SAM_Mask.first_step`` in
github.com/WHU-ZQH/FSAM4PLM, ``fairseq-FSAM/optim/samsgd.py``), whose masks are also refreshed from the
current gradient squared (``set_fisher_mask``) every ``--mask-iter-e`` = 100 updates with ``keep_ratio`` = 0.1.
Their code leaves biases, embeddings and BatchNorm parameters out of the mask (perturbed densely): put those
in a group with ``sparsity=0`` to do the same. ``update_mask(scores)`` sets the masks from your own Fisher
estimate instead (e.g. squared gradients averaged over several batches).

The masks are per-parameter ``bool`` state tensors, refreshed in place and saved in checkpoints together with
the step counter, so a resumed run uses the same mask until the next refresh.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from ..optim import Range
from .sam import SAM


def keep_count(numel: int, sparsity: float) -> int:
    """k = ⌊numel·(1 − sparsity)⌋ (computed to 6 decimals, so 0.1·n is not lost to rounding)."""
    return int(math.floor(round(numel * (1.0 - float(sparsity)), 6)))


class FSAM(SAM):
    """Fisher-masked SAM (Zhong et al., 2022): only the top ``1 − sparsity`` fraction of the coordinates by
    empirical Fisher information (g², refreshed every ``mask_interval`` steps) are perturbed.

    ``FSAM(model.parameters(), base="adamw", rho=0.05, sparsity=0.9, mask_interval=100, lr=2e-5)``. The masks
    are per param group (top-k over the group's tensors together); ``update_mask(scores)`` installs masks from
    your own importance scores. All SAM options (``adaptive``, ``perturb``, m-sharpness, GradScaler, DDP
    ``no_sync``) apply.
    """

    hyperparameters = {
        **SAM.hyperparameters,
        "sparsity": Range(0.0, 1.0),
        "mask_interval": Range(1, integer=True),
    }
    own_state = ("fisher_mask",)

    def __init__(
        self,
        params,
        base: Any = "adamw",
        rho: float = 0.05,
        sparsity: float = 0.9,
        mask_interval: int = 100,
        adaptive: bool = False,
        eta: float = 0.01,
        normalize: bool = True,
        perturb: bool = True,
        **base_kwargs: Any,
    ) -> None:
        defaults = dict(
            rho=rho,
            adaptive=adaptive,
            eta=eta,
            normalize=normalize,
            perturb=perturb,
            sparsity=sparsity,
            mask_interval=mask_interval,
        )
        super(SAM, self).__init__(params, base, base_kwargs, defaults)

    # ----------------------------------------------------------------- masks
    @torch.no_grad()
    def _install_masks(self, group: dict[str, Any], params: list[Tensor], scores: list[Tensor]) -> None:
        if any(callable(getattr(p, "full_tensor", None)) for p in params):
            raise NotImplementedError(
                "FSAM does not support sharded (DTensor, FSDP2) parameters: its Fisher mask is one top-k over every "
                "coordinate of the group, which needs all gradients on one rank; use SAM, or DDP"
            )
        flat = torch.cat([s.detach().reshape(-1).float() for s in scores])
        keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
        k = keep_count(flat.numel(), group["sparsity"])
        if k > 0:
            keep[torch.topk(flat, k, sorted=False).indices] = True
        offset = 0
        for p in params:
            n = p.numel()
            mask = keep[offset : offset + n].view(p.shape).to(p.device)
            offset += n
            state = self.state[p]
            if "fisher_mask" in state:
                state["fisher_mask"].copy_(mask)
            else:
                state["fisher_mask"] = mask.clone()

    @torch.no_grad()
    def update_mask(self, scores: Sequence[Tensor] | None = None) -> None:
        """Recompute the masks now: from ``scores`` (one importance tensor per parameter, in param-group
        order, e.g. a Fisher diagonal estimated over several batches) or, when None, from the current
        gradients squared."""
        params = [p for g in self.param_groups for p in g["params"]]
        if scores is not None:
            scores = list(scores)
            if len(scores) != len(params) or any(s.shape != p.shape for s, p in zip(scores, params)):
                raise ValueError("scores must hold one tensor per parameter, shaped like it, in param-group order")
            by_param = dict(zip(params, scores))
        else:
            by_param = {p: p.grad.float() ** 2 for p in params if p.grad is not None}
        for group in self.param_groups:
            ps = [p for p in group["params"] if p in by_param]
            if ps:
                self._install_masks(group, ps, [by_param[p] for p in ps])

    def _refresh_due(self, group: dict[str, Any]) -> bool:
        for p in group["params"]:
            state = self.state.get(p)
            if p.grad is not None and (
                not state or "fisher_mask" not in state or int(state.get("step", 0)) % group["mask_interval"] == 0
            ):
                return True
        return False

    @torch.no_grad()
    def perturbation(self) -> list[tuple[Tensor, Tensor]]:
        """SAM's ε = ρ g/‖g‖ (norm over the unmasked gradient) times the Fisher mask; the masks are refreshed
        from g² first when due."""
        for group in self.param_groups:
            if group["perturb"] and self._refresh_due(group):
                ps = [p for p in group["params"] if p.grad is not None]
                self._install_masks(group, ps, [p.grad.float() ** 2 for p in ps])
        out = []
        for p, e in super().perturbation():
            mask = self.state[p].get("fisher_mask")
            out.append((p, e * mask if mask is not None else e))
        return out

    def _init_own_state(self, p: Tensor, state: dict[str, Tensor]) -> None:
        state.setdefault("fisher_mask", torch.ones_like(p, dtype=torch.bool))
        state.setdefault("step", torch.zeros((), dtype=torch.float32))

    def _end_step(self, stepped: bool) -> None:
        if not stepped:
            return
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    state = self.state[p]
                    if "step" not in state:
                        state["step"] = torch.zeros((), dtype=torch.float32)
                    state["step"] += 1


def _fsam_state_bytes(shape, dtype, hp) -> int:
    """The base's state, a 1-byte bool mask entry per element and FSAM's 4-byte step counter."""
    base = R.spec(hp["base"])
    base_hp = {k: v for k, v in hp.items() if k not in FSAM.hyperparameters and k != "base"}
    return base.state_bytes(shape, dtype, **base_hp) + math.prod(shape) + 4


R.register(
    R.AlgorithmSpec(
        name="fsam",
        cls=FSAM,
        family="sharpness",
        paper=R.Paper(
            "Improving Sharpness-Aware Minimization with Fisher Mask for Better Generalization on Language Models",
            "Zhong, Ding, Shen, Mi, Liu, Du, Tao",
            2022,
            "2210.05497",
            "#78",
        ),
        summary="SAM perturbing only the top (1 - s) coordinates by empirical Fisher g², mask refreshed every T_m",
        # keep ratio 0.1, mask interval 100
        # the authors' scripts: fairseq Adam (decoupled decay 0.01, betas (0.9, 0.98), eps 1e-6), rho 0.05,
        hparams="base lr betas eps weight_decay rho sparsity mask_interval",
        paper_defaults=dict(lr=2e-5, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01),
        search_space={
            "lr": R.LogUniform(1e-5, 1e-2),
            "rho": R.LogUniform(0.005, 0.5),
            "sparsity": R.Uniform(0.5, 0.99),
        },
        state_tensors=2,  # AdamW's two moments (the default base); the mask is counted by the formula
        state_formula=_fsam_state_bytes,
        notes=(
            "F = g² of the current batch (the authors' set_fisher_mask); eps = rho m*g/||g|| with the unmasked norm "
            "(their SAM_Mask.first_step); top-k per param group"
        ),
    )
)
