"""torch.optim's conformance suite run against optimlab's drop-ins.

The behaviours are those ``TestOptimRenewed`` (torch's test/test_optim.py) checks, re-implemented here and driven
by torch's own ``optim_db`` sample and error inputs, with optimlab's class substituted for torch's (see
``_torch_db``). Cases that hit an intentional difference are strict xfails listed in ``_differences`` and explained
in docs/compatibility.md.
"""

from __future__ import annotations

import functools
import io
from copy import deepcopy
from pathlib import Path

import pytest
import torch
from torch.nn import Parameter

from . import _torch_db as T
from ._differences import DIFFERENCES, difference

CASES = T.cases()
#: with the variants setting each supported global flag (foreach); used where the flag could change the outcome
#: cheaply; the heavier checkpoint and param-group tests use the plain inputs (foreach has no effect here:
#: test_drop_in.py checks that)
FLAG_CASES = T.cases(flags=True)
ERROR_CASES = [
    (name, i, err.optimizer_error_input.desc) for name in T.DROP_INS for i, err in enumerate(T.error_inputs(name))
]
NAMES = list(T.DROP_INS)


def _ids(cases):
    return [f"{name}-{desc}" for name, _, desc in cases]


def _expect(request, test: str, name: str, desc: str) -> None:
    reason = difference(test, name, desc)
    if reason is not None:
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"intentional difference: {reason}"))


def _weight_bias(name: str, contiguous: bool = True) -> tuple[Parameter, Parameter]:
    """torch's (10, 5) weight and (10,) bias; Muon (whose torch version takes matrices only) gets a (10, 1) bias."""
    bias_shape = (10, 1) if name == "Muon" else (10,)
    if contiguous:
        return Parameter(torch.randn(10, 5)), Parameter(torch.randn(bias_shape))
    return Parameter(torch.randn(10, 5, 2)[..., 0]), Parameter(torch.randn(*bias_shape, 2)[..., 0])


def _loss(weight, bias, x):
    return (weight.mv(x) + bias.reshape(-1)).pow(2).sum()


def _moved_the_right_way(kwargs, before: float, after: float) -> None:
    if kwargs.get("maximize", False):
        assert after > before
    else:
        assert after < before


# ---------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(("name", "index", "desc"), ERROR_CASES, ids=_ids(ERROR_CASES))
def test_errors(request, name, index, desc):
    """The same bad input raises the same error type, with a message matching torch's pattern."""
    _expect(request, "errors", name, desc)
    err = T.error_inputs(name)[index]
    inp = err.optimizer_error_input
    if issubclass(err.error_type, Warning):
        check = functools.partial(pytest.warns, err.error_type, match=err.error_regex)
    else:
        check = functools.partial(pytest.raises, err.error_type, match=err.error_regex)
    if err.error_on == T.ConstructionError:
        with check():
            T.make(name, inp.params, **inp.kwargs)
    else:
        opt = T.make(name, inp.params, **inp.kwargs)
        with check():
            opt.step()


# ---------------------------------------------------------------------------------------------------- numbers
@pytest.mark.parametrize(("name", "index", "desc"), CASES, ids=_ids(CASES))
def test_matches_torch(name, index, desc):
    """Five steps on torch's sample input give torch's parameters (torch's conventions selected where optimlab's
    default follows another source: Muon's preset)."""
    kwargs = T.kwargs_of(name, index)
    torch.manual_seed(0)
    ours = list(_weight_bias(name))
    theirs = [Parameter(p.detach().clone()) for p in ours]
    opt = T.make(name, ours, torch_conventions=True, **deepcopy(kwargs))
    ref = T.torch_class(name)(theirs, **kwargs)
    T.step_together(opt, ref, ours, theirs, 5)
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q)


# ---------------------------------------------------------------------------------------------------- direction
@pytest.mark.parametrize("contiguous", [True, False], ids=["contiguous", "strided"])
@pytest.mark.parametrize(("name", "index", "desc"), CASES, ids=_ids(CASES))
def test_goes_right_direction(name, index, desc, contiguous):
    kwargs = T.kwargs_of(name, index)
    if "foreach" in T.INFOS[name].supported_impls:
        kwargs["foreach"] = False
    torch.manual_seed(0)
    weight, bias = _weight_bias(name, contiguous)
    x = torch.randn(5)
    opt = T.make(name, [weight, bias], **kwargs)

    def closure():
        opt.zero_grad()
        loss = _loss(weight, bias, x)
        loss.backward()
        return loss

    before = closure().item()
    for _ in range(20):
        opt.step(closure)
    _moved_the_right_way(kwargs, before, closure().item())


