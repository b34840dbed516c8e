"""Drop-in compatibility with torch.optim: its implementation flags, tensor hyperparameters, and checkpoints that
load the way torch's do but are checked against the optimizer first (docs/compatibility.md lists every difference).

* **Implementation flags** (:func:`implementation_flags`). ``foreach=`` (None/True/False) is accepted and has no
  effect: optimlab's eager step is a per-tensor loop, measured faster than ``torch._foreach_*`` on CPU, and the
  math is the same either way. ``fused=True`` selects optimlab's fused path, ``compile=True`` (the group step
  compiled into one kernel per tensor). ``capturable=True`` (CUDA-graph capture of ``step``) and
  ``differentiable=True`` (autograd through ``step``) are not supported and raise ``NotImplementedError`` naming the
  alternative; ``False`` is accepted.
* **Tensor hyperparameters** (:func:`as_scalars`): a 1-element tensor of any shape (``lr=torch.tensor([[1e-3]])``)
  is kept as a 0-d tensor, as torch's ``_to_scalar`` does, so it never broadcasts a parameter to another shape.
* **Loading** (:func:`check_state_dict`, :func:`restore`): before anything changes, every saved per-parameter state
  is checked against what this optimizer would create for that parameter under the saved hyperparameters: the
  same state keys (another algorithm's state, a missing key) and the same tensor shapes. A mismatch raises
  ``ValueError`` naming the key and the parameter at load time, never a failure deep in a kernel at the next
  step. As in torch, a saved param group without keys that newer versions added gets them from the defaults,
  and a plain-number ``step`` (older torch checkpoints) becomes a tensor. State saved by torch.optim loads (the
  same keys; a ``step`` that torch's SGD and Muon do not keep counts as 1).
* **Distributed checkpoints** (:func:`is_checkpoint_init`): torch.distributed.checkpoint creates a fresh
  optimizer's state by one ``step()`` without a closure on zero gradients at lr 0; an optimizer that needs a
  closure answers that call by creating its state and updating nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

if TYPE_CHECKING:
    from ._base import Optimizer


def implementation_flags(
    owner: str, compile: bool, foreach: Any, fused: Any, capturable: Any, differentiable: Any
) -> bool:
    """Check torch.optim's implementation flags and return the ``compile`` setting they imply."""
    from ._rules import OneOf

    flags = {"foreach": foreach, "fused": fused, "capturable": capturable, "differentiable": differentiable}
    for name, value in flags.items():
        OneOf((None, True, False)).check(name, value)
    if differentiable:
        raise NotImplementedError(
            f"{owner}: differentiable=True (autograd through step()) is not supported: optimlab steps update in "
            "place under no_grad. To differentiate through optimization use optimlab.bilevel (implicit "
            "differentiation, hypergradients)"
        )
    if capturable:
        raise NotImplementedError(
            f"{owner}: capturable=True (CUDA-graph capture of step()) is not supported; compile=True (or "
            "fused=True) compiles the step instead"
        )
    if fused and foreach:
        raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
    return bool(compile or fused)


def is_checkpoint_init(opt: torch.optim.Optimizer, *states: Any) -> bool:
    """Whether a ``step()`` without a closure is torch.distributed.checkpoint creating a fresh optimizer's state
    (``state_dict._init_optim_state``): no state yet in any of ``states``, every group's lr 0 and every gradient
    zero. Any other step without a closure of an optimizer that needs one still raises."""
    if any(states) or any(float(g["lr"]) != 0.0 for g in opt.param_groups if "lr" in g):
        return False
    grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
    local = [g.to_local() if hasattr(g, "to_local") else g for g in grads]  # a DTensor's shard: no collective
    return bool(grads) and not any(bool(g.any()) for g in local if not g.is_sparse)


def _scalar(value: Any) -> Any:
    if isinstance(value, Tensor) and value.ndim > 0 and value.numel() == 1:
        return value.reshape(())
    if isinstance(value, tuple) and any(isinstance(v, Tensor) for v in value):
        return tuple(_scalar(v) for v in value)
    return value


def as_scalars(group: dict[str, Any], names) -> None:
    """Make each 1-element tensor hyperparameter of ``group`` among ``names`` (and in tuples such as ``betas``)
    0-dimensional, in place."""
    for name in names:
        if name in group:
            group[name] = _scalar(group[name])


def fill_group_defaults(group: dict[str, Any], defaults: dict[str, Any]) -> None:
    """torch's behaviour for a saved group without keys added in newer versions: take them from the defaults."""
    for key, value in defaults.items():
        group.setdefault(key, value)


