"""Tests of the shared machinery: non-finite policy, stochastic rounding, dtype-preserving checkpoints,
param-group helper, registry and CLI."""

from __future__ import annotations

import copy

import pytest
import torch

import optimlab
from optimlab.cli import main as cli_main
from optimlab.optim import _kernels as K
from tests import _harness as H


def _with_grads(grads):
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    return params


# ------------------------------------------------------------------------------------------------ non-finite
def test_nonfinite_skip_leaves_param_and_state_untouched_and_counts():
    params = _with_grads([torch.ones(3), torch.tensor([1.0, float("nan"), 2.0])])
    opt = optimlab.AdamW(params, lr=0.1)
    opt.step()
    assert opt.param_groups[0]["nonfinite_skips"] == 1
    assert torch.equal(params[1].detach(), torch.zeros(3)), "skipped parameter must not move"
    assert "step" not in opt.state[params[1]] or float(opt.state[params[1]]["step"]) == 0
    assert not torch.equal(params[0].detach(), torch.zeros(3)), "finite parameter still updates"
    params[1].grad = torch.ones(3)
    opt.step()
    assert torch.isfinite(opt.state[params[1]]["exp_avg_sq"]).all()
    assert float(opt.state[params[1]]["step"]) == 1
    # the counter is part of the checkpoint
    assert H.roundtrip(opt.state_dict())["param_groups"][0]["nonfinite_skips"] == 1


def test_nonfinite_raise():
    params = _with_grads([torch.tensor([float("inf"), 0.0])])
    opt = optimlab.Adam(params, nonfinite="raise")
    with pytest.raises(FloatingPointError, match="non-finite"):
        opt.step()
    assert torch.equal(params[0].detach(), torch.zeros(2))


def test_nonfinite_propagate_matches_torch():
    g = torch.tensor([float("nan"), 1.0])
    ours, theirs = _with_grads([g]), _with_grads([g])
    optimlab.Adam(ours, nonfinite="propagate").step()
    torch.optim.Adam(theirs).step()
    torch.testing.assert_close(ours[0], theirs[0], equal_nan=True)
    assert torch.isnan(ours[0]).any()


def test_invalid_options_raise_value_error():
    p = [torch.zeros(2, requires_grad=True)]
    for kwargs, field in (({"nonfinite": "ignore"}, "nonfinite"), ({"compile": "yes"}, "compile")):
        with pytest.raises(ValueError, match=field):
            optimlab.Adam(p, **kwargs)


def test_sparse_gradients_are_refused_clearly():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        optimlab.Adam(emb.parameters()).step()


# ------------------------------------------------------------------------------------------------ precision
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_stochastic_rounding_is_unbiased(dtype):
    x = torch.full((200_000,), 1.0 + 1e-3 / 3, dtype=torch.float32)  # between two representable values
    x = torch.cat([x, -x, torch.full((200_000,), 3e-3)])
    out = torch.empty_like(x, dtype=dtype)
    K.copy_stochastic_(out, x, torch.Generator().manual_seed(0))
    for part in out.float().chunk(3):
        values = part.unique()
        assert len(values) == 2, "only the two neighbours of x appear"
    mean = out.float().view(3, -1).mean(1)
    target = x.view(3, -1)[:, 0]
    nearest_err = (x.to(dtype).float().view(3, -1)[:, 0] - target).abs()
    assert ((mean - target).abs() < nearest_err / 20).all(), (mean, target)


def test_stochastic_rounding_keeps_exact_and_special_values():
    x = torch.tensor([0.0, 1.0, -2.5, float("inf"), -float("inf")])
    for dtype in (torch.bfloat16, torch.float16):
        out = torch.empty_like(x, dtype=dtype)
        K.copy_stochastic_(out, x, torch.Generator().manual_seed(1))
        assert torch.equal(out.float(), x)


