"""The base step loop's fast paths keep torch.optim / documented behaviour: the non-finite check is exact (an
overflowing sum of finite values is not a NaN), counters advance together, mixed dtypes share a group, and the
compiled path's scalar hoisting changes no values."""

from __future__ import annotations

import math

import pytest
import torch

import optimlab
from optimlab.optim import _base, _compiled, _nonfinite


def _param(values, dtype=torch.float32, grad=None):
    p = torch.tensor(values, dtype=dtype, requires_grad=True)
    p.grad = torch.tensor(grad if grad is not None else [0.5] * len(values), dtype=dtype)
    return p


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_skip_leaves_a_nonfinite_gradients_param_and_state_alone(bad):
    good, poisoned = _param([1.0, 2.0]), _param([3.0, 4.0], grad=[0.1, bad])
    opt = optimlab.AdamW([good, poisoned], lr=0.1)
    opt.step()
    assert torch.equal(poisoned.detach(), torch.tensor([3.0, 4.0]))
    state = opt.state[poisoned]  # created lazily, but neither advanced nor updated
    assert state["step"].item() == 0 and not state["exp_avg"].any() and not state["exp_avg_sq"].any()
    assert not torch.equal(good.detach(), torch.tensor([1.0, 2.0]))
    assert opt.param_groups[0]["nonfinite_skips"] == 1
    with pytest.raises(FloatingPointError):
        optimlab.AdamW([_param([1.0], grad=[bad])], nonfinite="raise").step()


def test_finite_gradients_whose_sum_overflows_are_not_skipped():
    big = 3e38  # finite in fp32; the sum (and the norm) of two is inf
    p_skip, p_prop = _param([1.0, 2.0], grad=[big, big]), _param([1.0, 2.0], grad=[big, big])
    assert not torch.isfinite(p_skip.grad.sum())
    # Lion's update (a sign) stays finite: the large gradient is guarded, not skipped
    opt_skip, opt_prop = optimlab.Lion([p_skip], lr=0.1), optimlab.Lion([p_prop], lr=0.1, nonfinite="propagate")
    for _ in range(3):
        opt_skip.step()
        opt_prop.step()
    assert opt_skip.param_groups[0]["nonfinite_skips"] == 0
    assert torch.equal(p_skip, p_prop) and torch.equal(opt_skip.state[p_skip]["step"], torch.tensor(3.0))
    assert _nonfinite.finite_mask([torch.tensor([big, big]), torch.tensor([big, -math.inf])]) == [True, False]
    assert _nonfinite.finite_mask([torch.tensor([math.nan])]) == [False]
    levels = _nonfinite.screen_levels([torch.tensor([1.0, 2.0]), torch.tensor([big, big]), torch.tensor([5e9])])
    assert levels == [_nonfinite.FINITE, _nonfinite.LARGE, _nonfinite.LARGE]


def _overflowing(nonfinite):
    """AdamW after two normal steps, then a finite gradient whose square (v) overflows fp32."""
    good, big = _param([1.0, 2.0]), _param([3.0, 4.0])
    opt = optimlab.AdamW([good, big], lr=0.1, nonfinite=nonfinite)
    opt.step()
    opt.step()
    before = {p: (p.detach().clone(), {k: v.clone() for k, v in opt.state[p].items()}) for p in (good, big)}
    big.grad = torch.tensor([1e30, -1e30])
    return opt, good, big, before


def test_skip_covers_an_update_that_overflows_from_finite_gradients():
    opt, good, big, before = _overflowing("skip")
    opt.step()
    assert torch.equal(big.detach(), before[big][0])
    for key, value in opt.state[big].items():
        assert torch.equal(value, before[big][1][key]), key
    assert not torch.equal(good.detach(), before[good][0])  # the other parameter steps as usual
    assert opt.param_groups[0]["nonfinite_skips"] == 1


def test_raise_covers_an_update_that_overflows_in_the_same_step_and_moves_nothing():
    opt, good, big, before = _overflowing("raise")
    with pytest.raises(FloatingPointError, match="NaN/Inf"):
        opt.step()
    for p in (good, big):
        assert torch.equal(p.detach(), before[p][0])
        for key, value in opt.state[p].items():
            assert torch.equal(value, before[p][1][key]), key


def test_only_large_gradients_and_linear_algebra_rules_pay_for_a_snapshot(monkeypatch):
    calls = []
    original = _base.Slot.snapshot
    monkeypatch.setattr(_base.Slot, "snapshot", lambda slot: calls.append(slot.p) or original(slot))
    small, large = _param([1.0, 2.0], grad=[1e3, -1e3]), _param([3.0, 4.0], grad=[1e10, 1.0])
    optimlab.AdamW([small, large]).step()
    assert calls == [large]
    calls.clear()
    optimlab.SOAP([_param([1.0, 2.0])]).step()  # eigh/QR: every update is guarded
    assert len(calls) == 1


def test_propagate_lets_an_overflowing_update_through():
    opt, _, big, _ = _overflowing("propagate")
    opt.step()
    assert not torch.isfinite(opt.state[big]["exp_avg_sq"]).all()


