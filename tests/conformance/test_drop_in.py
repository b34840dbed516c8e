"""Drop-in behaviours of the optimlab classes that replace torch.optim ones, beyond torch's sample inputs:
torch's implementation flags, hooks, param groups added later, ``zero_grad``, complex parameters, sparse
gradients for SGD, and Muon's torch-named ``adjust_lr_fn``."""

from __future__ import annotations

import pytest
import torch
from torch.nn import Parameter
from torch.optim.optimizer import register_optimizer_step_post_hook

import optimlab

from . import _torch_db as T
from ._differences import difference

NAMES = list(T.DROP_INS)


def _params(name):
    torch.manual_seed(0)
    return [Parameter(torch.randn(4, 3)), Parameter(torch.randn(4, 1) if name == "Muon" else torch.randn(4))]


def _set_grads(params, seed):
    gen = torch.Generator().manual_seed(seed)
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen)


def _stepped_once(name):
    params = _params(name)
    opt = T.make(name, params)
    _set_grads(params, 0)
    opt.step()
    return opt, params


# ---------------------------------------------------------------------------------------------------- flags
@pytest.mark.parametrize("name", NAMES)
def test_foreach_is_accepted_and_changes_nothing(name):
    runs = []
    for foreach in (None, False, True):
        params = _params(name)
        opt = T.make(name, params, foreach=foreach)
        for t in range(3):
            _set_grads(params, t)
            opt.step()
        runs.append(params)
    for other in runs[1:]:
        for p, q in zip(runs[0], other):
            assert torch.equal(p, q)


@pytest.mark.parametrize("flag", ["capturable", "differentiable"])
def test_unsupported_flags_raise_not_implemented_naming_the_alternative(flag):
    with pytest.raises(NotImplementedError, match=f"{flag}=True.*(compile=True|optimlab.bilevel)"):
        optimlab.Adam(_params("Adam"), **{flag: True})
    optimlab.Adam(_params("Adam"), **{flag: False})  # the default value is accepted


def test_fused_and_foreach_together_raise_as_in_torch():
    with pytest.raises(RuntimeError, match="`fused` and `foreach` cannot be `True` together"):
        optimlab.SGD(_params("SGD"), fused=True, foreach=True)


def test_fused_selects_the_compiled_step():
    assert optimlab.AdamW(_params("AdamW"), fused=True).compile
    assert not optimlab.AdamW(_params("AdamW"), fused=False).compile


# ---------------------------------------------------------------------------------------------------- hooks
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_hooks_including_a_non_dict_state_entry(name):
    """torch's pattern: a pre-hook puts a plain entry into ``optimizer.state``, a post-hook reads it back."""
    opt, params = _stepped_once(name)

    def pre(optimizer):
        optimizer.state["test"] = 1

    def post(optimizer, state_dict):
        state_dict["ran_pre_hook"] = state_dict["state"]["test"] == 1
        return state_dict

    opt.register_state_dict_pre_hook(pre)
    opt.register_state_dict_post_hook(post)
    sd = opt.state_dict()
    assert sd["state"]["test"] == 1 and sd["ran_pre_hook"]


@pytest.mark.parametrize("name", NAMES)
def test_load_state_dict_hooks(name):
    opt, params = _stepped_once(name)
    sd = opt.state_dict()
    calls = []

    def pre(optimizer, state_dict):
        state_dict = {**state_dict, "param_groups": [{**g, "lr": 0.125} for g in state_dict["param_groups"]]}
        calls.append("pre")
        return state_dict

    def post(optimizer):
        calls.append("post")
        optimizer.state["loaded"] = True

    fresh = T.make(name, params)
    fresh.register_load_state_dict_pre_hook(pre)
    fresh.register_load_state_dict_post_hook(post)
    fresh.load_state_dict(sd)
    assert calls == ["pre", "post"] and fresh.state["loaded"] is True
    assert all(g["lr"] == 0.125 for g in fresh.param_groups)
    _set_grads(params, 1)
    fresh.step()  # the plain entry the hook added does not disturb the next step


@pytest.mark.parametrize("name", NAMES)
def test_step_hooks_run_once_per_step(name):
    params = _params(name)
    opt = T.make(name, params)
    seen = []
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append("pre"))
    opt.register_step_post_hook(lambda o, args, kwargs: seen.append("post"))
    handle = register_optimizer_step_post_hook(lambda o, args, kwargs: seen.append("global"))
    try:
        for t in range(2):
            _set_grads(params, t)
            opt.step()
    finally:
        handle.remove()
    assert seen == ["pre", "post", "global"] * 2


# ---------------------------------------------------------------------------------------------------- groups
@pytest.mark.parametrize("name", NAMES)
def test_param_group_added_later_steps_as_torch(name):
    ours = _params(name)
    theirs = [Parameter(p.detach().clone()) for p in ours]
    opt = T.make(name, [ours[0]], torch_conventions=True, lr=0.01)
    ref = T.torch_class(name)([theirs[0]], lr=0.01)
    for t in range(4):
        if t == 2:
            opt.add_param_group({"params": [ours[1]], "lr": 0.02})
            ref.add_param_group({"params": [theirs[1]], "lr": 0.02})
        _set_grads(ours, t)
        _set_grads(theirs, t)
        opt.step()
        ref.step()
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q)


