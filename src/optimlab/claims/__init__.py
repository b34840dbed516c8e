"""Executable claims of the seed papers.

A claim = a paper reference, a statement, a small CPU experiment that returns measurements over seeds, and checks
whose verdict (confirmed / not confirmed / inconclusive) comes from a stated statistical rule applied to those
measurements (see :mod:`optimlab.claims._stats`). Run them with ``optimlab claims run [--quick] [ids…]`` or::

    from optimlab import claims
    result = claims.run_claim(claims.get("C16"), quick=True)
    print(result.status, result.primary.evaluation.detail)

Modules: one per claim for the optimizer-speed claims (:mod:`.shootout` C6, :mod:`.ademamix_forgetting` C4,
:mod:`.exadam_speed` C5, :mod:`.adam_sgd_transformer` C1, :mod:`.adahessian_speed` C3, :mod:`.sophia_speed` C2,
sharing :mod:`._problems` and :mod:`._tiny_lm`) and for the dynamics claims (:mod:`.lion_constraint` C16,
:mod:`.edge_of_stability` C17, :mod:`.hessian_spectrum` C18, :mod:`.saddles` C19); one per family for
:mod:`.memory` (memory-efficient optimizers), :mod:`.generalization` (SAM, StableMax), :mod:`.clipping`
(clipping and robust estimators), :mod:`.constrained` (Feasible Learning), :mod:`.bilevel`, :mod:`.multitask`,
:mod:`.schedules` and :mod:`.zeroth_order`. A claim's ``family`` (its report section) is independent of its module.

Adding a claim: in a new module (listed in ``_framework.FAMILY_MODULES``) or its family's module, write
``experiment(ctx) -> Measurements`` (one value per replicate under a name, seeds from ``ctx.seeds``, a seconds-long
configuration under ``ctx.quick`` via ``ctx.pick(quick, full)``, a :class:`Figure` for the report) and
``register(Claim(...))`` with :class:`Check` s that name those values and a
rule (:class:`MeanAbove` for effects, :class:`AllPass` for properties). Never decide the verdict in the
experiment. ``requires=`` lists the registry names it needs (the claim shows as pending until they exist);
``experiment=None`` registers a claim whose experiment is still to be written. The test suite runs every quick
configuration twice (sanity and determinism) automatically.
"""

from ._framework import (
    CONFIRMED,
    ERROR,
    INCONCLUSIVE,
    NOT_CONFIRMED,
    PENDING,
    Check,
    CheckResult,
    Claim,
    ClaimResult,
    Context,
    Figure,
    Measurements,
    Series,
    all_claims,
    evaluate,
    get,
    register,
    run_claim,
    select,
)
from ._stats import AllPass, Evaluation, MeanAbove, Rule, combine

__all__ = [
    "CONFIRMED",
    "ERROR",
    "INCONCLUSIVE",
    "NOT_CONFIRMED",
    "PENDING",
    "AllPass",
    "Check",
    "CheckResult",
    "Claim",
    "ClaimResult",
    "Context",
    "Evaluation",
    "Figure",
    "MeanAbove",
    "Measurements",
    "Rule",
    "Series",
    "all_claims",
    "combine",
    "evaluate",
    "get",
    "register",
    "run_claim",
    "select",
]