def test_bf16_training_with_stochastic_rounding_moves_where_nearest_rounding_stalls():
    """Tiny updates to a bf16 weight vanish under round-to-nearest; stochastic rounding keeps them on average."""
    results = {}
    for sr in (False, True):
        p = torch.full((1000,), 1.0, dtype=torch.bfloat16, requires_grad=True)
        opt = optimlab.SGD([p], lr=1e-4, stochastic_rounding=sr, seed=3)
        for _ in range(20):
            p.grad = torch.ones_like(p)
            opt.step()
        results[sr] = p.float().mean().item()
    assert results[False] == 1.0
    assert abs(results[True] - (1.0 - 20 * 1e-4)) < 5e-4


def test_stochastic_rounding_resumes_exactly():
    def run(steps, opt=None, p=None):
        if p is None:
            p = torch.linspace(-1, 1, 50, dtype=torch.bfloat16).requires_grad_(True)
        opt = opt or optimlab.AdamW([p], lr=1e-3, stochastic_rounding=True, seed=7)
        for t in range(steps):
            p.grad = torch.sin(p.detach().float() * (t + 1)).to(torch.bfloat16)
            opt.step()
        return p, opt

    straight, _ = run(6)
    p, opt = run(3)
    saved = H.roundtrip({"p": p.detach(), "opt": opt.state_dict()})
    p2 = saved["p"].clone().requires_grad_(True)
    opt2 = optimlab.AdamW([p2], lr=1e-3, stochastic_rounding=True, seed=7)
    opt2.load_state_dict(saved["opt"])
    for t in range(3, 6):
        p2.grad = torch.sin(p2.detach().float() * (t + 1)).to(torch.bfloat16)
        opt2.step()
    assert torch.equal(straight, p2)


def test_load_state_dict_keeps_fp32_state_of_bf16_params():
    p = torch.ones(4, dtype=torch.bfloat16, requires_grad=True)
    opt = optimlab.Adam([p])
    p.grad = torch.full_like(p, 1e-3)
    opt.step()
    sd = H.roundtrip(opt.state_dict())
    opt2 = optimlab.Adam([p])
    opt2.load_state_dict(sd)
    assert opt2.state[p]["exp_avg"].dtype == torch.float32
    assert torch.equal(opt2.state[p]["exp_avg"], opt.state[p]["exp_avg"])
    # loaded state is a copy: stepping opt2 does not change the dict it was loaded from
    before = sd["state"][0]["exp_avg"].clone()
    opt2.step()
    assert torch.equal(sd["state"][0]["exp_avg"], before)


def test_deepcopy_keeps_options():
    opt = optimlab.Adam([torch.zeros(2, requires_grad=True)], nonfinite="raise", stochastic_rounding=True, seed=5)
    clone = copy.deepcopy(opt)
    assert (clone.nonfinite, clone.stochastic_rounding, clone.seed) == ("raise", True, 5)


# ------------------------------------------------------------------------------------------------ helpers
def test_param_groups_keeps_biases_norms_and_embeddings_out_of_decay():
    model = torch.nn.Sequential(
        torch.nn.Embedding(10, 4), torch.nn.Linear(4, 4), torch.nn.LayerNorm(4), torch.nn.Linear(4, 2, bias=False)
    )
    model[3].weight.requires_grad_(False)
    decay, keep = optimlab.param_groups(model, weight_decay=0.1, lr=1e-3)
    assert decay["weight_decay"] == 0.1 and keep["weight_decay"] == 0.0 and decay["lr"] == keep["lr"] == 1e-3
    assert [tuple(p.shape) for p in decay["params"]] == [(4, 4)]
    assert {tuple(p.shape) for p in keep["params"]} == {(10, 4), (4,)}
    assert len(keep["params"]) == 4  # embedding, linear bias, norm weight and bias; the frozen weight is left out
    opt = optimlab.create("adamw", optimlab.param_groups(model, 0.1))
    assert len(opt.param_groups) == 2


