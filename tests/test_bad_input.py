"""The bad-input battery, over every registered algorithm (built with ``optimlab.create`` and its test
hyperparameters from tests/optim_db.py): bad learning rates, NaN/Inf gradients, finite gradients that overflow
inside the update, failing linear algebra, zero-size, integer, meta and transposed parameters, sparse gradients.
Each ends in a clear error or a correct step: never silent corruption, never an unhelpful exception."""

from __future__ import annotations

import math

import pytest
import torch

import optimlab
from optimlab.training import capabilities, closure_backward
from tests import optim_db as DB

ALL = optimlab.available()
SHAPES = [(6, 4), (5,), (3, 4, 2)]


def _make(name, params, **overrides):
    return optimlab.create(name, params, **{**DB.test_hparams(name), **overrides})


def _objective(params, scale):
    """Σ ½ a (p − c)² · scale, and logits for the optimizers that estimate curvature from them."""
    total = 0.0
    for i, p in enumerate(params):
        g = torch.Generator().manual_seed(i)
        a = (torch.rand(p.shape, generator=g) * 1.5 + 0.5).to(p.dtype)
        c = torch.randn(p.shape, generator=g).to(p.dtype)
        total = total + (0.5 * a * (p - c) ** 2).sum() * scale
    logits = torch.stack([(p * p).sum() for p in params] + [torch.zeros((), dtype=params[0].dtype)])
    return total, logits.reshape(1, -1)


def _step(opt, params, scale=1.0):
    """One step of any optimizer on ``_objective`` (through a closure where it needs one)."""
    needs = capabilities(opt)

    def closure():
        opt.zero_grad()
        loss, logits = _objective(params, scale)
        closure_backward(opt, loss, create_graph=needs.hvp, logits=needs.logits)
        return (loss, logits) if needs.logits else loss

    if needs.closure or needs.logits:
        return opt.step(closure)
    closure()
    return opt.step()


def _params(shapes=SHAPES, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g).requires_grad_(True) for s in shapes]


def _holders(opt):
    return [opt, opt.base] if hasattr(opt, "base") else [opt]


def _state(opt):
    """{(holder, param index, key): tensor copy} of the whole optimizer state."""
    out = {}
    for h, holder in enumerate(_holders(opt)):
        for i, p in enumerate(q for g in holder.param_groups for q in g["params"]):
            for key, value in holder.state.get(p, {}).items():
                if isinstance(value, torch.Tensor):
                    out[(h, i, key)] = value.detach().clone()
    return out


def _unchecked(opt):
    return {k for holder in _holders(opt) for k in getattr(type(holder), "unchecked_state", ())}


def _skips(opt):
    return sum(g.get("nonfinite_skips", 0) for g in opt.param_groups)


# ---------------------------------------------------------------------------- hyperparameters
@pytest.mark.parametrize("name", [n for n in ALL if "lr" in optimlab.spec(n).defaults])
@pytest.mark.parametrize("lr", [math.inf, -math.inf, math.nan, -1.0])
def test_a_bad_learning_rate_is_a_value_error_naming_lr(name, lr):
    with pytest.raises(ValueError, match="lr"):
        _make(name, [torch.zeros(3, requires_grad=True)], lr=lr)


# ---------------------------------------------------------------------------- parameters
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize(
    "param",
    [
        pytest.param(lambda: torch.zeros(3, dtype=torch.int64), id="int64"),
        pytest.param(lambda: torch.zeros(3, dtype=torch.bool), id="bool"),
        pytest.param(lambda: torch.zeros(3, device="meta", requires_grad=True), id="meta"),
        pytest.param(lambda: torch.zeros(3, 3).to_sparse().requires_grad_(True), id="sparse-layout"),
    ],
)
def test_an_unsupported_parameter_is_refused_at_construction(name, param):
    with pytest.raises(ValueError, match="parameter 0"):
        _make(name, [torch.zeros(2, requires_grad=True), param()][1:])


@pytest.mark.parametrize("name", ALL)
def test_zero_size_parameters_are_no_ops(name):
    """Zero-size parameters beside normal ones: no state, no error, and the others move exactly as without them."""
    with_empty = _params() + [torch.zeros(s, requires_grad=True) for s in [(0,), (0, 4), (4, 0)]]
    alone = [p.detach().clone().requires_grad_(True) for p in with_empty[: len(SHAPES)]]
    opt, ref = _make(name, with_empty), _make(name, alone)
    for _ in range(3):
        _step(opt, with_empty)
        _step(ref, alone)
    for p, q in zip(with_empty, alone):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    core = _holders(opt)[-1]  # the optimizer that steps (a wrapper's base): it keeps no state for them
    assert all(not core.state.get(p) for p in with_empty[len(SHAPES) :])


