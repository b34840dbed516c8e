"""Validated loading: a state dict that does not fit the optimizer (another algorithm's state, a missing key, a
wrong-shaped tensor, a wrapper's state without its base's) raises ``ValueError`` naming the key and the parameter
at ``load_state_dict``, and leaves the optimizer as it was; what torch accepts (older checkpoints without newer
group keys, a plain-number ``step``) still loads."""

from __future__ import annotations

import copy

import pytest
import torch

import optimlab
from optimlab.wrappers._wrapper import BASE
from tests import _harness as H
from tests import optim_db as DB

ALL = optimlab.available()


def _trained(name: str, steps: int = 2):
    spec = optimlab.spec(name)
    hp = DB.test_hparams(name)
    params = [p.requires_grad_(True) for p in H.make_params(torch.float32)]
    opt = H.run_optimizer(lambda ps: spec.cls(H.split_groups(ps, hp), **hp), params, steps)
    return opt, params


def _first_tensor_key(state: dict) -> tuple[int, str]:
    for pid, s in state.items():
        for key, value in s.items():
            if key != "step" and isinstance(value, torch.Tensor) and value.numel() > 1:
                return pid, key
    pytest.skip("no per-parameter state tensor with more than one element")


def _snapshot(opt) -> list:
    holders = [opt, opt.base] if hasattr(opt, "base") else [opt]
    return [{k: v.clone() for k, v in s.items()} for h in holders for s in h.state.values()]


def _assert_unchanged(opt, before) -> None:
    after = _snapshot(opt)
    assert len(after) == len(before)
    for a, b in zip(after, before):
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("corruption", ["wrong shape", "missing key"])
@pytest.mark.parametrize("name", ALL)
def test_a_state_dict_that_does_not_fit_raises_at_load_naming_the_key(name, corruption):
    opt, _ = _trained(name)
    sd = copy.deepcopy(opt.state_dict())
    state = sd["state"]
    pid, key = _first_tensor_key(state)
    if corruption == "wrong shape":
        state[pid][key] = state[pid][key].reshape(-1)[:-1].clone()
    else:
        del state[pid][key]
    before = _snapshot(opt)
    named = key.removeprefix(BASE)  # a wrapper's error names its base's key inside the base's message
    with pytest.raises(ValueError, match=f"'{named}'.*parameter|parameter.*'{named}'"):
        opt.load_state_dict(sd)
    _assert_unchanged(opt, before)


@pytest.mark.parametrize(
    ("source", "target"),
    [
        (lambda ps: optimlab.Adam(ps), lambda ps: optimlab.SGD(ps, momentum=0.9)),
        (lambda ps: optimlab.AdamW(ps), lambda ps: optimlab.Lion(ps)),
        (lambda ps: optimlab.SGD(ps, momentum=0.9), lambda ps: optimlab.Adam(ps, amsgrad=True)),
    ],
    ids=["adam-into-sgd", "adamw-into-lion", "sgd-into-amsgrad"],
)
def test_another_algorithms_state_raises_at_load(source, target):
    params = [torch.nn.Parameter(torch.randn(3, 2)), torch.nn.Parameter(torch.randn(2))]
    opt = source(params)
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()
    fresh = target(params)
    with pytest.raises(ValueError, match=r"parameter \(group 0, index 0, shape \(3, 2\)\).*key"):
        fresh.load_state_dict(opt.state_dict())
    assert not fresh.state


def test_the_error_names_a_named_parameter():
    model = torch.nn.Linear(3, 2)
    opt = optimlab.Adam(model.named_parameters())
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    sd = copy.deepcopy(opt.state_dict())
    sd["state"][1]["exp_avg"] = torch.zeros(5)
    with pytest.raises(ValueError, match=r"'exp_avg' of parameter 'bias' .*shape \(5,\), expected \(2,\)"):
        opt.load_state_dict(sd)


def test_fsam_fisher_mask_of_the_wrong_shape_raises_at_load():
    """FSAM used to broadcast a (1, 1) mask silently at the next step."""
    opt, _ = _trained("fsam", steps=2)
    sd = copy.deepcopy(opt.state_dict())
    pid = next(k for k, s in sd["state"].items() if "fisher_mask" in s)
    sd["state"][pid]["fisher_mask"] = torch.ones(1, 1)
    with pytest.raises(ValueError, match="'fisher_mask' of parameter"):
        opt.load_state_dict(sd)


@pytest.mark.parametrize("name", ["sam", "asam", "fsam", "schedule_free", "orthograd"])
def test_a_wrapper_given_its_bases_state_dict_explains_instead_of_key_error(name):
    opt, _ = _trained(name)
    with pytest.raises(ValueError, match=r"nor its base optimizer's .*loads into \w+\.base"):
        opt.load_state_dict(opt.base.state_dict())


def test_older_checkpoint_without_new_group_keys_and_with_number_step_loads():
    params = [torch.nn.Parameter(torch.randn(4))]
    params[0].grad = torch.randn(4)
    opt = optimlab.Adam(params, amsgrad=True)
    opt.step()
    sd = copy.deepcopy(opt.state_dict())
    del sd["param_groups"][0]["amsgrad"], sd["param_groups"][0]["maximize"]
    sd["state"][0]["step"] = 1
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["amsgrad"] is True and opt.param_groups[0]["maximize"] is False
    assert torch.is_tensor(opt.state[params[0]]["step"])
    opt.step()
    assert int(opt.state[params[0]]["step"]) == 2


def test_a_wrappers_state_dict_keeps_a_non_dict_entry_a_hook_added():
    opt, _ = _trained("sam")
    opt.register_state_dict_pre_hook(lambda o: o.state.__setitem__("note", 1))
    assert opt.state_dict()["state"]["note"] == 1