def test_mixed_dtypes_in_one_group_match_separate_optimizers():
    a32, a64 = _param([1.0, -2.0], grad=[0.3, -0.2]), _param([0.5], torch.float64, grad=[0.7])
    b32, b64 = (p.detach().clone().requires_grad_(True) for p in (a32, a64))
    b32.grad, b64.grad = a32.grad.clone(), a64.grad.clone()
    together = optimlab.Adam([a32, a64], lr=0.1)
    alone = [optimlab.Adam([b32], lr=0.1), optimlab.Adam([b64], lr=0.1)]
    for _ in range(4):
        together.step()
        for o in alone:
            o.step()
    assert torch.equal(a32, b32) and torch.equal(a64, b64)
    assert together.state[a32]["step"].item() == together.state[a64]["step"].item() == 4.0


def test_eager_step_counters_match_torch_after_a_skip():
    """A skipped parameter's counter lags; each tensor's update uses its own counter (as torch.optim does)."""
    p, q = _param([1.0]), _param([2.0])
    tp, tq = (x.detach().clone().requires_grad_(True) for x in (p, q))
    opt, ref = optimlab.Adam([p, q], lr=0.1), torch.optim.Adam([tp, tq], lr=0.1, foreach=False)
    for t in range(5):
        p.grad = torch.tensor([math.nan if t == 1 else 0.3 * (t + 1)])
        q.grad = torch.tensor([0.2 - 0.1 * t])
        opt.step()
        tq.grad = q.grad.clone()
        if t == 1:
            tp.grad = None  # torch has no skip: leave p out of that step
        else:
            tp.grad = p.grad.clone()
        ref.step()
    assert opt.state[p]["step"].item() == 4.0 and opt.state[q]["step"].item() == 5.0
    torch.testing.assert_close(p, tp, rtol=0, atol=1e-7)
    torch.testing.assert_close(q, tq, rtol=0, atol=1e-7)


@pytest.mark.compile
def test_scalar_hoisting_marks_libm_chains_only_and_keeps_values():
    """The graph pass wraps 0-d results of pow/sqrt chains feeding full-size ops, nothing else."""
    import torch._dynamo

    seen = {}

    def backend(gm, example_inputs):
        seen["count"] = _compiled.hoist_scalars(gm)
        seen["graph"] = gm
        return gm.forward

    def update(p, g, m, step, lr, beta):
        step += 1
        m.mul_(beta).add_(g * (1 - beta))  # cheap scalar: stays inlined
        p.add_(m * (-lr / (1 - beta**step)))  # libm chain: hoisted
        p.mul_(step.sqrt())  # libm on the counter: hoisted

    torch._dynamo.reset()
    args = lambda: (  # noqa: E731
        torch.linspace(-1, 1, 7),
        torch.linspace(0.5, -0.5, 7),
        torch.full((7,), 0.1),
        torch.tensor(2.0),
        torch.tensor(0.01, dtype=torch.float64),
        torch.tensor(0.9, dtype=torch.float64),
    )
    eager, compiled = args(), args()
    update(*eager)
    torch.compile(update, backend=backend, dynamic=False)(*compiled)
    assert seen["count"] == 2
    hoisted = [n for n in seen["graph"].graph.nodes if n.target is torch.as_strided]
    assert len(hoisted) == 2
    for x, y in zip(eager, compiled):
        assert torch.equal(x, y)


@pytest.mark.compile
def test_compiled_skip_matches_eager_skip_and_counts():
    """Under compile=True the skip policy runs inside the compiled step: same values and counters as eager."""
    import torch._dynamo

    torch._dynamo.reset()
    runs = {}
    for compiled in (False, True):
        good, poisoned = _param([1.0, 2.0]), _param([3.0, 4.0])
        opt = optimlab.AdamW([good, poisoned], lr=0.1, compile=compiled)
        for t in range(4):
            good.grad = torch.tensor([0.5, -0.25 * t])
            poisoned.grad = torch.tensor([0.1, math.nan if t in (1, 2) else 0.2])
            opt.step()
        runs[compiled] = (good, poisoned, opt)
    (eg, ep, eopt), (cg, cp, copt) = runs[False], runs[True]
    assert copt.param_groups[0]["nonfinite_skips"] == eopt.param_groups[0]["nonfinite_skips"] == 2
    assert copt.state[cp]["step"].item() == 2.0 and copt.state[cg]["step"].item() == 4.0
    for x, y in ((eg, cg), (ep, cp)):
        torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-7)
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(eopt.state[ep][key], copt.state[cp][key], rtol=1e-6, atol=1e-7)
    assert torch.isfinite(cp).all() and torch.isfinite(copt.state[cp]["exp_avg_sq"]).all()


