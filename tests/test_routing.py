"""optimlab.routing: roles on a small transformer-like model (untied and tied head) and a small CNN, the group
options per optimizer, and every matrix optimizer training both models from those groups."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import optimlab
from optimlab.routing import matrix_param_groups, param_roles


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.up = nn.Linear(d, 2 * d)
        self.down = nn.Linear(2 * d, d)

    def forward(self, x):
        h = self.norm1(x)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        att = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
        x = x + self.proj(att @ v)
        return x + self.down(torch.relu(self.up(self.norm2(x))))


class TinyLM(nn.Module):
    def __init__(self, vocab=23, d=8, tied=False):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList([Block(d), Block(d)])
        self.norm = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        if tied:
            self.lm_head.weight = self.embed.weight

    def forward(self, idx):
        x = self.embed(idx)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.norm(x))


class TinyCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.mean(dim=(2, 3)))


def test_roles_of_a_transformer_like_model():
    roles = param_roles(TinyLM())
    assert roles["embed.weight"] == "embedding"
    assert roles["lm_head.weight"] == "head"
    for name in ("qkv.weight", "proj.weight", "up.weight", "down.weight"):
        assert roles[f"blocks.0.{name}"] == "hidden" and roles[f"blocks.1.{name}"] == "hidden"
    for name in ("norm1.weight", "norm1.bias", "proj.bias", "up.bias", "down.bias"):
        assert roles[f"blocks.0.{name}"] == "vector"
    assert roles["norm.weight"] == roles["norm.bias"] == "vector"
    assert len(roles) == len(list(TinyLM().parameters()))


def test_tied_head_is_routed_once_as_the_embedding():
    model = TinyLM(tied=True)
    roles = param_roles(model)
    assert "lm_head.weight" not in roles and roles["embed.weight"] == "embedding"
    groups = matrix_param_groups(model, "muon")
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert "head" not in {g["role"] for g in groups}


def test_roles_of_a_cnn_and_the_conv_reshape_rule():
    model = TinyCNN()
    roles = param_roles(model)
    assert roles["conv1.weight"] == roles["conv2.weight"] == "conv"
    assert roles["fc.weight"] == "head"  # the last Linear when no module is named like a head
    assert {roles[n] for n in ("conv1.bias", "bn1.weight", "bn1.bias", "fc.bias")} == {"vector"}
    groups = {g["role"]: g for g in matrix_param_groups(model, "muon")}
    assert groups["conv"]["use_muon"] is True and groups["head"]["use_muon"] is False
    groups = {g["role"]: g for g in matrix_param_groups(model, "muon", conv="fallback", fallback="sgd")}
    assert groups["conv"]["use_muon"] is False and groups["conv"]["fallback"] == "sgd"


def test_head_selection_frozen_parameters_and_errors():
    model = TinyLM()
    assert "head" not in set(param_roles(model, head=None).values())
    roles = param_roles(model, head=["blocks.1.down"])
    assert roles["blocks.1.down.weight"] == "head" and roles["lm_head.weight"] == "hidden"
    model.embed.weight.requires_grad_(False)
    assert "embed.weight" not in param_roles(model)
    with pytest.raises(ValueError, match="head"):
        param_roles(model, head=["nope"])
    with pytest.raises(ValueError, match="optimizer"):
        matrix_param_groups(model, "adamw")
    with pytest.raises(ValueError, match="fallback"):
        matrix_param_groups(model, "scion", fallback="adamw")
    with pytest.raises(ValueError, match="roles"):
        matrix_param_groups(model, "muon", options={"biases": {}})


def test_group_options_per_optimizer():
    model = TinyLM()
    scion = {g["role"]: g for g in matrix_param_groups(model, "scion", options={"head": {"scale": 3000.0}})}
    assert scion["hidden"]["norm"] == "spectral" and scion["head"] == {**scion["head"], "norm": "sign", "scale": 3000.0}
    assert scion["embedding"]["norm"] == "col" and scion["embedding"]["transpose"] is True
    assert scion["vector"]["norm"] == "bias_rms"
    muon = {g["role"]: g for g in matrix_param_groups(model, "muon", fallback_lr=3e-4)}
    assert "lr" not in muon["hidden"] and muon["head"]["lr"] == muon["vector"]["lr"] == 3e-4
    assert {g["role"]: g.get("max_precond_dim") for g in matrix_param_groups(model, "soap")}["embedding"] == 0
    psgd = {g["role"]: g for g in matrix_param_groups(model, "psgd_kron")}
    assert psgd["head"]["preconditioner_max_size"] == 0 and "preconditioner_max_size" not in psgd["hidden"]


def _lm_batch():
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, 23, (4, 6), generator=g)
    return idx, torch.roll(idx, -1, dims=1)


def _cnn_batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 3, 6, 6, generator=g), torch.randint(0, 5, (8,), generator=g)


LRS = {"muon": 0.02, "scion": 0.05, "shampoo": 0.05, "soap": 0.01, "psgd_kron": 0.01}


@pytest.mark.parametrize("name", sorted(LRS))
@pytest.mark.parametrize("which", ["lm", "cnn"])
def test_every_matrix_optimizer_trains_both_models_from_the_routed_groups(name, which):
    torch.manual_seed(0)
    model, (x, y) = (TinyLM(), _lm_batch()) if which == "lm" else (TinyCNN(), _cnn_batch())
    options = {"hidden": {"ns_dtype": "float32"}, "conv": {"ns_dtype": "float32"}} if name in ("muon", "scion") else {}
    if name == "scion":
        options.update(head={"scale": 10.0}, embedding={"scale": 10.0}, vector={"scale": 1.0})
        options["hidden"]["scale"] = options["conv"]["scale"] = 3.0
    groups = matrix_param_groups(model, name, options=options, fallback_lr=3e-3 if name == "muon" else None)
    kw = {"precondition_frequency": 2} if name == "soap" else {}
    opt = optimlab.create(name, groups, lr=LRS[name], **kw)

    def loss_fn():
        out = model(x)
        return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1))

    with torch.no_grad():
        first = float(loss_fn())
    for _ in range(15):
        opt.zero_grad()
        loss_fn().backward()
        opt.step()
    with torch.no_grad():
        last = float(loss_fn())
    assert last < 0.9 * first
    if name == "muon":  # hidden/conv weights used Muon's buffer, the rest AdamW's moments
        for group in opt.param_groups:
            for p in group["params"]:
                uses_muon = group["role"] in ("hidden", "conv")
                expected = {"step", "momentum_buffer"} if uses_muon else {"step", "exp_avg", "exp_avg_sq"}
                assert set(opt.state[p]) == expected


@pytest.mark.parametrize("name", sorted(LRS))
def test_zero_gradients_keep_parameters_and_state_finite(name):
    """HeavyBall #55 (PSGD NaN with zero gradients): all-zero gradients from the first step on stay finite."""
    model = TinyLM()
    opt = optimlab.create(name, matrix_param_groups(model, name), lr=LRS[name])
    for _ in range(3):
        opt.zero_grad()
        (0.0 * model(_lm_batch()[0]).sum()).backward()
        opt.step()
    for p in model.parameters():
        assert bool(torch.isfinite(p).all())
        for value in opt.state[p].values():
            assert bool(torch.isfinite(value).all())


def test_param_groups_routes_to_a_matrix_optimizer_with_decay_on_matrices_only():
    model = torch.nn.Sequential(torch.nn.Embedding(11, 8), torch.nn.Linear(8, 8), torch.nn.LayerNorm(8))
    model.head = torch.nn.Linear(8, 11)
    groups = optimlab.param_groups(model, weight_decay=0.1, matrix_optimizer="muon", fallback="adamw")
    by_role = {g["role"]: g for g in groups}
    assert by_role["hidden"]["weight_decay"] == 0.1 and by_role["hidden"]["use_muon"]
    assert by_role["embedding"]["weight_decay"] == 0.0 and not by_role["embedding"]["use_muon"]
    opt = optimlab.create("muon", groups)
    assert len(opt.param_groups) == len(groups)
    with pytest.raises(ValueError, match="matrix_optimizer"):
        optimlab.param_groups(model, 0.1, fallback="adamw")
