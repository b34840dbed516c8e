"""The schedule-free wrapper: any optimizer's update rule, run on the schedule-free base sequence z.

Defazio, Yang, Mehta, Mishchenko, Khaled & Cutkosky (2024), *The Road Less Scheduled*, arXiv:2405.15682, as the
authors' ``schedulefree.ScheduleFreeWrapper``: the parameters hold y in train mode; before the base step they are
turned into z (the base optimizer then steps z with the gradient taken at y), after it

    x ← lerp(x, z, c),  c = w_t/Σ_{i≤t} w_i,  w_t = t^r (max_{i≤t} lr_i)^p;    y ← lerp(x, z, 1 − β)

with ``lr`` the group's learning rate (schedulers act on it; the wrapper has no warm-up of its own), β =
``momentum``. ``weight_decay_at_y`` decays z by lr·λ·y before the base step (the base's own weight decay would act
at z). Wrapping AdamW with β₁ = 0 and no weight decay of its own gives schedule-free AdamW (``sf_adamw``; checked in
tests/test_schedule_free.py). The wrapper's z, Σw, max lr and step count are its own state, the base's state is the
base's; both are in ``state_dict()``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .. import registry as R
from ..optim import Range, finite_mask
from ..optim.schedule_free import SF_PAPER
from ._wrapper import WrapperOptimizer


class ScheduleFreeWrapper(WrapperOptimizer):
    """Schedule-free form of any base optimizer (Defazio et al., 2024).

    ``ScheduleFreeWrapper(model.parameters(), base="adamw", momentum=0.9, weight_decay_at_y=0.1, lr=2.5e-3,
    betas=(0.0, 0.999), weight_decay=0.0)``, or an optimizer instance as ``base`` with ``params=None``. Arguments
    as ``schedulefree.ScheduleFreeWrapper``; ``momentum`` is stored in the groups as ``sf_momentum`` (so that it
    never collides with a base's own ``momentum``). Call ``optimizer.train()`` / ``optimizer.eval()`` around
    training and evaluation; the parameters are float32/float64 (z is kept in the parameter's dtype).
    """

    scalar_state = ("step", "weight_sum", "lr_max")
    own_state = ("z",)
    hyperparameters = {
        "sf_momentum": Range(0.0, 1.0, low_open=True, high_open=True),
        "weight_decay_at_y": Range(0.0),
        "r": Range(0.0),
        "weight_lr_power": Range(0.0),
    }
    requires_closure = False

    def __init__(
        self,
        params,
        base: Any = "adamw",
        momentum: float = 0.9,
        weight_decay_at_y: float = 0.0,
        r: float = 0.0,
        weight_lr_power: float = 2.0,
        **base_kwargs: Any,
    ) -> None:
        own = dict(sf_momentum=momentum, weight_decay_at_y=weight_decay_at_y, r=r, weight_lr_power=weight_lr_power)
        super().__init__(params, base, base_kwargs, own)
        self.defaults["momentum"] = momentum  # the constructor's name for sf_momentum
        for group in self.param_groups:
            group.setdefault("train_mode", True)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        if hasattr(self, "base") and self.param_groups is self.base.param_groups:
            self.param_groups[-1].setdefault("train_mode", True)

    # ----------------------------------------------------------------- modes
    @torch.no_grad()
    def _switch(self, to_train: bool) -> None:
        for group in self.param_groups:
            if group.get("train_mode", True) == to_train:
                continue
            beta = group["sf_momentum"]
            for p in group["params"]:
                z = self.state.get(p, {}).get("z")
                if z is not None:
                    p.lerp_(z, 1 - beta if to_train else 1 - 1 / beta)
            group["train_mode"] = to_train

    def train(self, mode: bool = True) -> None:
        """Parameters ← y (the gradient point), for training."""
        self._switch(bool(mode))

    def eval(self) -> None:
        """Parameters ← x (the average), for evaluation."""
        self._switch(False)

    # ----------------------------------------------------------------- the step
    # Runs eagerly under the user's torch.compile (one graph break): traced, torch 2.13 loses writes to a parameter
    # made by copy_ and by an optimizer step in the same graph (reproduced with torch.optim.SGD alone: z ended
    # where it started, eager moved it), so z ended lr away from eager, silently.
    @torch._dynamo.disable
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        if not all(g.get("train_mode", True) for g in self.param_groups):
            raise RuntimeError("ScheduleFreeWrapper.step() called in eval mode: call optimizer.train() first")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        active: list[tuple[dict[str, Any], Tensor, dict[str, Tensor]]] = []
        policy = getattr(self.base, "nonfinite", "propagate")
        moving = self.params_with_grad
        if any(p.is_complex() or p.grad.is_sparse for _, p in moving):
            raise RuntimeError("ScheduleFreeWrapper supports dense real parameters only")
        if policy != "propagate":  # the base's policy: a parameter it will skip is not moved to z either
            finite = finite_mask([p.grad for _, p in moving])
            if policy == "raise" and not all(finite):
                raise FloatingPointError(
                    f"{type(self).__name__}: non-finite gradient in {finite.count(False)} parameter(s)"
                )
            moving = [gp for gp, ok in zip(moving, finite) if ok]
        saved: list[tuple[Tensor, Tensor]] = []  # under "raise": y and z before this step
        for group, p in moving:
            state = self.state[p]
            if not state:
                state["z"] = p.detach().clone(memory_format=torch.preserve_format)
                state["weight_sum"] = torch.zeros(1, dtype=p.dtype, device=p.device)
                state["lr_max"] = torch.zeros(1, dtype=p.dtype, device=p.device)
                state["step"] = torch.zeros((), dtype=torch.float32)
            z, beta, lr = state["z"], group["sf_momentum"], group["lr"]
            if policy == "raise":
                saved.append((p.clone(), z.clone()))
            if group["weight_decay_at_y"] != 0:
                z.sub_(p, alpha=lr * group["weight_decay_at_y"])
                p.sub_(p, alpha=lr * group["weight_decay_at_y"] * (1 - beta))
            p.lerp_(z, 1 - 1 / beta)  # p = x
            _swap(p, z)  # p = z (the base steps it), state z = x
            active.append((group, p, state))
        try:
            self.base.step()
        except FloatingPointError:  # "raise": the base moved nothing; put y and z back as they were
            for (_, p, state), (y, z) in zip(active, saved):
                p.copy_(y)
                state["z"].copy_(z)
            raise
        for group, p, state in active:
            state["step"] += 1
            t = float(state["step"])
            lr_max = max(float(state["lr_max"]), group["lr"])
            weight = t ** group["r"] * lr_max ** group["weight_lr_power"]
            total = float(state["weight_sum"]) + weight
            state["lr_max"].fill_(lr_max)
            state["weight_sum"].fill_(total)
            z = state["z"]
            _swap(p, z)  # p = x, state z = the new z
            p.lerp_(z, weight / total if total > 0 else 0.0)
            p.lerp_(z, 1 - group["sf_momentum"])
        return loss


def _swap(a: Tensor, b: Tensor) -> None:
    """Exchange the values of two tensors of the same shape and dtype."""
    tmp = a.clone()
    a.copy_(b)
    b.copy_(tmp)


def _state_bytes(shape, dtype, hp) -> int:
    """AdamW's two moments and step, plus the wrapper's z (parameter dtype), Σw, max lr and step."""
    numel = 1
    for n in shape:
        numel *= n
    return R.dense_state_bytes(shape, dtype, 2) + (numel + 2) * dtype.itemsize + 4


R.register(
    R.AlgorithmSpec(
        name="schedule_free",
        cls=ScheduleFreeWrapper,
        family="schedule_free",
        paper=SF_PAPER,
        summary="schedule-free wrapper: the base optimizer steps z; the parameters interpolate z and its average",
        # the authors' recommended use: a base without momentum (AdamW with β₁ = 0), decay at y
        hparams="base lr betas weight_decay momentum weight_decay_at_y r weight_lr_power",
        paper_defaults=dict(lr=0.0025, betas=(0.0, 0.999), weight_decay=0.0),
        search_space={"lr": R.LogUniform(1e-4, 1e-1), "weight_decay_at_y": R.LogUniform(1e-6, 1.0)},
        state_tensors=3,  # z (wrapper) + AdamW's two moments
        state_formula=_state_bytes,
        tuning_free="schedule",
        notes=(
            "As schedulefree.ScheduleFreeWrapper (memory-efficient form: z stored, x recovered from y and z); the "
            "averaging weight uses the group's lr (the package multiplies it by a D-Adaptation 'd' when the group "
            "has one). Equals sf_adamw when wrapping AdamW(β₁ = 0, no decay) with weight_decay_at_y = λ."
        ),
    )
)
