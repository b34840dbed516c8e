"""LR schedules: known values against the plain reference, transformers' warm-up schedules, exact resume, errors."""

import io
import math

import pytest
import torch

import optimlab
from optimlab import schedules as S
from tests.reference.schedules import wsd_factor


def _opt(lr=0.5):
    p = torch.zeros(3, requires_grad=True)
    return torch.optim.SGD([{"params": [p]}, {"params": [torch.zeros(2, requires_grad=True)], "lr": lr / 4}], lr=lr)


def _lrs(opt, sched, steps):
    out = []
    for _ in range(steps):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("shape", S.DECAY_SHAPES)
@pytest.mark.parametrize("final_ratio", [0.0, 0.1])
def test_wsd_equals_the_reference_formula(shape, final_ratio):
    total, warmup, decay = 23, 4, 9
    opt = _opt()
    sched = S.WSD(opt, total, warmup, decay, shape, final_ratio)
    for t, lrs in enumerate(_lrs(opt, sched, total + 3)):
        f = wsd_factor(t, total, warmup, decay, shape, final_ratio)
        assert lrs == pytest.approx([0.5 * f, 0.125 * f], rel=1e-15, abs=0)


def test_known_values():
    opt = _opt(1.0)
    lrs = [x[0] for x in _lrs(opt, S.WSD(opt, 10, 2, 4, "1-sqrt"), 11)]
    assert lrs[:7] == [0.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert lrs[8] == pytest.approx(1 - math.sqrt(0.5)) and lrs[10] == 0.0
    opt = _opt(1.0)
    assert [x[0] for x in _lrs(opt, S.WarmupLinear(opt, 4), 5)] == [1.0, 0.75, 0.5, 0.25, 0.0]
    opt = _opt(1.0)
    cos = [x[0] for x in _lrs(opt, S.WarmupCosine(opt, 4, final_lr_ratio=0.2), 5)]
    assert cos == pytest.approx([1.0, 0.2 + 0.8 * (0.5 + 0.5 * math.cos(math.pi / 4)), 0.6, 0.2 + 0.8 * 0.1464466, 0.2])


def test_warmup_schedules_equal_transformers():
    tr = pytest.importorskip("transformers", reason="transformers is not installed")
    for ours, theirs in (
        (S.WarmupLinear, tr.get_linear_schedule_with_warmup),
        (S.WarmupCosine, tr.get_cosine_schedule_with_warmup),
    ):
        a, b = _opt(), _opt()
        got = _lrs(a, ours(a, 30, warmup_steps=5), 31)  # to the end (transformers' cosine rises again after it)
        want = _lrs(b, theirs(b, num_warmup_steps=5, num_training_steps=30), 31)
        for x, y in zip(got, want):
            assert x == pytest.approx(y, rel=1e-12, abs=1e-15)


SCHEDULES = {
    "wsd": lambda o: S.WSD(o, 20, 3, 6, "cosine", 0.05),
    "linear": lambda o: S.WarmupLinear(o, 20, 2),
    "cosine": lambda o: S.WarmupCosine(o, 20, 2, 0.1),
    "multiplier": lambda o: S.MultiplierSchedule(o, torch.linspace(1.0, 0.0, 20) ** 2),
}


def _roundtrip(obj):
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_exact_resume_with_an_optimlab_optimizer(name):
    """7 steps, save optimizer + scheduler (weights_only), load into fresh ones, 7 more == 14 straight, bit for bit."""

    def setup():
        torch.manual_seed(0)
        w = torch.nn.Parameter(torch.randn(4))
        opt = optimlab.create("adamw", [w], lr=0.1)
        return w, opt, SCHEDULES[name](opt)

    def run(w, opt, sched, steps, start):
        for t in range(start, start + steps):
            opt.zero_grad()
            ((w - t * 0.1) ** 2).sum().backward()
            opt.step()
            sched.step()

    w, opt, sched = setup()
    run(w, opt, sched, 14, 0)
    w1, opt1, sched1 = setup()
    run(w1, opt1, sched1, 7, 0)
    saved = _roundtrip({"w": w1.detach(), "opt": opt1.state_dict(), "sched": sched1.state_dict()})
    w2, opt2, sched2 = setup()
    with torch.no_grad():
        w2.copy_(saved["w"])
    opt2.load_state_dict(saved["opt"])
    sched2.load_state_dict(saved["sched"])
    run(w2, opt2, sched2, 7, 7)
    assert torch.equal(w, w2)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in opt2.param_groups]


@pytest.mark.parametrize(
    "make,field",
    [
        (lambda o: S.WSD(o, 0), "total_steps"),
        (lambda o: S.WSD(o, 10, -1), "warmup_steps"),
        (lambda o: S.WSD(o, 10, 6, 6), "warmup_steps"),
        (lambda o: S.WSD(o, 10, 2, 3, "exp"), "decay_shape"),
        (lambda o: S.WSD(o, 10, 2, 3, "linear", 1.5), "final_lr_ratio"),
        (lambda o: S.WarmupLinear(o, 10, 2.5), "warmup_steps"),
        (lambda o: S.WarmupCosine(o, 10, final_lr_ratio=-0.1), "final_lr_ratio"),
        (lambda o: S.MultiplierSchedule(o, []), "multipliers"),
        (lambda o: S.MultiplierSchedule(o, [1.0, float("nan")]), "multipliers"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make(_opt())