@pytest.mark.parametrize("direction", ["torch->optimlab", "optimlab->torch"])
@pytest.mark.parametrize("name", NAMES)
def test_state_dicts_load_across_torch_and_optimlab(request, name, direction):
    """A checkpoint of torch's optimizer resumes in optimlab's and the other way round, with torch's numbers."""
    reason = difference("cross_load", name, direction)
    if reason is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"intentional difference: {reason}"))
    torch.manual_seed(0)
    ours = [Parameter(torch.randn(4, 3)), Parameter(torch.randn(4, 2))]
    twins = [Parameter(p.detach().clone()) for p in ours]
    kwargs = {"momentum": 0.9} if name == "SGD" else {}

    def torch_made(params):
        return T.torch_class(name)(params, **kwargs)

    def optimlab_made(params):
        return T.make(name, params, torch_conventions=True, **kwargs)

    first, second = (torch_made, optimlab_made) if direction == "torch->optimlab" else (optimlab_made, torch_made)
    saver, ref = first(ours), torch_made(twins)
    T.step_together(saver, ref, ours, twins, 2)
    resumed = second(ours)
    resumed.load_state_dict(saver.state_dict())
    T.step_together(resumed, ref, ours, twins, 2)
    for p, q in zip(ours, twins):
        torch.testing.assert_close(p, q)


@pytest.mark.parametrize("set_to_none", [True, False])
def test_zero_grad(set_to_none):
    params = _params("Adam")
    opt = optimlab.Adam(params)
    _set_grads(params, 0)
    opt.zero_grad(set_to_none=set_to_none)
    for p in params:
        assert p.grad is None if set_to_none else torch.equal(p.grad, torch.zeros_like(p))


@pytest.mark.parametrize("name", [n for n in NAMES if T.INFOS[n].supports_complex])
def test_complex_params_step_as_their_real_views(name):
    torch.manual_seed(0)
    z = Parameter(torch.randn(4, 3, dtype=torch.complex64))
    r = Parameter(torch.view_as_real(z).detach().clone())
    opt_z, opt_r = T.make(name, [z], weight_decay=0.1), T.make(name, [r], weight_decay=0.1)
    for _ in range(3):
        z.grad = torch.randn_like(z)
        r.grad = torch.view_as_real(z.grad).clone()
        opt_z.step()
        opt_r.step()
    torch.testing.assert_close(torch.view_as_real(z), r)


# ---------------------------------------------------------------------------------------------------- SGD sparse
@pytest.mark.parametrize(
    "kwargs", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}, {"weight_decay": 0.1, "maximize": True}]
)
def test_sgd_takes_sparse_gradients_as_torch(kwargs):
    """An nn.Embedding(sparse=True) gradient (uncoalesced, repeated rows) steps as torch's SGD steps the same
    gradient made dense (torch's sparse SGD takes no weight decay; its other results equal the dense ones)."""
    torch.manual_seed(0)
    ours, theirs = torch.nn.Embedding(6, 3, sparse=True), torch.nn.Embedding(6, 3)
    theirs.load_state_dict(ours.state_dict())
    opt = optimlab.SGD(ours.parameters(), lr=0.1, **kwargs)
    ref = torch.optim.SGD(theirs.parameters(), lr=0.1, **kwargs)
    for t in range(3):
        idx = torch.tensor([t, 1, 1, 4])
        for emb, o in ((ours, opt), (theirs, ref)):
            o.zero_grad()
            emb(idx).pow(2).sum().backward()
            o.step()
        assert ours.weight.grad.is_sparse
    torch.testing.assert_close(ours.weight, theirs.weight)


def test_other_optimizers_still_refuse_sparse_gradients_clearly():
    emb = torch.nn.Embedding(5, 2, sparse=True)
    emb(torch.tensor([1])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        optimlab.Adam(emb.parameters()).step()


# ---------------------------------------------------------------------------------------------------- Muon
@pytest.mark.parametrize(("fn", "ours"), [(None, "original"), ("original", "original"), ("match_rms_adamw", None)])
def test_muon_accepts_torchs_adjust_lr_fn(fn, ours):
    opt = optimlab.Muon([Parameter(torch.randn(4, 3))], adjust_lr_fn=fn)
    assert opt.param_groups[0]["adjust_lr"] == (ours or fn)


def test_muon_adjust_lr_fn_errors():
    with pytest.raises(ValueError, match="Adjust learning rate function arbitrary is not supported"):
        optimlab.Muon([Parameter(torch.randn(4, 3))], adjust_lr_fn="arbitrary")
    with pytest.raises(ValueError, match="not both"):
        optimlab.Muon([Parameter(torch.randn(4, 3))], adjust_lr="original", adjust_lr_fn="original")
