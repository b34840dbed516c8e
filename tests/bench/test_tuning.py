"""Search spaces, the Halton sampler, adapters and the cache keys of planned cells."""

from __future__ import annotations

import math

import pytest

import optimlab
from optimlab import registry as R
from optimlab.bench import adapters, runner, tuning
from optimlab.bench import workloads as W


def test_halton_points_are_in_the_unit_cube_and_well_spread():
    pts = tuning.halton(64, 3, seed=0)
    assert len(pts) == 64 and all(0 <= x < 1 for p in pts for x in p)
    for j in range(3):  # each coordinate hits every eighth of [0, 1) exactly 8 times (stratification)
        counts = [0] * 8
        for p in pts:
            counts[int(p[j] * 8)] += 1
        assert max(counts) - min(counts) <= 2
    assert tuning.halton(5, 2, seed=1) == tuning.halton(5, 2, seed=1) != tuning.halton(5, 2, seed=2)
    assert tuning.halton(3, 2, seed=1, start=2) == tuning.halton(5, 2, seed=1)[2:]


def test_search_dimensions_map_and_invert():
    space = {
        "lr": R.LogUniform(1e-4, 1e-1),
        "wd": R.Uniform(0.0, 0.5),
        "beta1": R.OneMinusLogUniform(0.5, 0.99),
        "kind": R.Choice(("a", "b", (1, 2))),
    }
    params = tuning.from_unit(space, [0.0, 0.5, 1.0 - 1e-12, 0.99])
    assert params["lr"] == pytest.approx(1e-4) and params["wd"] == pytest.approx(0.25)
    assert params["one_minus_beta1"] == pytest.approx(0.5)
    hp = tuning.to_hparams(space, params)
    assert hp["beta1"] == pytest.approx(0.5) and hp["kind"] == (1, 2)
    lo = tuning.to_hparams(space, tuning.from_unit(space, [0, 0, 0, 0]))
    assert lo["beta1"] == pytest.approx(0.99) and lo["kind"] == "a"
    dists = tuning.distributions(space)
    for name, value in params.items():
        assert dists[name]._contains(dists[name].to_internal_repr(value))


def test_registry_search_spaces_are_usable():
    for name in optimlab.available():
        h = adapters.resolve(name)
        space = tuning.tuning_space(h)
        hp = tuning.to_hparams(space, tuning.from_unit(space, [0.37] * len(space)))
        opt = adapters.build_optimizer(h, [__import__("torch").zeros(3, requires_grad=True)], hp)
        assert opt is not None
        if "beta1" in space:
            assert h.resolved_hparams(hp)["betas"][0] == pytest.approx(hp["beta1"])


def test_adapters_resolve_and_mark_the_library():
    a = adapters.resolve("adamw")
    assert a.library == "optimlab" and a.search_space and a.defaults["lr"] == 1e-3
    t = adapters.resolve("torch:AdamW")
    assert t.library == "torch" and set(t.search_space) >= {"lr", "beta1", "beta2", "weight_decay"}
    import torch

    opt = adapters.build_optimizer(t, [torch.zeros(2, requires_grad=True)], {"lr": 0.1, "beta1": 0.8})
    assert opt.param_groups[0]["betas"] == (0.8, 0.999)
    with pytest.raises(ValueError, match="unknown optimizer"):
        adapters.resolve("nosuch")
    if adapters.available_libraries()["heavyball"] is None:
        with pytest.raises(ValueError, match="not installed"):
            adapters.resolve("heavyball:ForeachAdamW")
    assert [h.id for h in adapters.resolve_many("adamw, sgd,adamw")] == ["adamw", "sgd"]


def test_cell_keys_are_stable_and_sensitive():
    version, smoke, _ = W.suite("smoke")
    wl = [W.get("quad_noisy")]
    hs = [adapters.resolve("adamw")]
    a = tuning.plan_defaults(version, wl, hs, seeds=2, smoke=smoke)
    b = tuning.plan_defaults(version, wl, hs, seeds=2, smoke=smoke)
    assert [c.key for c in a] == [c.key for c in b] and len({c.key for c in a}) == 2
    c = tuning.plan_defaults(version, wl, hs, seeds=2, smoke=smoke, hparams={"lr": 1e-2})
    assert not {x.key for x in a} & {x.key for x in c}
    q = tuning.plan_quasirandom(version, wl, hs, trials=3, studies=2, smoke=smoke)
    assert len(q) == 6 and len({x.key for x in q}) == 6
    assert all(x.spec.seed == x.meta["study"] for x in q)
    lrs = [x.spec.hparams["lr"] for x in q]
    assert len(set(lrs)) == 6 and all(1e-5 <= v <= 1e-1 for v in lrs)