@pytest.mark.compile
def test_compiled_skip_and_raise_cover_an_overflowing_update():
    """compile=True folds the result test into the compiled step: the overflowing update is skipped (same values
    and counters as eager) or raises, leaving that parameter and its state as they were."""
    import torch._dynamo

    torch._dynamo.reset()
    eager, _, eager_big, _ = _overflowing("skip")
    eager.step()
    for policy in ("skip", "raise"):
        good, big = _param([1.0, 2.0]), _param([3.0, 4.0])
        opt = optimlab.AdamW([good, big], lr=0.1, nonfinite=policy, compile=True)
        opt.step()
        opt.step()
        saved = big.detach().clone(), {k: v.clone() for k, v in opt.state[big].items()}
        big.grad = torch.tensor([1e30, -1e30])
        if policy == "raise":
            with pytest.raises(FloatingPointError):
                opt.step()
        else:
            opt.step()
            assert opt.param_groups[0]["nonfinite_skips"] == 1
            torch.testing.assert_close(big.detach(), eager_big.detach())
        assert torch.equal(big.detach(), saved[0])
        for key, value in opt.state[big].items():
            assert torch.equal(value, saved[1][key]), key


@pytest.mark.compile
def test_compiled_muon_keeps_integer_hyperparameters_static_without_graph_breaks():
    """ns_steps shapes the Newton-Schulz loop: it stays a Python int under compile=True (no graph break)."""
    import torch._dynamo
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(8, 6)) for _ in range(2)]
    opt = optimlab.create("muon", params, compile=True)
    for _ in range(2):
        for p in params:
            p.grad = torch.randn_like(p)
        opt.step()
    assert not counters["graph_break"], dict(counters["graph_break"])
    assert "ns_steps" in opt._integer_hyperparameters()


# ---------------------------------------------------------------------------- the pipeline and its hooks
def test_raise_fires_before_any_parameter_of_any_group_moves():
    """The policy runs once for the whole step, before every update: a NaN in the second group leaves the first
    group's parameters and state untouched under "raise"."""
    first, second = _param([1.0, 2.0]), _param([3.0], grad=[math.nan])
    opt = optimlab.AdamW([{"params": [first]}, {"params": [second]}], lr=0.1, nonfinite="raise")
    with pytest.raises(FloatingPointError, match="non-finite gradient in 1 parameter"):
        opt.step()
    assert torch.equal(first.detach(), torch.tensor([1.0, 2.0])) and opt.state[first]["step"].item() == 0


class _GlobalNormSGD(_base.Optimizer):
    """SGD normalized by the global gradient norm: a whole-model quantity computed in the ``prepare`` hook."""

    hyperparameters = {"lr": optimlab.optim._rules.Range(0.0)}

    def __init__(self, params, lr=0.1, **options):
        super().__init__(params, {"lr": lr}, **options)

    def prepare(self, slots, loss, extras, closure):
        self.seen = [s.p for s in slots]
        self.norm = float(torch.stack([s.grad.norm() for s in slots]).norm())
        return [s for s in slots if s.p.numel() > 1]  # the hook may leave parameters out of this step

    @staticmethod
    def update(p, grad, *, step, lr, norm):
        p.sub_(grad, alpha=lr / norm)

    def hyper(self, group):
        return {"lr": group["lr"], "norm": self.norm}


@pytest.mark.parametrize("compile", [False, True])
def test_prepare_sees_only_what_the_policy_lets_through(compile):
    a, b, c = _param([3.0, 4.0], grad=[3.0, 4.0]), _param([1.0], grad=[1.0]), _param([0.0, 0.0], grad=[math.nan, 1])
    opt = _GlobalNormSGD([a, b, c], lr=1.0, compile=compile)
    opt.step()
    assert opt.seen == [a, b] and opt.norm == pytest.approx(math.sqrt(26.0))
    torch.testing.assert_close(a.detach(), torch.tensor([3.0, 4.0]) * (1 - 1 / math.sqrt(26.0)))
    assert torch.equal(b.detach(), torch.tensor([1.0])) and opt.state[b]["step"].item() == 0  # left out by prepare
    assert torch.equal(c.detach(), torch.zeros(2)) and opt.param_groups[0]["nonfinite_skips"] == 1


@pytest.mark.compile
def test_torch_compile_around_step_gives_the_eager_numbers_and_nests_compile_true():
    """``torch.compile(opt.step)`` traces the pipeline: step counters and hyperparameters stay tensors (Python-float
    counters traced as symbolic floats were miscompiled: 0.37 off eager at step 6 for AdamW(lr=0.1)); a
    ``compile=True`` optimizer inside an outer compile runs its loop inline instead of nesting."""

    def run(compiled, **options):
        p = torch.zeros(4, requires_grad=True)
        opt = optimlab.AdamW([p], lr=0.1, **options)
        step = torch.compile(opt.step) if compiled else opt.step
        for t in range(1, 7):
            p.grad = torch.full((4,), float(t))
            step()
        return p.detach()

    eager = run(False)
    torch.testing.assert_close(run(True), eager, rtol=0, atol=1e-6)
    torch.testing.assert_close(run(True, compile=True), eager, rtol=0, atol=1e-6)
