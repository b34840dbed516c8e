"""The generic test matrix: every registered algorithm gets every test here, driven by its registry record and
its test record (tests/optim_db.py)."""

from __future__ import annotations

import copy
import math
import pickle

import pytest
import torch

import optimlab
from optimlab.training import capabilities
from tests import _harness as H
from tests import optim_db as DB

ALL = optimlab.available()


def _spec(name):
    return optimlab.spec(name)


def _test_hparams(spec) -> dict:
    return DB.test_hparams(spec.name)


def _make(spec, **extra):
    hp = {**_test_hparams(spec), **extra}
    return lambda params: spec.cls(H.split_groups(params, hp), **hp)


def _state_tensors(opt):
    """[(param index, name, tensor)] of the optimizer state, in parameter order."""
    out = []
    params = [p for g in opt.param_groups for p in g["params"]]
    holders = [opt, opt.base] if hasattr(opt, "base") else [opt]  # wrappers: their own state and the base's
    for i, p in enumerate(params):
        for holder in holders:
            for name, value in holder.state[p].items():
                out.append((i, name, value))
    return out


# ---------------------------------------------------------------------------- 1. parity
@pytest.mark.parametrize("name", ALL)
def test_reference_parity(name):
    """float64, 20 steps, 5 shapes in two param groups: params and every state tensor match the reference."""
    spec = _spec(name)
    ref = H.load_reference(DB.info(name).reference)
    hp = _test_hparams(spec)
    params0 = H.make_params()
    ref_params, ref_states = H.run_reference(ref, params0, hp, H.STEPS)
    params = [p.clone().requires_grad_(True) for p in params0]
    opt = H.run_optimizer(_make(spec), params, H.STEPS)
    for i, (p, rp) in enumerate(zip(params, ref_params)):
        torch.testing.assert_close(p.detach(), rp, rtol=1e-10, atol=1e-12, msg=f"param {i}")
    for i, key, value in _state_tensors(opt):
        expected = ref_states[i][key]
        if key == "step":
            assert float(value) == expected
        else:
            torch.testing.assert_close(value, expected, rtol=1e-10, atol=1e-12, msg=f"state {key} of param {i}")


@pytest.mark.parametrize("name", [n for n in ALL if DB.info(n).torch_equivalent])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_torch_parity(name, dtype):
    """Same trajectory and state as the torch.optim class with the same semantics."""
    spec = _spec(name)
    parity = DB.info(name).torch_equivalent
    torch_cls = parity.resolve()
    if torch_cls is None:
        pytest.skip(f"{parity.path} is not in torch {torch.__version__}")
    hp = {**_test_hparams(spec), **parity.our_kwargs}
    torch_hp = {k: v for k, v in _test_hparams(spec).items() if k not in parity.our_kwargs}
    torch_hp.update(parity.torch_kwargs)
    params0 = H.make_params(dtype)
    ours = [p.clone().requires_grad_(True) for p in params0]
    theirs = [p.clone().requires_grad_(True) for p in params0]
    opt = H.run_optimizer(lambda ps: spec.cls(H.split_groups(ps, hp), **hp), ours, H.STEPS)
    ref = H.run_optimizer(
        lambda ps: torch_cls(H.split_groups(ps, torch_hp), foreach=False, **torch_hp), theirs, H.STEPS
    )
    tol = dict(rtol=1e-12, atol=1e-14) if dtype == torch.float64 else dict(rtol=1e-6, atol=1e-7)
    for p, q in zip(ours, theirs):
        torch.testing.assert_close(p, q, **tol)
    for p, q in zip(ours, theirs):
        for key, value in opt.state[p].items():
            if key not in ref.state[q]:  # torch.optim.SGD keeps no step counter
                assert key == "step"
                continue
            torch.testing.assert_close(value.to(dtype), ref.state[q][key].to(dtype), **tol, msg=key)