@pytest.mark.parametrize("name", ALL)
def test_a_transposed_parameter_follows_its_contiguous_twin(name):
    base = torch.randn(6, 5, generator=torch.Generator().manual_seed(1))
    twin = base.clone().requires_grad_(True)
    transposed = torch.empty(5, 6).t().copy_(base).requires_grad_(True)
    assert not transposed.is_contiguous()
    opt, ref = _make(name, [transposed]), _make(name, [twin])
    for _ in range(3):
        _step(opt, [transposed])
        _step(ref, [twin])
    assert torch.equal(transposed.detach(), twin.detach())


@pytest.mark.parametrize("name", ALL)
def test_sparse_gradients_are_refused_clearly_or_supported(name):
    emb = torch.nn.Embedding(10, 3, sparse=True)
    before = emb.weight.detach().clone()
    opt = _make(name, list(emb.parameters()))
    needs = capabilities(opt)

    def closure():
        opt.zero_grad()
        loss = emb(torch.tensor([1, 2])).pow(2).sum()
        closure_backward(opt, loss, create_graph=needs.hvp, logits=False)
        return (loss, emb.weight[:2].reshape(1, -1)) if needs.logits else loss

    try:
        if needs.closure or needs.logits:
            opt.step(closure)
        else:
            closure()
            opt.step()
    except RuntimeError as e:
        assert "sparse" in str(e)
        assert torch.equal(emb.weight.detach(), before)
    else:
        assert torch.isfinite(emb.weight).all()


# ---------------------------------------------------------------------------- non-finite values
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("bad", [math.nan, math.inf])
def test_a_non_finite_gradient_is_skipped_or_raises(name, bad):
    params = _params()
    opt = _make(name, params)
    _step(opt, params)
    before, state = [p.detach().clone() for p in params], _state(opt)
    _step(opt, params, bad)
    assert _skips(opt) > 0
    for p, q in zip(params, before):
        assert torch.equal(p.detach(), q)
    after = _state(opt)
    for key, value in state.items():
        assert torch.equal(after[key], value), key
    raising = _make(name, _params(), nonfinite="raise")
    with pytest.raises(FloatingPointError):
        _step(raising, raising.param_groups[0]["params"] + raising.param_groups[-1]["params"][1:], bad)


@pytest.mark.parametrize("name", ALL)
def test_finite_gradients_that_overflow_inside_the_update_never_corrupt(name):
    """Gradients ×1e30 (finite in fp32): under "skip" every parameter and state tensor stays finite (an update that
    overflows is skipped: that parameter and its state are left as they were); under "raise" the step either
    succeeds finitely or raises in the same step, leaving every parameter as it was."""
    for policy in ("skip", "raise"):
        params = _params()
        opt = _make(name, params, nonfinite=policy)
        for _ in range(2):
            _step(opt, params)
        before = [p.detach().clone() for p in params]
        try:
            _step(opt, params, 1e30)
        except FloatingPointError:
            assert policy == "raise"
            for p, q in zip(params, before):
                assert torch.equal(p.detach(), q)
            continue
        assert all(torch.isfinite(p).all() for p in params)
        unchecked = _unchecked(opt)
        for (_, i, key), value in _state(opt).items():
            if value.is_floating_point() and key not in unchecked:
                assert torch.isfinite(value).all(), f"state {key} of param {i} under {policy}"


_LINALG = [
    ("shampoo", "eigh"),
    ("soap", "eigh"),
    ("soap", "qr"),
    ("psgd_kron", "solve_triangular"),
    ("galore", "svd"),
    ("coap", "qr"),
    ("optimistic_amsgrad", "solve"),
]


def _failing(*args, **kwargs):
    raise torch.linalg.LinAlgError("failed to converge (test)")


@pytest.mark.parametrize("name,function", _LINALG)
def test_a_linear_algebra_failure_follows_the_policy(name, function, monkeypatch):
    monkeypatch.setattr(torch.linalg, function, _failing)
    steps = 8  # long enough to reach every refresh that calls it (SOAP's QR comes with the first refresh)
    for policy in ("skip", "raise", "propagate"):
        params = _params()
        opt = _make(name, params, nonfinite=policy)
        before = [p.detach().clone() for p in params]
        if policy == "propagate":
            with pytest.raises(torch.linalg.LinAlgError):
                for _ in range(steps):
                    _step(opt, params)
            continue
        if policy == "raise":
            with pytest.raises(FloatingPointError, match="linear algebra"):
                for _ in range(steps):
                    _step(opt, params)
            continue
        for _ in range(steps):
            _step(opt, params)
        assert _skips(opt) > 0
        assert all(torch.isfinite(p).all() for p in params)
        for i, p in enumerate(params):  # a parameter whose every update failed is where it started
            if float(opt.state[p]["step"]) == 0:
                assert torch.equal(p.detach(), before[i])
