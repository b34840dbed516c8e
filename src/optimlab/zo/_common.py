"""Shared pieces of the zeroth-order and population optimizers: validation, the seed stream, regenerated
directions, and where a ``torch.optim.Optimizer`` keeps state that belongs to no single parameter.

Direction convention (one for the whole package, and the one the references in ``tests/reference/zo_*.py``
follow): a step draws int64 seeds from the optimizer's *seed stream* (a CPU ``torch.Generator`` whose state is a
uint8 tensor in ``state_dict()``), ``torch.randint(0, 2**62, (n,), generator=stream)``; the direction of seed
``s`` is, for every parameter in the optimizer's order (groups in order, parameters in order),
``torch.randn(p.shape, generator=torch.Generator(p.device).manual_seed(s), dtype=p.dtype)`` — one generator per
device, seeded once per regeneration. Regenerating from the seed is what keeps memory at inference level: no
direction is ever stored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence

import torch
from torch import Tensor

SEED_HIGH = 2**62


def check_range(
    name: str,
    value: float,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` if it is a finite number in the range, else ``ValueError`` naming the field and the range."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "-inf" if low is None else f"{low}"
        hi = "inf" if high is None else f"{high}"
        brackets = (
            ("(" if low_open or low is None else "[") + f"{lo}, {hi}" + (")" if high_open or high is None else "]")
        )
        raise ValueError(f"{name} must be a finite number in {brackets}, got {value!r}")
    return value


def check_int(name: str, value: int, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {value!r}")
    return value


def new_stream(seed: int) -> Tensor:
    """The state (uint8 tensor) of a fresh CPU generator seeded with ``seed``: what a seed stream stores."""
    return torch.Generator().manual_seed(int(seed)).get_state()


def draw_seeds(stream_state: Tensor, n: int) -> tuple[list[int], Tensor]:
    """``n`` seeds from the stream whose state is ``stream_state``; returns them and the advanced state."""
    g = torch.Generator()
    g.set_state(stream_state)
    seeds = torch.randint(0, SEED_HIGH, (n,), generator=g, dtype=torch.int64).tolist()
    return seeds, g.get_state()


def generator_from(stream_state: Tensor) -> torch.Generator:
    g = torch.Generator()
    g.set_state(stream_state)
    return g


def directions(params: Sequence[Tensor], seed: int) -> Iterator[Tensor]:
    """The direction of ``seed``, one N(0, I) tensor per parameter, regenerated lazily (one tensor alive at a time)."""
    gens: dict[torch.device, torch.Generator] = {}
    for p in params:
        g = gens.get(p.device)
        if g is None:
            g = gens[p.device] = torch.Generator(device=p.device).manual_seed(int(seed))
        yield torch.randn(p.shape, generator=g, device=p.device, dtype=p.dtype)


def group_params(groups: Iterable[dict]) -> list[Tensor]:
    """Every parameter of the optimizer, groups in order (the order directions are generated in)."""
    return [p for g in groups for p in g["params"]]


def global_state(optimizer: torch.optim.Optimizer) -> dict:
    """State that belongs to no single parameter (step, seed stream, α, …): kept in the first parameter's state
    dict so that ``torch.optim.Optimizer.state_dict()`` saves and restores it with everything else."""
    return optimizer.state[optimizer.param_groups[0]["params"][0]]


def scalar(loss: Tensor | float) -> float:
    return float(loss.detach()) if isinstance(loss, Tensor) else float(loss)


class ZOOptimizer(torch.optim.Optimizer):
    """``torch.optim.Optimizer`` whose state tensors keep their saved dtype on load.

    torch's ``load_state_dict`` casts every floating-point state tensor to its parameter's dtype (and would cast a
    uint8 generator state too); a zeroth-order optimizer keeps generator states (uint8), seeds (int64) and
    float64 coefficients, which must come back bit-exactly. Subclasses need a closure (``requires_closure``,
    read by :func:`optimlab.training.capabilities`); the closure only evaluates the loss (no backward)."""

    requires_closure = True

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        params = group_params(self.param_groups)
        ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        for pid, p in zip(ids, params):
            for key, value in state_dict["state"].get(pid, {}).items():
                if isinstance(value, Tensor):
                    device = value.device if not value.is_floating_point() else p.device
                    self.state[p][key] = value.detach().to(device=device, dtype=value.dtype, copy=True)
