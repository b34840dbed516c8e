"""torch.distributed.checkpoint in one process (``no_dist=True``) for every registered optimizer and wrapper:
``get_state_dict`` → ``dcp.save`` → a fresh model and optimizer → ``dcp.load`` → ``set_state_dict`` continues
bit for bit as the uninterrupted run. DCP keeps only ``state`` and ``param_groups`` and creates a fresh optimizer's
state by a ``step()`` without a closure on zero gradients at lr 0: wrappers keep their base's state under
``base.<name>`` keys, and optimizers that need a closure answer that one call by creating state (any other
``step()`` without a closure still raises). The 2-rank FSDP2 resharding is in tests/test_fsdp2.py."""

from __future__ import annotations

import pytest
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

import optimlab
from optimlab.wrappers._wrapper import BASE, WrapperOptimizer
from tests import _distributed as D

pytestmark = pytest.mark.filterwarnings("ignore:torch.distributed is disabled:UserWarning")
NAMES = optimlab.available()
WRAPPERS = [n for n in NAMES if issubclass(optimlab.spec(n).cls, WrapperOptimizer)]


def _build(name: str):
    model = D.model()
    return model, optimlab.create(name, model.parameters(), **D.hyperparameters(name))


def _train(model, opt, steps: int, start: int = 0) -> None:
    for t in range(start, start + steps):
        D.step(opt, model, *D.batch(t))


def _load(model, opt, path, options=None) -> None:
    msd, osd = get_state_dict(model, opt, options=options)
    state = {"model": msd, "optim": osd}
    dcp.load(state, checkpoint_id=path, no_dist=True)
    set_state_dict(model, opt, model_state_dict=state["model"], optim_state_dict=state["optim"], options=options)


@pytest.mark.parametrize("name", NAMES)
def test_dcp_save_load_continues_bit_for_bit(name, tmp_path):
    model, opt = _build(name)
    _train(model, opt, 3)
    msd, osd = get_state_dict(model, opt)
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(tmp_path), no_dist=True)
    _train(model, opt, 3, start=3)
    model2, opt2 = _build(name)
    _load(model2, opt2, str(tmp_path))
    _train(model2, opt2, 3, start=3)
    assert D.max_delta(D.full(model), D.full(model2)) == 0.0


@pytest.mark.parametrize("name", WRAPPERS)
def test_a_wrappers_dcp_state_holds_its_bases_state(name):
    model, opt = _build(name)
    _train(model, opt, 2)
    _, osd = get_state_dict(model, opt)
    weight = osd["state"]["0.weight"]
    base_keys = {k.removeprefix(BASE) for k in weight if k.startswith(BASE)}
    assert base_keys and base_keys == set(opt.base.state[next(model.parameters())])


def test_a_fresh_wrapper_that_needs_a_closure_gets_its_state_from_dcp_and_a_users_step_without_closure_raises():
    model, opt = _build("sam")
    _, osd = get_state_dict(model, opt)  # DCP's zero-gradient, lr-0 step() creates the state
    assert set(osd["state"]["0.weight"]) == {BASE + "step", BASE + "momentum_buffer"}
    assert all(p.grad is None for p in model.parameters())
    before = D.full(model)
    _train(model, opt, 1)
    assert D.max_delta(before, D.full(model)) > 0  # DCP restored the lr
    fresh_model, fresh = _build("sam")
    x, y = D.batch(0)
    torch.nn.functional.mse_loss(fresh_model(x), y).backward()
    with pytest.raises(RuntimeError, match="requires a closure"):
        fresh.step()


def test_the_older_wrapper_layout_still_loads():
    model, opt = _build("sam")
    _train(model, opt, 2)
    sd = opt.state_dict()
    older = {
        "state": {i: {k: v for k, v in s.items() if not k.startswith(BASE)} for i, s in sd["state"].items()},
        "base_state": opt.base.state_dict()["state"],
        "param_groups": sd["param_groups"],
    }
    model2, opt2 = _build("sam")
    model2.load_state_dict(model.state_dict())
    opt2.load_state_dict(older)
    _train(model, opt, 2, start=2)
    _train(model2, opt2, 2, start=2)
    assert D.max_delta(D.full(model), D.full(model2)) == 0.0


def test_a_checkpoint_that_lost_the_bases_state_is_refused(tmp_path):
    """DCP's flattened layout keeps only the keys of ``optimizer.state[p]`` (a wrapper's own): the load says so
    instead of continuing with a fresh base."""
    flat = StateDictOptions(flatten_optimizer_state_dict=True)
    model, opt = _build("schedule_free")
    _train(model, opt, 2)
    msd, osd = get_state_dict(model, opt, options=flat)
    dcp.save({"model": msd, "optim": osd}, checkpoint_id=str(tmp_path), no_dist=True)
    model2, opt2 = _build("schedule_free")
    with pytest.raises(ValueError, match="no base optimizer state"):
        _load(model2, opt2, str(tmp_path), options=flat)
