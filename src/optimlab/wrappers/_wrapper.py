"""The base of optimizers that wrap a base optimizer (SAM family, ...).

The wrapper *shares* its base's param groups (an LR scheduler on the wrapper drives the base), keeps its own
per-parameter state, and checkpoints both in one per-parameter entry: the wrapper's own keys and the base's under
``"base.<name>"`` (so torch.distributed.checkpoint, which keeps only ``state`` and ``param_groups``, shards and
reshards them all), plain tensors loadable with ``torch.load(weights_only=True)``. Dicts of the older layout (the
base's state under a top-level ``"base_state"``) still load.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor

from .. import registry
from ..optim import Rule, is_checkpoint_init

#: the prefix of the base optimizer's per-parameter state in a wrapper's state dict
BASE = "base."


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
    #: the wrapper's other per-parameter state entries (a loaded entry with any other key is refused)
    own_state: ClassVar[tuple[str, ...]] = ()

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
    def _checkpoint_init(self) -> bool:
        """A step without a closure of a wrapper that needs one: torch.distributed.checkpoint creating a fresh
        wrapper's state (see ``optim.is_checkpoint_init``) is answered here, updating nothing; False
        means the call is a user's and must raise."""
        if not is_checkpoint_init(self, self.state):
            return False
        gather = getattr(self.base, "_gather", None)  # an optimlab base creates missing state without a step
        if gather is not None:
            gather()
        elif not self.base.state:
            self.base.step()  # torch's way (lr is 0, gradients zero)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    self._init_own_state(p, self.state[p])
        return True

    def _init_own_state(self, p: Tensor, state: dict[str, Tensor]) -> None:
        """Create the wrapper's persistent per-parameter state of ``p`` (the keys of ``own_state``), as its
        first step would; by default there is none."""

    def state_dict(self) -> dict[str, Any]:
        base_sd = self.base.state_dict()
        own = super().state_dict()
        # copies; an entry a hook put into ``self.state`` that is not a per-parameter dict is kept
        merged = {
            k: {n: (v.clone() if isinstance(v, Tensor) else v) for n, v in s.items()} if isinstance(s, dict) else s
            for k, s in own["state"].items()
        }
        for index, saved in base_sd["state"].items():
            entry = merged.setdefault(index, {})
            if isinstance(saved, dict) and isinstance(entry, dict):
                entry.update({BASE + n: v for n, v in saved.items()})
        own["state"] = merged
        own["param_groups"] = base_sd["param_groups"]
        return own

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict of this wrapper: checked first (the wrapper's own state here, the base's by the base),
        so a mismatch raises ``ValueError`` naming the key and parameter before anything changes."""
        own, base = self._split_state_dict(state_dict)
        self._check_state_dict(own)
        if "base_state" not in state_dict:
            self._check_base_kept(state_dict, base)
        try:
            self.base.load_state_dict(base)
        except ValueError as err:
            raise ValueError(f"{type(self).__name__}: the base optimizer's state (keys '{BASE}<name>'): {err}") from err
        self.param_groups = self.base.param_groups
        self.state.clear()
        for _, p, saved in self._saved(own):
            if saved or p in self.base.state:  # an entry, maybe empty, wherever there is state (DCP reads that)
                self.state[p] = {n: v.to(device=p.device, copy=True) for n, v in (saved or {}).items()}

    def _saved(self, state_dict: dict[str, Any]) -> list[tuple[int, Tensor, Any]]:
        """(index, parameter, its saved entry or None) in param-group order."""
        params = [p for g in self.param_groups for p in g["params"]]
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        return [(i, p, state_dict["state"].get(saved_id)) for i, (saved_id, p) in enumerate(zip(saved_ids, params))]

    def _split_state_dict(self, state_dict: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """(the wrapper's own state dict, the base's) of a wrapper state dict of either layout."""
        owner = type(self).__name__
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= state_dict.keys():
            raise ValueError(f"{owner}.load_state_dict: not an optimizer state dict (no 'state' / 'param_groups')")
        groups = state_dict["param_groups"]
        if "base_state" in state_dict:  # the older layout
            return state_dict, {"state": state_dict["base_state"], "param_groups": groups}
        own: dict[Any, Any] = {}
        base: dict[Any, Any] = {}
        for index, saved in state_dict["state"].items():
            if not isinstance(saved, dict):
                own[index] = saved
                continue
            own[index] = {n: v for n, v in saved.items() if not n.startswith(BASE)}
            base_part = {n[len(BASE) :]: v for n, v in saved.items() if n.startswith(BASE)}
            if base_part:
                base[index] = base_part
        return {**state_dict, "state": own}, {"state": base, "param_groups": groups}

    def _check_base_kept(self, state_dict: dict[str, Any], base: dict[str, Any]) -> None:
        """A saved entry without the base's keys for a parameter whose base has state now: the checkpoint lost them
        (torch.distributed.checkpoint's ``flatten_optimizer_state_dict=True`` keeps only the keys it finds in
        ``optimizer.state[p]``, where a wrapper keeps its own state only)."""
        for (index, p, saved), (_, _, base_saved) in zip(self._saved(state_dict), self._saved(base)):
            if isinstance(saved, dict) and base_saved is None and self.base.state.get(p):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: the saved state of parameter {index} has no base "
                    f"optimizer state ('{BASE}<name>' keys) but the base keeps state for it: the checkpoint lost "
                    "it (saved with flatten_optimizer_state_dict=True? wrappers need the nested layout)"
                )

    def _check_state_dict(self, state_dict: dict[str, Any]) -> None:
        owner = type(self).__name__
        allowed = {*self.scalar_state, *self.own_state, *getattr(self, "_transient_keys", ())}
        for index, p, saved in self._saved(state_dict):
            for key, value in saved.items() if isinstance(saved, dict) else ():
                if key not in allowed:
                    raise ValueError(
                        f"{owner}.load_state_dict: state '{key}' of parameter {index} is neither {owner}'s own "
                        f"({', '.join(sorted(allowed))}) nor its base optimizer's (saved as '{BASE}{key}'); a state "
                        f"dict of the base optimizer alone loads into {owner}.base"
                    )
                if not isinstance(value, Tensor):
                    continue
                scalar = key in self.scalar_state
                if (value.numel() != 1) if scalar else (value.shape != p.shape):
                    expected = "one element" if scalar else f"shape {tuple(p.shape)}"
                    raise ValueError(
                        f"{owner}.load_state_dict: state '{key}' of parameter {index} (shape {tuple(p.shape)}) has "
                        f"shape {tuple(value.shape)}, expected {expected}"
                    )
            missing = [k for k in self.own_state if isinstance(saved, dict) and saved and k not in saved]
            if missing:
                raise ValueError(f"{owner}.load_state_dict: state {missing} of parameter {index} is missing")

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
