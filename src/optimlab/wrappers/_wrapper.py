"""The base of optimizers that wrap a base optimizer (SAM family, ...).

The wrapper *shares* its base's param groups (an LR scheduler on the wrapper drives the base), keeps its own
per-parameter state, and checkpoints both: ``state_dict()`` = the wrapper's state and groups plus the base's
state under ``"base_state"``, all plain tensors, loadable with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor

from .. import registry
from ..optim import Rule


def build_base(params: Iterable[Any], base: str | type | torch.optim.Optimizer, base_kwargs: dict[str, Any]):
    """The base optimizer from a registry name, an optimizer class, or an instance (then params must be None)."""
    if isinstance(base, torch.optim.Optimizer):
        if params is not None or base_kwargs:
            raise ValueError("pass either a base optimizer instance, or params with a base name/class and its kwargs")
        return base
    if params is None:
        raise ValueError("params is required when base is a name or a class")
    try:
        if isinstance(base, str):
            return registry.create(base, params, **base_kwargs)
        if isinstance(base, type) and issubclass(base, torch.optim.Optimizer):
            return base(params, **base_kwargs)
    except TypeError as err:
        if "unexpected keyword argument" not in str(err):
            raise
        raise TypeError(
            f"{err}: a wrapper passes every keyword argument it does not own to its base ({base!r}). A registry "
            "record's defaults are its default base's (e.g. momentum for sgd, betas for adamw): to switch the base, "
            "construct the wrapper class with that base's arguments instead of create()"
        ) from err
    raise ValueError(f"base must be a registered name, an Optimizer class or instance, got {base!r}")


class WrapperOptimizer(torch.optim.Optimizer):
    """Shares param groups with ``self.base``; subclasses add their own group hyperparameters and state."""

    #: rules of the wrapper's own hyperparameters (the base validates its own)
    hyperparameters: ClassVar[dict[str, Rule]] = {}
    requires_closure: ClassVar[bool] = True
    #: per-parameter state entries holding one number; every other state tensor has its parameter's shape
    scalar_state: ClassVar[tuple[str, ...]] = ("step",)

    def __init__(self, params, base, base_kwargs: dict[str, Any], wrapper_defaults: dict[str, Any]) -> None:
        for name, rule in self.hyperparameters.items():
            rule.check(name, wrapper_defaults[name])
        self.base = build_base(params, base, base_kwargs)
        for group in self.base.param_groups:
            for key, value in wrapper_defaults.items():
                group.setdefault(key, value)
            self._check_group(group)
        super().__init__([{"params": g["params"]} for g in self.base.param_groups], dict(wrapper_defaults))
        self.param_groups = self.base.param_groups  # shared: schedulers and users edit one set of groups
        base_name = base if isinstance(base, str) else getattr(base, "__name__", type(self.base).__name__)
        self.defaults = {**self.base.defaults, **wrapper_defaults, "base": base_name}
        self._init_transient()

    def _init_transient(self) -> None:
        """Create the attributes that live between calls but are not part of a checkpoint (also after
        unpickling); subclasses extend it."""

    def _check_group(self, group: dict[str, Any]) -> None:
        for name, rule in self.hyperparameters.items():
            rule.check(name, group[name])

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if not hasattr(self, "base") or self.param_groups is not self.base.param_groups:
            return super().add_param_group(param_group)  # only during torch's __init__
        own = {k: param_group.get(k, self.defaults[k]) for k in self.hyperparameters}
        self._check_group(own)
        self.base.add_param_group(param_group)
        group = self.base.param_groups[-1]
        for key in self.hyperparameters:
            group.setdefault(key, self.defaults[key])

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none)

    @property
    def params_with_grad(self) -> list[tuple[dict[str, Any], Tensor]]:
        out = [(g, p) for g in self.param_groups for p in g["params"] if p.grad is not None]
        if any(p.grad.is_sparse for _, p in out):
            raise RuntimeError(f"{type(self).__name__} does not support sparse gradients (its steps need dense ones)")
        return out

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict[str, Any]:
        base_sd = self.base.state_dict()
        own = super().state_dict()
        own["state"] = {  # copies; an entry a hook put into ``self.state`` that is not a per-parameter dict is kept
            k: {n: (v.clone() if isinstance(v, Tensor) else v) for n, v in s.items()} if isinstance(s, dict) else s
            for k, s in own["state"].items()
        }
        own["base_state"] = base_sd["state"]
        own["param_groups"] = base_sd["param_groups"]
        return own

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict of this wrapper: checked first (the wrapper's own state here, the base's by the base),
        so a mismatch raises ``ValueError`` naming the key and parameter before anything changes."""
        self._check_state_dict(state_dict)
        self.base.load_state_dict({"state": state_dict["base_state"], "param_groups": state_dict["param_groups"]})
        self.param_groups = self.base.param_groups
        params = [p for g in self.param_groups for p in g["params"]]
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        self.state.clear()
        for saved_id, p in zip(saved_ids, params):
            saved = state_dict["state"].get(saved_id)
            if saved:
                self.state[p] = {n: v.to(device=p.device, copy=True) for n, v in saved.items()}

    def _check_state_dict(self, state_dict: dict[str, Any]) -> None:
        owner = type(self).__name__
        if not isinstance(state_dict, dict) or "base_state" not in state_dict:
            raise ValueError(
                f"{owner}.load_state_dict: not a {owner} state dict (it has no 'base_state' entry, which holds the "
                f"base optimizer's state); a state dict of the base optimizer alone loads into {owner}.base"
            )
        params = [p for g in self.param_groups for p in g["params"]]
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        for index, (saved_id, p) in enumerate(zip(saved_ids, params)):
            saved = state_dict["state"].get(saved_id)
            for key, value in saved.items() if isinstance(saved, dict) else ():
                if not isinstance(value, Tensor):
                    continue
                scalar = key in self.scalar_state
                if (value.numel() != 1) if scalar else (value.shape != p.shape):
                    expected = "one element" if scalar else f"shape {tuple(p.shape)}"
                    raise ValueError(
                        f"{owner}.load_state_dict: state '{key}' of parameter {index} (shape {tuple(p.shape)}) has "
                        f"shape {tuple(value.shape)}, expected {expected}"
                    )

    def __getstate__(self) -> dict[str, Any]:
        return {**super().__getstate__(), "base": self.base}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.param_groups = self.base.param_groups
        self._init_transient()

    def __deepcopy__(self, memo):
        clone = self.__class__.__new__(self.__class__)
        memo[id(self)] = clone
        clone.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return clone

    def __repr__(self) -> str:
        own = ", ".join(f"{k}={self.defaults[k]}" for k in self.hyperparameters)
        return f"{type(self).__name__}({own}, base={self.base!r})"