# ---------------------------------------------------------------------------- 2. compiled
@pytest.mark.compile
@pytest.mark.parametrize("name", ALL)
def test_compiled_matches_eager_without_recompiling(name):
    """compile=True follows eager (fp32, 6 steps) and a scheduler changing lr every step never recompiles."""
    import torch._dynamo

    spec = _spec(name)
    params0 = H.make_params(torch.float32)
    eager = [p.clone().requires_grad_(True) for p in params0]
    comp = [p.clone().requires_grad_(True) for p in params0]
    hp = _test_hparams(spec)
    opt_e = spec.cls(H.split_groups(eager, hp), **hp)
    opt_c = spec.cls(H.split_groups(comp, hp), **hp, compile=True)
    sched_e = torch.optim.lr_scheduler.ExponentialLR(opt_e, gamma=0.9)
    sched_c = torch.optim.lr_scheduler.ExponentialLR(opt_c, gamma=0.9)
    torch._dynamo.reset()
    for t in range(6):
        H.run_optimizer(None, eager, 1, start=t, opt=opt_e)
        if t == 1:  # first compile happened at t == 0; from now on any recompile is an error
            torch._dynamo.config.error_on_recompile = True
        try:
            H.run_optimizer(None, comp, 1, start=t, opt=opt_c)
        finally:
            torch._dynamo.config.error_on_recompile = False
        sched_e.step()
        sched_c.step()
    for p, q in zip(eager, comp):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------------------- 3. resume
@pytest.mark.parametrize("name", ALL)
def test_exact_resume(name):
    """N steps, save, load (weights_only) into fresh params and optimizer, N more == 2N straight, bit for bit."""
    spec = _spec(name)
    n = 5
    params0 = H.make_params(torch.float32)
    straight = [p.clone().requires_grad_(True) for p in params0]
    opt_s = H.run_optimizer(_make(spec), straight, 2 * n)

    first = [p.clone().requires_grad_(True) for p in params0]
    opt_1 = H.run_optimizer(_make(spec), first, n)
    saved = H.roundtrip({"params": [p.detach() for p in first], "optim": opt_1.state_dict()})
    del opt_1
    resumed = [p.clone().requires_grad_(True) for p in saved["params"]]
    opt_2 = _make(spec)(resumed)
    opt_2.load_state_dict(saved["optim"])
    H.run_optimizer(None, resumed, n, start=n, opt=opt_2)
    for p, q in zip(straight, resumed):
        assert torch.equal(p, q)
    for (i, key, a), (_, key2, b) in zip(_state_tensors(opt_s), _state_tensors(opt_2)):
        assert key == key2 and a.dtype == b.dtype and torch.equal(a, b), f"state {key} of param {i}"


@pytest.mark.parametrize("name", ALL)
def test_state_dict_is_a_snapshot_and_pickles(name):
    spec = _spec(name)
    params = [p.requires_grad_(True) for p in H.make_params(torch.float32)]
    opt = H.run_optimizer(_make(spec), params, 2)
    snapshot = opt.state_dict()
    frozen = copy.deepcopy(snapshot)
    H.run_optimizer(None, params, 2, start=2, opt=opt)
    for k, s in snapshot["state"].items():
        for key, v in s.items():
            assert torch.equal(v, frozen["state"][k][key]), "state_dict() aliases live state"
    clone = pickle.loads(pickle.dumps(opt))
    assert type(clone) is type(opt)
    for (_, key, a), (_, key2, b) in zip(_state_tensors(opt), _state_tensors(clone)):
        assert key == key2 and torch.equal(a, b)
    assert clone.param_groups == [
        {**g, "params": clone.param_groups[i]["params"]} for i, g in enumerate(opt.param_groups)
    ]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_measured_state_bytes_equal_the_analytic_formula(name, dtype):
    spec = _spec(name)
    params = [p.to(dtype).requires_grad_(True) for p in H.make_params()]
    hp = _test_hparams(spec)
    opt = H.run_optimizer(_make(spec), params, 3)
    measured = optimlab.state_bytes_by_param(opt)
    expected = [
        spec.state_bytes(p.shape, dtype, **H.group_hparams(hp, 0 if i < 2 else 1)) for i, p in enumerate(params)
    ]
    assert measured == expected
    assert optimlab.state_bytes(opt) == sum(expected)


# ---------------------------------------------------------------------------- 4. errors
def _bad_cases():
    cases = []
    for name in ALL:
        spec = _spec(name)
        for field, rule in spec.cls.hyperparameters.items():
            if field in spec.defaults:
                for value in rule.bad_values():
                    cases.append(pytest.param(name, field, value, id=f"{name}-{field}-{value!r}"))
    return cases


@pytest.mark.parametrize("name,field,value", _bad_cases())
def test_bad_hyperparameter_raises_value_error_naming_it(name, field, value):
    spec = _spec(name)
    params = [torch.zeros(3, requires_grad=True)]
    with pytest.raises(ValueError, match=field):
        spec.create(params, **{field: value})
    # the same check runs for a param group added later
    opt = spec.create([torch.zeros(2, requires_grad=True)])
    with pytest.raises(ValueError, match=field):
        opt.add_param_group({"params": params, field: value})