def restore(name: str, value: Any, p: Tensor) -> Any:
    """A copy of a saved state value: tensors move to the parameter's device, except 0-d scalars (step counters),
    which stay where they were saved (on the CPU) as torch.optim keeps them, so reading them costs no sync; a
    plain-number ``step`` becomes a float32 tensor."""
    if not isinstance(value, Tensor):
        if name == "step" and isinstance(value, (int, float)):
            return torch.tensor(float(value), dtype=torch.float32)
        return value
    return value.to(device=p.device, copy=True) if value.ndim > 0 else value.clone()


def restore_state(saved: dict[str, Any], p: Tensor) -> dict[str, Any]:
    """The live state of ``p`` from its saved state (copies, see :func:`restore`). torch's SGD and Muon keep no step
    counter; their saved buffers mean at least one step was taken, so a missing ``step`` is 1."""
    state = {name: restore(name, value, p) for name, value in saved.items()}
    state.setdefault("step", torch.tensor(1.0, dtype=torch.float32))
    return state


def _label(group: dict[str, Any], index_in_group: int, g: int, p: Tensor) -> str:
    names = group.get("param_names")
    name = f"'{names[index_in_group]}' " if names else ""
    return f"parameter {name}(group {g}, index {index_in_group}, shape {tuple(p.shape)})"


def _expected_state(opt: Optimizer, p: Tensor, view: dict[str, Any]) -> dict[str, tuple[int, ...] | None]:
    """State key -> tensor shape (None when unknown) that ``opt`` creates for ``p`` under the group ``view``."""
    from ._base import LOW_PRECISION

    keys = tuple(opt.state_keys(view))
    shape = tuple(p.shape) + ((2,) if p.is_complex() else ())
    dtype = torch.float32 if p.dtype in LOW_PRECISION or p.is_complex() else p.dtype
    try:  # on the meta device: allocates nothing, draws no random numbers
        fresh = opt.init_state(torch.empty(shape, dtype=dtype, device="meta"), view)
        shapes = [tuple(t.shape) if isinstance(t, Tensor) else None for t in fresh]
    except (RuntimeError, NotImplementedError, TypeError, ValueError):
        shapes = [None] * len(keys)
    return {"step": (), **dict(zip(keys, shapes))}


def check_state_dict(opt: Optimizer, state_dict: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming the key and the parameter where ``state_dict``'s per-parameter state is not what
    ``opt`` keeps for that parameter (another algorithm's state, a missing key, a wrong-shaped tensor)."""
    from ._base import LAYOUT, Optimizer

    owner = type(opt).__name__
    for key in ("state", "param_groups"):
        if key not in state_dict:
            raise ValueError(f"{owner}.load_state_dict: not an optimizer state dict (no '{key}' entry)")
    saved_groups = state_dict["param_groups"]
    if len(saved_groups) != len(opt.param_groups):
        return  # torch's own check reports this
    lazy = set(getattr(opt, "lazy_state_names", ()))
    has_layouts = type(opt).layout is not Optimizer.layout
    for g, (group, saved_group) in enumerate(zip(opt.param_groups, saved_groups)):
        if len(group["params"]) != len(saved_group["params"]):
            return  # torch's own check reports this
        view = {**opt.defaults, **{k: v for k, v in saved_group.items() if k != "params"}, "params": group["params"]}
        for i, (p, saved_id) in enumerate(zip(group["params"], saved_group["params"])):
            saved = state_dict["state"].get(saved_id)
            if not isinstance(saved, dict) or not saved:
                continue
            pview = {**view, LAYOUT: opt.layout(p, view)} if has_layouts else view
            expected = _expected_state(opt, p, pview)
            missing = [k for k in expected if k not in saved and k != "step"]  # see restore_state
            unexpected = [k for k in saved if k not in expected and k not in lazy]
            where = _label(group, i, g, p)
            if missing or unexpected:
                raise ValueError(
                    f"{owner}.load_state_dict: the saved state of {where} does not match {owner}'s: "
                    + (f"missing key(s) {missing}" if missing else "")
                    + ("; " if missing and unexpected else "")
                    + (f"unexpected key(s) {unexpected}" if unexpected else "")
                    + f" (expected {sorted(expected)}; a state dict of another optimizer or configuration?)"
                )
            for key, shape in expected.items():
                value = saved.get(key)
                if shape is None or not isinstance(value, Tensor):
                    continue
                if key == "step":
                    if value.numel() != 1:
                        raise ValueError(f"{owner}.load_state_dict: 'step' of {where} must be a scalar")
                elif tuple(value.shape) != shape:
                    raise ValueError(
                        f"{owner}.load_state_dict: state '{key}' of {where} has shape {tuple(value.shape)}, "
                        f"expected {shape}"
                    )
