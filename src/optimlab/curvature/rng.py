"""Random probes from a caller-supplied ``torch.Generator``, and the generator's state as a plain tensor.

Every stochastic routine in ``optimlab.curvature`` draws from a generator the caller owns, never from the global
RNG, so an optimizer's curvature estimates do not depend on (or disturb) the user's random stream. An optimizer
keeps the generator's state in its state dict with :func:`generator_state` and puts it back with
:func:`set_generator_state`; since the state is a uint8 tensor it survives ``torch.save`` /
``torch.load(weights_only=True)`` and a resumed run draws exactly the probes the uninterrupted run would have.

Probes are drawn on the generator's device and then moved to the tensor's device, so a CPU generator also drives
probes for GPU parameters (bit-identical across devices, at the cost of a host-to-device copy); pass a generator
on the parameters' device to avoid the copy.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

PROBE_DISTRIBUTIONS = ("rademacher", "gaussian")


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A fresh generator on ``device`` seeded with ``seed``."""
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def generator_state(generator: torch.Generator) -> Tensor:
    """The generator's state as a new CPU uint8 tensor (safe to store in an optimizer's state dict)."""
    return generator.get_state().clone()


def set_generator_state(generator: torch.Generator, state: Tensor) -> torch.Generator:
    """Restore a state saved by :func:`generator_state`; returns ``generator``.

    The tensor may come back from ``load_state_dict`` on another device or as a non-contiguous view; it is
    copied to a contiguous CPU uint8 tensor first (what ``torch.Generator.set_state`` requires).
    """
    if state.dtype != torch.uint8:
        raise ValueError(f"set_generator_state: state must be a uint8 tensor, got {state.dtype}")
    generator.set_state(state.detach().to(device="cpu").contiguous())
    return generator


def random_probe(like: Tensor, generator: torch.Generator, distribution: str = "rademacher") -> Tensor:
    """A random tensor shaped like ``like`` with E[z zᵀ] = I, drawn from ``generator``.

    ``"rademacher"``: entries ±1 with probability ½ each; ``"gaussian"``: standard normal entries.
    The result has ``like``'s dtype and device.
    """
    if distribution not in PROBE_DISTRIBUTIONS:
        raise ValueError(f"distribution must be one of {PROBE_DISTRIBUTIONS}, got {distribution!r}")
    dtype = like.dtype if like.is_floating_point() else torch.float32
    if distribution == "rademacher":
        z = torch.randint(0, 2, like.shape, generator=generator, device=generator.device, dtype=dtype)
        z = z.mul_(2).sub_(1)
    else:
        z = torch.randn(like.shape, generator=generator, device=generator.device, dtype=dtype)
    return z.to(device=like.device)


def random_probes(like: Sequence[Tensor], generator: torch.Generator, distribution: str = "rademacher") -> list[Tensor]:
    """One :func:`random_probe` per tensor of ``like``, drawn in order from ``generator``."""
    return [random_probe(t, generator, distribution) for t in like]