@pytest.mark.parametrize("name", ALL)
def test_closure_requirement(name):
    spec = _spec(name)
    p = torch.ones(3, requires_grad=True)
    opt = spec.create([p])
    p.grad = torch.ones(3)
    if capabilities(spec).closure:
        with pytest.raises(RuntimeError, match="closure"):
            opt.step()
    else:
        opt.step()


# ---------------------------------------------------------------------------- 5. convergence
def _convergence_hparams(spec, problem):
    """The record's settings for a convergence problem; a record opts out with {"skip": "reason"}."""
    extra = dict(DB.info(spec.name).convergence_hparams.get(problem, {}))
    if "skip" in extra:
        pytest.skip(f"{spec.name}: {extra['skip']}")
    return {**spec.defaults, **extra}


def _schedule(opt, steps):
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)))


@pytest.mark.parametrize("name", ALL)
def test_converges_on_ill_conditioned_quadratic(name):
    spec = _spec(name)
    f, x_star = H.quadratic_problem()
    x = torch.zeros_like(x_star, requires_grad=True)
    hp = _convergence_hparams(spec, "quadratic")
    steps = hp.pop("steps", 1000)
    opt = spec.create([x], **hp)
    H.train(opt, lambda: f(x), steps, _schedule(opt, steps))
    assert (x.detach() - x_star).abs().max() < 1e-2, f"ended at {x.detach()}"


@pytest.mark.parametrize("name", ALL)
def test_converges_on_rosenbrock(name):
    spec = _spec(name)
    xy = torch.tensor([-1.5, 2.0], dtype=torch.float64, requires_grad=True)
    hp = _convergence_hparams(spec, "rosenbrock")
    steps = hp.pop("steps", 5000)
    opt = spec.create([xy], **hp)
    H.train(opt, lambda: H.rosenbrock(xy), steps, _schedule(opt, steps))
    assert (xy.detach() - 1).abs().max() < 2e-2, f"ended at {xy.detach()}"


# ---------------------------------------------------------------------------- 6. dtypes
@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_params_stay_low_precision_and_improve(name, dtype):
    spec = _spec(name)
    if dtype not in DB.info(name).dtypes:
        pytest.skip(f"{name} does not declare {dtype}")
    params = [p.to(dtype).requires_grad_(True) for p in H.make_params()]
    hp = _convergence_hparams(spec, "quadratic")
    hp.pop("steps", None)
    opt = spec.create(params, **hp)
    before = H.objective([p.double() for p in params], 0).item()
    H.train(opt, lambda: H.objective(params, 0), 30)
    after = H.objective([p.double() for p in params], 0).item()
    assert all(p.dtype == dtype for p in params)
    if not DB.info(name).low_precision_state:
        assert all(v.dtype == torch.float32 for _, k, v in _state_tensors(opt) if k != "step" and v.is_floating_point())
    assert after < before


@pytest.mark.parametrize("name", [n for n in ALL if DB.supports_complex(n)])
def test_complex_params_match_their_real_view(name):
    """A complex parameter is optimized exactly as its (re, im) real view would be."""
    spec = _spec(name)
    hp = _test_hparams(spec)
    z = torch.randn(4, 3, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))
    zc = z.clone().requires_grad_(True)
    zr = torch.view_as_real(z).clone().requires_grad_(True)
    opt_c, opt_r = spec.create([zc], **hp), spec.create([zr], **hp)
    for t in range(10):
        H.train(opt_c, lambda t=t: H.objective([torch.view_as_real(zc)], t), 1)
        H.train(opt_r, lambda t=t: H.objective([zr], t), 1)
    torch.testing.assert_close(torch.view_as_real(zc.detach()), zr.detach(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name", ALL)
def test_maximize_equals_minimizing_the_negation(name):
    spec = _spec(name)
    hp = _test_hparams(spec)
    a = [p.requires_grad_(True) for p in H.make_params()]
    b = [p.clone().detach().requires_grad_(True) for p in a]
    opt_a = spec.cls(H.split_groups(a, hp), **hp)
    opt_b = spec.cls(H.split_groups(b, hp), **hp, maximize=True)
    for t in range(5):
        H.train(opt_a, lambda t=t: H.objective(a, t), 1)
        H.train(opt_b, lambda t=t: -H.objective(b, t), 1)
    for p, q in zip(a, b):
        assert torch.equal(p, q)