def test_objective_value_orders_outcomes():
    wl = W.get("quad_noisy")
    base = {"max_steps": 100, "initial_metric": 1.0, "best_metric": 0.1}
    hit = runner.objective_value({**base, "status": "hit", "steps_to_target": 50}, wl)
    near = runner.objective_value({**base, "status": "miss", "best_metric": 2e-3}, wl)
    far = runner.objective_value({**base, "status": "miss", "best_metric": 0.5}, wl)
    div = runner.objective_value({**base, "status": "diverged"}, wl)
    err = runner.objective_value({**base, "status": "error"}, wl)
    assert hit == 0.5 < near < far < div < err
    assert math.isclose(near, 1 + math.log10(2e-3 / 1e-3) / 3)


def test_pytorch_optimizer_adapter():
    pytest.importorskip("pytorch_optimizer")
    import torch

    h = adapters.resolve("po:Lion")
    assert h.library == "pytorch_optimizer" and not h.typed_groups and "lr" in h.search_space
    assert adapters.resolve("po:lion").factory is h.factory  # case-insensitive lookup through load_optimizer
    result = runner.run_trial(runner.TrialSpec("po:Lion", "quad_noisy", smoke=True, hparams={"lr": 1e-3}))
    assert result.status in ("hit", "miss") and result.state_bytes > 0
    opt = adapters.build_optimizer(h, [torch.zeros(2, requires_grad=True)], {"beta1": 0.8})
    assert opt.param_groups[0]["betas"][0] == 0.8


def test_plans_leave_out_pairs_that_are_not_applicable():
    """Sophia-G needs logits: every plan leaves (sophia_g, quad_noisy) out and says why; (sophia_g, grok_modadd)
    stays."""
    version, smoke, _ = W.suite("smoke")
    wl = [W.get("quad_noisy"), W.get("grok_modadd")]
    hs = adapters.resolve_many("adamw,sophia_g")
    pairs = lambda cells: {(c.meta["workload"], c.meta["algorithm"]) for c in cells}  # noqa: E731
    expected = {("quad_noisy", "adamw"), ("grok_modadd", "adamw"), ("grok_modadd", "sophia_g")}
    assert pairs(tuning.plan_defaults(version, wl, hs, seeds=2, smoke=smoke)) == expected
    assert len(tuning.plan_defaults(version, wl, hs, seeds=2, smoke=smoke)) == 6
    assert pairs(tuning.plan_quasirandom(version, wl, hs, trials=2, studies=1, smoke=smoke)) == expected
    assert tuning.left_out(wl, hs) == {"sophia_g": ["quad_noisy"]}
    [line] = tuning.left_out_lines(wl, hs)
    assert line.startswith("not applicable, left out: sophia_g on quad_noisy (sophia_g needs the model's logits")


@pytest.mark.parametrize(
    "optimizer_id",
    ["torch:AdamW", "po:Lion", "heavyball:AdamW", "schedulefree:AdamWScheduleFree", "optimi:AdamW", "bnb:AdamW8bit"],
)
def test_other_libraries_run_through_the_same_harness(optimizer_id):
    """Each adapter (installed by the dev extra) trains a smoke workload through the same runner, and the row
    carries its library and version."""
    library = optimizer_id.partition(":")[0]
    if adapters.available_libraries()[library] is None:
        pytest.skip(f"{library} is not installed (pip install -e '.[compare]')")
    h = adapters.resolve(optimizer_id)
    assert h.library_version == adapters.available_libraries()[library]
    result = runner.run_trial(runner.TrialSpec(optimizer_id, "quad_noisy", smoke=True, hparams={"lr": 1e-3}))
    assert result.status in ("hit", "miss"), result.error
    assert result.steps > 0 and result.grad_evals == result.steps and result.state_bytes > 0
    assert result.final_metric < result.initial_metric