@pytest.mark.parametrize(("name", "index", "desc"), CASES, ids=_ids(CASES))
def test_param_groups_weight_decay(name, index, desc):
    kwargs = T.kwargs_of(name, index)
    bias_kwargs = {**deepcopy(kwargs), "weight_decay": 0.0}
    torch.manual_seed(0)
    weight, bias = _weight_bias(name)
    x = torch.randn(5)
    opt = T.make(name, [dict(params=[weight], **kwargs), dict(params=[bias], **bias_kwargs)])
    before = _loss(weight, bias, x).item()
    for _ in range(20):
        opt.zero_grad()
        loss = _loss(weight, bias, x)
        loss.backward()
        opt.step()
    _moved_the_right_way(kwargs, before, loss.item())


@pytest.mark.parametrize(("name", "index", "desc"), CASES, ids=_ids(CASES))
def test_param_groups_lr(name, index, desc):
    """A group's lr overrides the default: the loss moves, a parameter of a group with lr 1e-28 stays put."""
    kwargs = T.kwargs_of(name, index)
    if not isinstance(kwargs.get("lr", 1.0), torch.Tensor) and kwargs.get("lr", 0) == 0:
        kwargs["lr"] = 1e-3
    torch.manual_seed(0)
    weight, bias = _weight_bias(name)
    irrelevant = Parameter(torch.randn(2, 2))
    frozen = irrelevant.detach().clone()
    x = torch.randn(5)
    opt = T.make(name, [dict(params=[weight, bias], **kwargs), dict(params=[irrelevant])], lr=1e-28)
    before = _loss(weight, bias, x).item()
    for _ in range(20):
        opt.zero_grad()
        loss = _loss(weight, bias, x)
        loss.backward()
        irrelevant.grad = torch.rand_like(irrelevant)
        opt.step()
    _moved_the_right_way(kwargs, before, loss.item())
    torch.testing.assert_close(irrelevant.detach(), frozen)


# ---------------------------------------------------------------------------------------------------- no-ops
@pytest.mark.parametrize(("name", "index", "desc"), FLAG_CASES, ids=_ids(FLAG_CASES))
def test_step_is_noop_when_params_have_no_grad(name, index, desc):
    params = [torch.randn(2, 3) for _ in range(2)]
    old = [p.clone() for p in params]
    opt = T.make(name, params, **T.kwargs_of(name, index, flags=True))
    opt.step(lambda: torch.tensor([1.0]))
    for p, q in zip(params, old):
        assert torch.equal(p, q)


@pytest.mark.parametrize(("name", "index", "desc"), FLAG_CASES, ids=_ids(FLAG_CASES))
def test_step_is_noop_for_zero_grads(name, index, desc):
    kwargs = T.kwargs_of(name, index, flags=True)
    if kwargs.get("weight_decay", 0) != 0:
        pytest.skip("weight decay moves parameters without a gradient (as in torch)")
    if name == "AdamW":  # decoupled decay by default: a tiny lr keeps the move within tolerance, as torch's test
        kwargs["lr"] = torch.tensor(1e-4) if isinstance(kwargs.get("lr"), torch.Tensor) else 1e-4
    param = Parameter(torch.randn(5, 1))
    old = param.detach().clone()
    opt = T.make(name, [param], **kwargs)
    param.grad = torch.zeros_like(param)
    opt.step(lambda: torch.tensor([1.0]))
    torch.testing.assert_close(param.detach(), old)


@pytest.mark.parametrize(("name", "index", "desc"), FLAG_CASES, ids=_ids(FLAG_CASES))
def test_optimizer_can_be_printed(name, index, desc):
    params = [Parameter(torch.randn(2, 3)) for _ in range(2)]
    assert name in repr(T.make(name, params, **T.kwargs_of(name, index, flags=True)))


