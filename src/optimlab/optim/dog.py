"""DoG, layer-wise L-DoG and DoWG: parameter-free step sizes from the distance travelled over the gradients.

Ivgi, Hinder & Carmon (2023), *DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size Schedule*,
arXiv:2302.12022 (authors' package ``dog-optimizer``); Khaled, Mishchenko & Jin (2023), *DoWG Unleashed: An
Efficient Universal Parameter-Free Gradient Descent Method*, arXiv:2305.16284. (U-DoG is not a DoG variant of
arXiv:2302.12022: it is the accelerated extragradient method of Kreisler, Ivgi, Hinder & Carmon (2024),
*Accelerated Parameter-Free Stochastic Optimization*, arXiv:2404.00666, two gradients per step; not implemented.)

Over the parameters x of a param group (DoG, DoWG) or of one tensor (L-DoG), with g_t the gradient plus the
coupled decay λx_t:

    r̄_1 = r_ε = reps_rel·(1 + ‖x_1‖),   r̄_t = max(r̄_{t−1}, ‖x_t − x_1‖)
    DoG:  G_t = eps + Σ_{i≤t} ‖g_i‖²,          η_t = lr · r̄_t / √G_t
    DoWG: G_t = eps + Σ_{i≤t} r̄_i² ‖g_i‖²,     η_t = lr · r̄_t² / √G_t
    x_{t+1} = x_t − η_t g_t

(``init_eta`` replaces η_1 and sets r_ε = 0, as in ``dog-optimizer``.) The papers recommend iterate averaging with
DoG (:mod:`optimlab.schedules`' EMA/SWA, or the package's polynomial averager).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from . import _kernels as K
from ._base import Optimizer
from ._group_scalars import GroupScalarOptimizer, read_scalars, scalar, sq_norm, state_bytes, write_scalars
from ._rules import Range

_SCALARS = ("rbar", "G")


def dog_update_(p: Tensor, grad: Tensor, x0: Tensor, rbar, G, *, step, eta: K.Scalar, weight_decay: K.Scalar) -> None:
    """x ← x − η (g + λx); η was computed from the group (or tensor) before the loop, r̄ and G updated there."""
    K.add_scaled_(p, K.coupled_decay(grad, p, weight_decay), -eta)


class DoG(GroupScalarOptimizer):
    """DoG (Ivgi et al., 2023): η_t = lr·max_{i≤t}‖x_i − x_1‖ / √(Σ_{i≤t}‖g_i‖²) per param group.

    Arguments as in the authors' ``dog.DoG``: ``reps_rel`` (r_ε = reps_rel·(1 + ‖x_1‖); 1e-4 for models with
    batch normalization), ``lr`` (the paper's c; keep 1), ``weight_decay`` (L2, added to the gradient), ``eps``
    (added to G once), ``init_eta`` (overrides the first step size).
    """

    hyperparameters = {
        "reps_rel": Range(0.0, low_open=True),
        "lr": Range(0.0, low_open=True),
        "weight_decay": Range(0.0),
        "eps": Range(0.0),
        "init_eta": Range(0.0, low_open=True, optional=True),
    }
    state_names = ("x0", *_SCALARS)
    update = staticmethod(dog_update_)
    #: one step size per tensor (L-DoG) instead of per group
    layerwise = False
    #: DoWG's r̄²-weighted gradient sum and r̄²/√G step
    weighted = False

    def __init__(
        self,
        params,
        reps_rel: float = 1e-6,
        lr: float = 1.0,
        weight_decay: float = 0.0,
        eps: float = 1e-8,
        init_eta: float | None = None,
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(reps_rel=reps_rel, lr=lr, weight_decay=weight_decay, eps=eps, init_eta=init_eta)
        super().__init__(params, {**defaults, "maximize": maximize}, **options)
        self._eta: dict[int, Any] = {}

    def __setstate__(self, state):
        super().__setstate__(state)
        self._eta = {}

    def init_state(self, p: Tensor, group: dict[str, Any]) -> list[Tensor]:
        return [p.detach().clone(), scalar(p), scalar(p)]

    def prepare(self, entries, loss, extras, closure):
        self._eta, kept = {}, []
        for group, members in self.by_group(entries):
            eta = self._group_eta(group, members)
            if eta is not None:
                self._eta[id(group)] = eta
                kept.extend(members)
        return kept

    def _group_eta(self, group: dict[str, Any], members: list) -> float | None:
        """The group's step size η_t (None: its scalars overflow and the non-finite policy skips the group)."""
        wd = group["weight_decay"]
        gsq = sum(sq_norm(K.coupled_decay(e.grad, e.work, wd)) for e in members)
        prior = read_scalars(self, group["params"], _SCALARS)
        if prior is None:  # the group's first step: r̄ = r_ε from ‖x_1‖
            reps = 0.0 if group["init_eta"] is not None else group["reps_rel"]
            rbar = reps * (1.0 + math.sqrt(sum(sq_norm(e.work) for e in members)))
        else:
            rbar = max(prior["rbar"], math.sqrt(sum(sq_norm(e.work - e.state["x0"]) for e in members)))
        G = (group["eps"] if prior is None else prior["G"]) + (rbar**2 if self.weighted else 1.0) * gsq
        if len(self.screen_scalars(members, {"rbar": rbar, "G": G})) < len(members):
            return None
        write_scalars(self, group["params"], {"rbar": rbar, "G": G})
        if not G > 0:
            raise ValueError(f"{type(self).__name__}: the sum of squared gradients is 0 (set eps > 0)")
        if prior is None and group["init_eta"] is not None:
            return group["init_eta"]
        return group["lr"] * (rbar**2 if self.weighted else rbar) / math.sqrt(G)

    def hyper(self, group):
        return dict(eta=self._eta[id(group)], weight_decay=group["weight_decay"])


class DoWG(DoG):
    """DoWG (Khaled, Mishchenko & Jin, 2023): distance-over-weighted-gradients, per param group,
    G_t = Σ r̄_i²‖g_i‖², η_t = lr·r̄_t²/√G_t (normalised-GD-like, adapts to smoothness). Same arguments as
    :class:`DoG`; r_ε = reps_rel·(1 + ‖x_1‖) as DoG's rule (the paper leaves r_ε to the user)."""

    weighted = True


def ldog_update_(
    p: Tensor,
    grad: Tensor,
    x0: Tensor,
    rbar: Tensor,
    G: Tensor,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    reps_rel: K.Scalar,
    eps: K.Scalar,
    weight_decay: K.Scalar,
    init_eta: K.Scalar | None,
) -> None:
    """L-DoG on one tensor: r̄, G and η of DoG computed for this tensor alone, then x ← x − η(g + λx)."""
    g = K.coupled_decay(grad, p, weight_decay)
    gsq = g.square().sum()
    reps = 0.0 if init_eta is not None else reps_rel
    first_rbar = reps * (1.0 + p.norm())
    later_rbar = torch.maximum(rbar, (p - x0).norm())
    if isinstance(step, Tensor):  # compiled: no data-dependent branch
        first = step == 1
        rbar.copy_(torch.where(first, first_rbar, later_rbar))
        G.copy_(torch.where(first, eps + gsq, G + gsq))
    elif step == 1:
        rbar.copy_(first_rbar)
        G.copy_(eps + gsq)
    else:
        rbar.copy_(later_rbar)
        G.add_(gsq)
    eta = lr * rbar / G.sqrt()  # rbar, G: one-element state in p's compute dtype
    if init_eta is not None:
        eta = torch.where(torch.as_tensor(step == 1), torch.as_tensor(init_eta, dtype=eta.dtype), eta)
    K.add_scaled_(p, g, -eta)


class LDoG(DoG):
    """L-DoG (Ivgi et al., 2023): DoG's step size computed separately for every parameter tensor (layer-wise),
    all in the per-tensor update (no whole-group part). Same arguments as the authors' ``dog.LDoG``."""

    update = staticmethod(ldog_update_)
    prepare = Optimizer.prepare  # no whole-group part

    def hyper(self, group):
        keys = ("lr", "reps_rel", "eps", "weight_decay", "init_eta")
        return {k: group[k] for k in keys}


_DOG_PAPER = R.Paper(
    "DoG is SGD's Best Friend: A Parameter-Free Dynamic Step Size Schedule", "Ivgi, Hinder, Carmon", 2023, "2302.12022"
)
_DOG_NOTES = (
    "Same arguments, defaults and math as the authors' dog-optimizer 1.0.3 (float64 parity in tests/test_dog.py): "
    "r_ε = reps_rel·(1 + ‖x_1‖), eps added to G once, weight decay added to the gradient (the package adds it to "
    "p.grad in place; optimlab leaves p.grad alone). Use with iterate averaging (optimlab.schedules.EMA/SWA)."
)

for _name, _cls, _summary, _paper, _state in (
    ("dog", DoG, "distance over gradients: η = max‖x − x₁‖/√Σ‖g‖² per param group", _DOG_PAPER, 1),
    ("ldog", LDoG, "layer-wise DoG: DoG's step size per parameter tensor", _DOG_PAPER, 1),
    (
        "dowg",
        DoWG,
        "distance over weighted gradients: η = r̄²/√Σ r̄²‖g‖² per param group",
        R.Paper(
            "DoWG Unleashed: An Efficient Universal Parameter-Free Gradient Descent Method",
            "Khaled, Mishchenko, Jin",
            2023,
            "2305.16284",
        ),
        1,
    ),
):
    R.register(
        R.AlgorithmSpec(
            name=_name,
            cls=_cls,
            family="parameter_free",
            paper=_paper,
            summary=_summary,
            hparams="reps_rel lr weight_decay eps init_eta",
            search_space={"reps_rel": R.LogUniform(1e-8, 1e-2)},
            state_tensors=_state,
            state_formula=state_bytes(1, 2),
            notes=_DOG_NOTES
            if _name != "dowg"
            else "DoWG has no authors' package; r_ε follows DoG's relative rule and the arguments are DoG's.",
            tuning_free="lr",
        )
    )
