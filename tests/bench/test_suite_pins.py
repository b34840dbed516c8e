"""Each suite's targets, budgets and workload code are pinned to its version: changing any of them without
bumping the suite's version (``CORE_VERSION``, ``MULTITASK_VERSION``; results across versions are not comparable,
benchmark.md §6.4) fails here. To bump: change the version, re-run the calibration, and add the new version's pins
below (keep the old ones)."""

from __future__ import annotations

import pytest

from optimlab.bench import workloads as W

#: suite version -> workload -> (target, sha256 of the workload's code (16 hex digits), max_steps)
PINS = {
    "core-v1": {
        "quad_noisy": (0.001, "383c4a7f4838e883", 4000),
        "rosenbrock50": (1e-06, "73db01c8df0fccbf", 15000),
        "logreg_illcond": (0.001, "ab9bf75b7eb7fd38", 15000),
        "mlp_mnist1d": (0.871, "fa66599338e50bb8", 4500),
        "cnn1d_mnist1d": (0.935, "fa66599338e50bb8", 4500),
        "ae_digits": (0.00245, "579ba13e7cd8c057", 4500),
        "charlm_gpt": (2.01, "94e5546ae243a9f9", 900),
        "lstm_adding": (0.00273, "c7a41986d9996e2f", 2000),
        "grok_modadd": (0.965, "ea48f8d6e8982dd2", 1200),
        "labelnoise_cnn": (0.914, "fa66599338e50bb8", 3000),
        "heavytail_linreg": (0.01, "844b913ab763a40f", 3000),
        "deep_matfac": (2e-06, "58f8b224ff425d39", 4500),
    },
    "multitask-v1": {
        "mtl_regression": (0.112, "0b5a09e0996621c5", 3000),
    },
}

#: the suites whose versions are pinned (the smoke suite reuses their workloads in tiny configurations)
PINNED_SUITES = ("core", "multitask")
SUITE_OF = {w.id: name for name in PINNED_SUITES for w in W.suite(name)[2]}


@pytest.mark.parametrize("suite", PINNED_SUITES)
def test_the_current_version_is_pinned(suite):
    version, _, workloads = W.suite(suite)
    assert version in PINS, f"add the pins of {version} (see the module docstring)"
    assert set(PINS[version]) == {w.id for w in workloads}


def test_every_workload_belongs_to_a_pinned_suite():
    assert set(SUITE_OF) == {w.id for w in W.all_workloads()}


@pytest.mark.parametrize("workload", [w.id for w in W.all_workloads()])
def test_target_code_and_budget_match_the_suite_version(workload):
    w = W.get(workload)
    version = W.SUITES[SUITE_OF[workload]][0]
    target, code, max_steps = PINS[version][workload]
    bump = f"{workload} changed: bump the version of its suite ({version}) and recalibrate"
    assert w.target == target, bump
    assert w.code_hash() == code, bump
    assert w.budget.max_steps == max_steps, bump
