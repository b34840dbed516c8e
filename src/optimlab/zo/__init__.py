"""Zeroth-order and population optimizers: gradient estimates from loss values only, and swarms.

* :mod:`.spsa` — SPSA / MeZO (Malladi et al., 2023, arXiv:2305.17333): in-place perturbations regenerated from a
  seed (memory = inference), n-SPSA, one- and two-sided; :func:`spsa_grad_` / :class:`SPSA` write ``.grad`` for any
  optimizer, :class:`ZOSGD` is the fused ZO-SGD step (``estimate`` + ``step()`` for ``transformers.Trainer``);
* :mod:`.forward_grad` — forward gradients with ``torch.func.jvp``, random or guessed (local-loss) directions
  (Baydin et al., 2022; Fournier et al., 2023, arXiv:2306.06968);
* :mod:`.frank_wolfe` — zeroth-order stochastic Frank–Wolfe and the LMOs of the ℓ1/ℓ2/ℓ∞ balls and the simplex
  (Sahu, Zaheer & Kar, 2019, arXiv:1810.03233);
* :mod:`.population` — the batched closure (``functional_call`` + ``vmap``) and the base of :mod:`.cbo`
  (consensus-based optimization), :mod:`.es` (OpenAI ES) and :mod:`.ga` (Such et al.'s GA).

Every optimizer here takes a closure that only evaluates the loss (no backward); ZOSGD and ZOFrankWolfe call
``closure()``, the population methods call ``closure(population)`` and expect one loss per individual.
Randomness comes from a seed stream whose state is a tensor in ``state_dict()``: a run resumed from a checkpoint
draws the same directions as an uninterrupted one.
"""

from .cbo import CBO, consensus
from .es import ES, centred_ranks
from .forward_grad import ForwardGradResult, forward_grad_, forward_gradient, module_loss
from .frank_wolfe import LMOS, ZOFrankWolfe, in_set, lmo_l1, lmo_l2, lmo_linf, lmo_simplex
from .ga import GA
from .population import PopulationClosure, PopulationOptimizer, population_closure
from .spsa import SPSA, ZOSGD, SPSAResult, apply_directions_, perturb_, spsa_coefficients, spsa_grad_

__all__ = [
    "CBO",
    "ES",
    "GA",
    "LMOS",
    "SPSA",
    "ZOSGD",
    "ForwardGradResult",
    "PopulationClosure",
    "PopulationOptimizer",
    "SPSAResult",
    "ZOFrankWolfe",
    "apply_directions_",
    "centred_ranks",
    "consensus",
    "forward_grad_",
    "forward_gradient",
    "in_set",
    "lmo_l1",
    "lmo_l2",
    "lmo_linf",
    "lmo_simplex",
    "module_loss",
    "perturb_",
    "population_closure",
    "spsa_coefficients",
    "spsa_grad_",
]