# ---------------------------------------------------------------------------------------------------- checkpoints
def _assert_same(a, b, where="state_dict"):
    """Nested dicts/lists/tuples equal, tensors bit for bit."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def _fwd_bwd(opt, weight, bias, x):
    opt.zero_grad()
    loss = _loss(weight, bias, x)
    loss.backward()
    return loss


@pytest.mark.parametrize(("name", "index", "desc"), CASES, ids=_ids(CASES))
def test_state_dict_deterministic(name, index, desc):
    """A state dict loaded into a fresh optimizer on cloned parameters continues identically; the state dicts
    then agree, and repeated param groups are represented identically."""
    kwargs = T.kwargs_of(name, index)
    torch.manual_seed(0)
    weight, bias = Parameter(torch.randn(2, 3)), Parameter(torch.randn(2))
    x = torch.randn(3)
    opt = T.make(name, [weight, bias], **kwargs)
    for _ in range(10):
        opt.step(functools.partial(_fwd_bwd, opt, weight, bias, x))
    weight_c, bias_c = Parameter(weight.detach().clone()), Parameter(bias.detach().clone())
    opt_c = T.make(name, [weight_c, bias_c], **kwargs)
    opt_c.load_state_dict(deepcopy(opt.state_dict()))
    for _ in range(10):
        opt.step(functools.partial(_fwd_bwd, opt, weight, bias, x))
        opt_c.step(functools.partial(_fwd_bwd, opt_c, weight_c, bias_c, x))
        assert torch.equal(weight, weight_c) and torch.equal(bias, bias_c)
    _assert_same(opt.state_dict(), opt_c.state_dict())
    opt_c.param_groups.extend(opt_c.param_groups)
    assert opt.state_dict()["param_groups"][-1] == opt_c.state_dict()["param_groups"][-1]


def _conv_model():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Conv2d(4, 2, 1, stride=2), torch.nn.BatchNorm2d(2))


def _conv_step(opt, model, x):
    opt.zero_grad()
    model(x).sum().backward()
    opt.step()


@pytest.mark.parametrize(("name", "index", "desc"), CASES, ids=_ids(CASES))
def test_can_load_older_state_dict(name, index, desc):
    """A state dict without the group keys newer versions added loads (they are filled from the defaults)."""
    model = _conv_model()
    x = torch.rand(1, 4, 16, 16)
    opt = T.make(name, model.parameters(), **T.kwargs_of(name, index))
    for _ in range(3):
        _conv_step(opt, model, x)
    old = deepcopy(opt.state_dict())
    for group in old["param_groups"]:
        for flag in ("maximize", "foreach", "fused", "differentiable", "capturable"):
            group.pop(flag, None)
    opt.load_state_dict(old)
    assert all("maximize" in g for g in opt.param_groups)
    _conv_step(opt, model, x)


def _stepped_with_fixed_grads(name, index, steps=3):
    """The optimizer on two (2, 3) parameters after ``steps`` steps with the same random gradients."""
    params = [Parameter(torch.randn(2, 3)) for _ in range(2)]
    for p in params:
        p.grad = torch.rand_like(p)
    opt = T.make(name, params, **T.kwargs_of(name, index))
    for _ in range(steps):
        opt.step()
    return opt


@pytest.mark.parametrize(("name", "index", "desc"), CASES, ids=_ids(CASES))
def test_load_nontensor_step(name, index, desc):
    """A plain-number ``step`` in the saved state (older torch checkpoints) loads and steps on."""
    opt = _stepped_with_fixed_grads(name, index)
    sd = deepcopy(opt.state_dict())
    for s in sd["state"].values():
        if torch.is_tensor(s.get("step")):
            s["step"] = s["step"].item()
    opt.load_state_dict(sd)
    opt.step()
    assert all(int(s["step"]) == 4 for s in opt.state.values())


@pytest.mark.parametrize(("name", "index", "desc"), CASES, ids=_ids(CASES))
def test_deepcopy_copies_all_public_attrs(name, index, desc):
    opt = _stepped_with_fixed_grads(name, index)

    def public(obj):
        return {k for k in obj.__dict__ if not k.startswith("_")}

    assert public(opt) == public(deepcopy(opt))


@pytest.mark.parametrize(("name", "index", "desc"), CASES, ids=_ids(CASES))
def test_save_load_equality_with_weights_only(name, index, desc):
    """torch.save + torch.load(weights_only=True) of a state dict resumes bit-exactly."""
    kwargs = T.kwargs_of(name, index)
    torch.manual_seed(0)
    weight, bias = _weight_bias(name)
    x = torch.randn(5)
    opt = T.make(name, [weight, bias], **kwargs)
    for _ in range(3):
        opt.step(functools.partial(_fwd_bwd, opt, weight, bias, x))
    buf = io.BytesIO()
    torch.save(opt.state_dict(), buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)
    weight_c, bias_c = Parameter(weight.detach().clone()), Parameter(bias.detach().clone())
    opt_c = T.make(name, [weight_c, bias_c], **kwargs)
    opt_c.load_state_dict(loaded)
    for _ in range(3):
        opt.step(functools.partial(_fwd_bwd, opt, weight, bias, x))
        opt_c.step(functools.partial(_fwd_bwd, opt_c, weight_c, bias_c, x))
    assert torch.equal(weight, weight_c) and torch.equal(bias, bias_c)


# ---------------------------------------------------------------------------------------------------- tensor lr
@pytest.mark.parametrize("shape", [(), (1,), (1, 1)], ids=["0d", "1", "1x1"])
@pytest.mark.parametrize("name", NAMES)
def test_tensor_lr(name, shape):
    """lr as a 1-element tensor of any shape steps exactly as the same lr given as a float."""
    torch.manual_seed(0)
    ours = list(_weight_bias(name)) + [Parameter(torch.randn(3))]
    twin = [Parameter(p.detach().clone()) for p in ours]
    opt = T.make(name, ours, lr=torch.full(shape, 0.01))
    ref = T.make(name, twin, lr=0.01)
    T.step_together(opt, ref, ours, twin, 3)
    for p, q in zip(ours, twin):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=0.0)


def test_differences_are_documented():
    """Every intentional difference the suite expects is a row of docs/compatibility.md."""
    doc = (Path(__file__).parents[2] / "docs" / "compatibility.md").read_text()
    for what in set(DIFFERENCES.values()):
        assert f"| {what} |" in doc, what
