"""EMA / SWA of the parameters: equal to torch.optim.swa_utils, exact resume with the optimizer, swapping."""

import io

import pytest
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

import optimlab
from optimlab import schedules as S


def _setup(seed=0):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    return model, optimlab.create("adamw", model.parameters(), lr=0.05, weight_decay=0.1)


def _batch(t):
    g = torch.Generator().manual_seed(100 + t)
    x = torch.randn(16, 4, generator=g)
    return x, x.sum(1, keepdim=True).sin()


def _train(model, opt, avg, start, steps, ref=None, due=lambda t: True):
    for t in range(start, start + steps):
        x, y = _batch(t)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        avg.update()
        if ref is not None and due(t + 1):
            ref.update_parameters(model)


def test_ema_equals_averaged_model_with_the_ema_fn():
    model, opt = _setup()
    ema = S.EMA(model, decay=0.9)
    ref = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9))
    _train(model, opt, ema, 0, 12, ref)
    for a, b in zip(ema.averages, ref.module.parameters()):
        assert torch.equal(a, b)
    assert int(ema.n_averaged) == int(ref.n_averaged) == 12


def test_swa_equals_averaged_model_from_start_every_k():
    model, opt = _setup()
    swa = S.SWA(model, start=4, every=3)
    ref = AveragedModel(model)
    _train(model, opt, swa, 0, 14, ref, due=lambda t: t >= 4 and (t - 4) % 3 == 0)
    for a, b in zip(swa.averages, ref.module.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    assert int(swa.n_averaged) == int(ref.n_averaged) == 4  # steps 4, 7, 10, 13


@pytest.mark.parametrize("make", [lambda m: S.EMA(m, 0.8, start=2), lambda m: S.SWA(m, start=3, every=2)])
def test_exact_resume_with_the_optimizer_state(make):
    model, opt = _setup()
    avg = make(model)
    _train(model, opt, avg, 0, 10)

    model1, opt1 = _setup()
    avg1 = make(model1)
    _train(model1, opt1, avg1, 0, 5)
    buf = io.BytesIO()
    torch.save({"model": model1.state_dict(), "opt": opt1.state_dict(), "avg": avg1.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    model2, opt2 = _setup(seed=1)  # different init: everything must come from the checkpoint
    avg2 = make(model2)
    model2.load_state_dict(saved["model"])
    opt2.load_state_dict(saved["opt"])
    avg2.load_state_dict(saved["avg"])
    _train(model2, opt2, avg2, 5, 5)
    for a, b in zip(avg.averages, avg2.averages):
        assert torch.equal(a, b)
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)
    assert torch.equal(avg.n_averaged, avg2.n_averaged) and torch.equal(avg.step, avg2.step)


def test_swapped_evaluates_the_average_and_restores_training_weights():
    model, opt = _setup()
    ema = S.EMA(model, 0.5)
    _train(model, opt, ema, 0, 4)
    before = [p.detach().clone() for p in model.parameters()]
    with ema.swapped():
        for p, a in zip(model.parameters(), ema.averages):
            assert torch.equal(p, a)
    for p, b in zip(model.parameters(), before):
        assert torch.equal(p, b)
    target = _setup(seed=3)[0]
    ema.copy_to(target)
    for p, a in zip(target.parameters(), ema.averages):
        assert torch.equal(p, a)


def test_state_dict_is_a_snapshot():
    model, opt = _setup()
    ema = S.EMA(model, 0.5)
    _train(model, opt, ema, 0, 2)
    sd = ema.state_dict()
    frozen = [a.clone() for a in sd["averages"]]
    _train(model, opt, ema, 2, 2)
    assert all(torch.equal(a, b) for a, b in zip(sd["averages"], frozen))


@pytest.mark.parametrize(
    "make,field",
    [
        (lambda m: S.EMA(m, 1.5), "decay"),
        (lambda m: S.EMA(m, 0.9, start=0), "start"),
        (lambda m: S.SWA(m, every=0), "every"),
        (lambda m: S.SWA([]), "params"),
    ],
)
def test_bad_arguments(make, field):
    with pytest.raises(ValueError, match=field):
        make(_setup()[0])
