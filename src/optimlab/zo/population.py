"""Population optimizers over a module's parameters: the shared machinery and the batched closure.

A population optimizer keeps N candidate values of every parameter (a tensor of shape (N, *p.shape) per
parameter) and needs only loss values. Its ``step(closure)`` calls ``closure(population)`` once per step with the
list of (N, *p.shape) tensors (the optimizer's parameters in order) and expects the (N,) losses back: the whole
population is evaluated in one batched call. :func:`population_closure` builds that closure for an
``nn.Module`` with ``torch.func.functional_call`` under ``torch.func.vmap``. After a step the parameters hold the
optimizer's current answer (CBO: the consensus point; ES: the mean; GA: the best individual), so the module can
be used as it is. The population, the step counter and the generator state live in ``state_dict()`` as tensors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import Tensor, nn

from ._common import ZOOptimizer, check_int, global_state, group_params, new_stream

__all__ = ["PopulationClosure", "PopulationOptimizer", "population_closure"]

#: closure(population) -> (N,) losses, population = one (N, *p.shape) tensor per parameter
PopulationClosure = Callable[[list[Tensor]], Tensor]


def population_closure(
    module: nn.Module,
    objective: Callable[[Callable[..., Tensor]], Tensor],
    params: Sequence[Tensor] | None = None,
    *,
    chunk_size: int | None = None,
) -> PopulationClosure:
    """The batched closure of ``module``: ``objective(forward)`` computes one individual's scalar loss, where
    ``forward(*args)`` runs ``module`` with that individual's values of ``params`` (default: all of the module's
    parameters, in ``module.parameters()`` order; the others keep their values). All individuals are evaluated
    in one ``vmap`` of ``functional_call`` (``chunk_size`` bounds the individuals per vectorised chunk).

    Example: ``population_closure(model, lambda f: F.cross_entropy(f(x), y))``."""
    named = dict((id(p), n) for n, p in module.named_parameters())
    params = list(module.parameters()) if params is None else list(params)
    try:
        names = [named[id(p)] for p in params]
    except KeyError:
        raise ValueError("params must be parameters of module") from None

    def one(*values: Tensor) -> Tensor:
        mapping = dict(zip(names, values))

        def forward(*args, **kwargs):
            return torch.func.functional_call(module, mapping, args, kwargs)

        return objective(forward)

    batched = torch.func.vmap(one, chunk_size=chunk_size, randomness="error")

    def closure(population: list[Tensor]) -> Tensor:
        if len(population) != len(names):
            raise ValueError(f"population needs one tensor per parameter ({len(names)}), got {len(population)}")
        return batched(*population)

    return closure


class PopulationOptimizer(ZOOptimizer):
    """Base of the population methods: population storage, the generator, and the batched evaluation."""

    def __init__(self, params: Iterable[Tensor] | Iterable[dict], defaults: dict, population_size: int, seed: int):
        super().__init__(params, defaults)
        self.population_size = check_int("population_size", population_size, 2)
        state = global_state(self)
        state["step"] = torch.zeros((), dtype=torch.int64)
        state["generator"] = new_stream(check_int("seed", seed, 0))

    # --------------------------------------------------------------------- pieces for subclasses
    def _generator(self) -> torch.Generator:
        g = torch.Generator()
        g.set_state(global_state(self)["generator"])
        return g

    def _save_generator(self, g: torch.Generator) -> None:
        global_state(self)["generator"] = g.get_state()

    @staticmethod
    def _randn(p: Tensor, rows: int, g: torch.Generator) -> Tensor:
        """(rows, *p.shape) standard normals, drawn on the CPU generator (same numbers on every device)."""
        return torch.randn((rows, *p.shape), generator=g, dtype=p.dtype).to(p.device)

    def _params(self) -> list[Tensor]:
        return group_params(self.param_groups)

    def population(self) -> list[Tensor] | None:
        """The current population (one (N, *p.shape) tensor per parameter), or None before the first step."""
        params = self._params()
        if "population" not in self.state[params[0]]:
            return None
        return [self.state[p]["population"] for p in params]

    @torch.no_grad()
    def set_population(self, population: Sequence[Tensor]) -> None:
        """Start from the given population instead of the default initialisation (before or between steps)."""
        params = self._params()
        if len(population) != len(params):
            raise ValueError(f"population needs one tensor per parameter ({len(params)}), got {len(population)}")
        for p, x in zip(params, population):
            if tuple(x.shape) != (self.population_size, *p.shape):
                raise ValueError(f"population tensor shape {tuple(x.shape)} != {(self.population_size, *p.shape)}")
            self.state[p]["population"] = x.detach().to(device=p.device, dtype=p.dtype, copy=True)

    @torch.no_grad()
    def _evaluate(self, closure: PopulationClosure, population: list[Tensor]) -> Tensor:
        rows = population[0].shape[0]
        losses = closure(population)
        losses = torch.as_tensor(losses).detach()
        if losses.shape != (rows,):
            raise ValueError(f"the closure must return one loss per individual, shape ({rows},); got {losses.shape}")
        return losses.to(torch.float64).cpu()

    @torch.no_grad()
    def _write_params(self, values: Iterable[Tensor]) -> None:
        for p, v in zip(self._params(), values):
            p.copy_(v)

    def _require(self, closure: PopulationClosure | None) -> PopulationClosure:
        if closure is None:
            raise RuntimeError(
                f"{type(self).__name__}.step needs a closure: closure(population) -> (N,) losses "
                "(see optimlab.zo.population_closure)"
            )
        return closure