def test_param_groups_custom_rule():
    model = torch.nn.Linear(3, 3)
    groups = optimlab.param_groups(model, 0.1, no_decay=lambda name, p, m: name == "weight")
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.0


def test_registry_lookup_and_errors():
    assert "adamw" in optimlab.available() and "adamw" in optimlab.available(family="adam")
    assert optimlab.available(family="no-such-family") == []
    with pytest.raises(KeyError, match="unknown algorithm 'nope'.*adamw"):
        optimlab.create("nope", [torch.zeros(1, requires_grad=True)])
    opt = optimlab.create("AdamW", [torch.zeros(1, requires_grad=True)], beta2=0.95)
    assert opt.defaults["betas"] == (0.9, 0.95)
    assert optimlab.AdamW is optimlab.spec("adamw").cls
    with pytest.raises(AttributeError):
        optimlab.NoSuchOptimizer  # noqa: B018


@pytest.mark.parametrize("name", optimlab.available())
def test_registry_records_are_complete(name):
    s = optimlab.spec(name)
    assert s.paper.title and s.paper.year and s.summary
    assert s.search_space, "the benchmark needs a search space"
    assert set(s.defaults) <= set(s.cls(params=[torch.zeros(1, requires_grad=True)]).defaults) | {"betas"}
    assert s.cls.__doc__


def test_cli_list_and_demo(capsys, tmp_path):
    assert cli_main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in optimlab.available())
    assert cli_main(["list", "--markdown"]) == 0
    assert capsys.readouterr().out.startswith("| name |")
    assert cli_main(["demo", "--optimizers", "adamw,sgd", "--steps", "5", "--out", str(tmp_path / "losses")]) == 0
    out = capsys.readouterr().out
    assert "final loss" in out and f"loss curves: {tmp_path / 'losses.png'}" in out
    assert cli_main(["demo", "--optimizers", "nope"]) == 2


def test_readme_catalogue_matches_the_registry():
    """The README's catalogue table is `optimlab list --markdown`; regenerate it with
    `python -m optimlab.cli list --markdown` when a record changes."""
    from pathlib import Path

    from optimlab.cli import catalogue_rows, render_table

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    table = readme.split("<!-- catalogue:start -->\n")[1].split("<!-- catalogue:end -->")[0].strip()
    assert table == render_table(catalogue_rows(), markdown=True)


@pytest.mark.parametrize(
    "name,hparams,dtype,expected_tensors",
    [
        ("adam", {"amsgrad": True}, torch.float32, 3),
        ("sgd", {"momentum": 0.0}, torch.float32, 0),
        ("adamw", {}, torch.complex64, 2),
        ("adamw", {}, torch.float16, 2),
    ],
)
def test_state_bytes_follow_flags_and_dtypes(name, hparams, dtype, expected_tensors):
    spec = optimlab.spec(name)
    p = torch.zeros(6, 5, dtype=dtype, requires_grad=True)
    opt = spec.create([p], **hparams)
    p.grad = torch.ones_like(p)
    opt.step()
    numel = 30 * (2 if dtype.is_complex else 1)
    assert spec.state_bytes((6, 5), dtype, **hparams) == expected_tensors * numel * 4 + 4
    assert optimlab.state_bytes(opt) == spec.state_bytes((6, 5), dtype, **hparams)


def test_the_static_import_block_lists_every_registered_class():
    """``from optimlab import AdamW`` is visible to IDEs and type checkers: the ``TYPE_CHECKING`` block of
    optimlab/__init__.py imports every registered class (scripts/update_public_names.py regenerates it)."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("update_public_names", root / "scripts" / "update_public_names.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    text = script.INIT.read_text()
    assert script.updated(text) == text, "run scripts/update_public_names.py"
    for s in optimlab.specs():
        assert f"import {s.cls.__name__} as {s.cls.__name__}\n" in text
