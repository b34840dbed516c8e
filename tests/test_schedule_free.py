"""Schedule-free SGD / AdamW: float64 parity with the authors' schedulefree package over 60 steps in train and
eval mode, the train/eval round trip, exact resume in eval mode, and the schedule-free wrapper."""

import pytest
import torch

import optimlab
from tests import _harness as H

CASES = [
    ("sf_sgd", "SGDScheduleFree", dict(lr=0.1, momentum=0.9)),
    ("sf_sgd", "SGDScheduleFree", dict(lr=0.2, momentum=0.7, weight_decay=0.05, warmup_steps=10, r=0.5)),
    ("sf_adamw", "AdamWScheduleFree", dict(lr=0.05)),
    (
        "sf_adamw",
        "AdamWScheduleFree",
        dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1, warmup_steps=10, r=1.0, weight_lr_power=1.0),
    ),
]


@pytest.mark.parametrize("name,cls,kwargs", CASES)
def test_float64_parity_with_schedulefree_train_and_eval(name, cls, kwargs):
    sf = pytest.importorskip("schedulefree", reason="the authors' schedulefree package is not installed")
    params0 = H.make_params()
    a = [p.clone().requires_grad_(True) for p in params0]
    b = [p.clone().requires_grad_(True) for p in params0]
    ours = optimlab.create(name, [{"params": a[:2]}, {"params": a[2:]}], **kwargs)
    theirs = getattr(sf, cls)([{"params": b[:2]}, {"params": b[2:]}], foreach=False, **kwargs)
    ours.train()
    theirs.train()
    for t in range(60):
        H.run_optimizer(None, a, 1, start=t, opt=ours)
        H.run_optimizer(None, b, 1, start=t, opt=theirs)
        if t % 20 == 19:  # eval-mode parameters (x) agree, and switching back restores y
            for opt in (ours, theirs):
                opt.eval()
            for p, q in zip(a, b):
                torch.testing.assert_close(p, q, rtol=1e-11, atol=1e-13)
            for opt in (ours, theirs):
                opt.train()
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-11, atol=1e-13)
    for p, q in zip(a, b):
        torch.testing.assert_close(ours.state[p]["z"], theirs.state[q]["z"], rtol=1e-11, atol=1e-13)


def test_eval_holds_the_average_and_step_in_eval_mode_raises():
    x = torch.tensor([3.0, -2.0], dtype=torch.float64, requires_grad=True)
    opt = optimlab.create("sf_sgd", [x], lr=0.1, momentum=0.9)
    H.train(opt, lambda: (x**2).sum(), 30)
    y = x.detach().clone()
    z = opt.state[x]["z"].clone()
    opt.eval()
    expected_x = (y - 0.1 * z) / 0.9  # y = (1 − β) z + β x
    torch.testing.assert_close(x.detach(), expected_x, rtol=1e-12, atol=1e-14)
    opt.eval()  # idempotent
    torch.testing.assert_close(x.detach(), expected_x, rtol=1e-12, atol=1e-14)
    with pytest.raises(RuntimeError, match="train"):
        opt.step()
    opt.train()
    torch.testing.assert_close(x.detach(), y, rtol=1e-12, atol=1e-14)


def test_exact_resume_from_an_eval_mode_checkpoint():
    """Save model (at x) and optimizer in eval mode, load, train(): continues exactly as the uninterrupted run."""

    def run(x, opt, start, steps):
        for t in range(start, start + steps):
            H.train(opt, lambda t=t: ((x - 0.1 * t) ** 2).sum() + torch.sin(3 * x).sum(), 1)

    def fresh():
        x = torch.nn.Parameter(torch.linspace(-1, 1, 5))
        return x, optimlab.create("sf_adamw", [x], lr=0.05, weight_decay=0.01, warmup_steps=3)

    x, opt = fresh()
    run(x, opt, 0, 10)
    x1, opt1 = fresh()
    run(x1, opt1, 0, 5)
    opt1.eval()
    saved = H.roundtrip({"x": x1.detach(), "opt": opt1.state_dict()})
    x2, opt2 = fresh()
    with torch.no_grad():
        x2.copy_(saved["x"])
    opt2.load_state_dict(saved["opt"])
    assert not opt2.param_groups[0]["train_mode"]
    opt2.train()
    run(x2, opt2, 5, 5)
    torch.testing.assert_close(x, x2, rtol=1e-6, atol=1e-7)  # eval→train is a lerp round trip (not bit-exact)
    for key in ("z", "exp_avg_sq", "weight_sum", "lr_max"):
        torch.testing.assert_close(opt.state[x][key], opt2.state[x2][key], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_wrapper_around_adamw_equals_sf_adamw(weight_decay):
    """ScheduleFreeWrapper(AdamW with β₁ = 0, no own decay, decay λ at y) == sf_adamw(β₁ = momentum, λ), 60 steps,
    train and eval mode (float64; the two write √(v/(1 − β₂ᵗ)) in different orders)."""
    params0 = H.make_params()
    a = [p.clone().requires_grad_(True) for p in params0]
    b = [p.clone().requires_grad_(True) for p in params0]
    sf = optimlab.create("sf_adamw", [{"params": a[:2]}, {"params": a[2:]}], lr=0.05, weight_decay=weight_decay)
    wrapped = optimlab.create(
        "schedule_free",
        [{"params": b[:2]}, {"params": b[2:]}],
        lr=0.05,
        momentum=0.9,
        weight_decay_at_y=weight_decay,
        betas=(0.0, 0.999),
        weight_decay=0.0,
    )
    for t in range(60):
        H.run_optimizer(None, a, 1, start=t, opt=sf)
        H.run_optimizer(None, b, 1, start=t, opt=wrapped)
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
    sf.eval()
    wrapped.eval()
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


def test_wrapper_float64_parity_with_the_package_wrapper():
    sf = pytest.importorskip("schedulefree", reason="the authors' schedulefree package is not installed")
    params0 = H.make_params()
    a = [p.clone().requires_grad_(True) for p in params0]
    b = [p.clone().requires_grad_(True) for p in params0]
    from optimlab.wrappers.schedule_free import ScheduleFreeWrapper

    # the package keeps z in the base's state: its base is torch's SGD (optimlab's expects only its own keys there)
    ours = ScheduleFreeWrapper(a, base=torch.optim.SGD, momentum=0.8, weight_decay_at_y=0.1, lr=0.05, foreach=False)
    theirs = sf.ScheduleFreeWrapper(torch.optim.SGD(b, lr=0.05, foreach=False), momentum=0.8, weight_decay_at_y=0.1)
    theirs.train()
    for t in range(50):
        H.run_optimizer(None, a, 1, start=t, opt=ours)
        H.run_optimizer(None, b, 1, start=t, opt=theirs)
    ours.eval()
    theirs.eval()
    for p, q in zip(a, b):
        torch.testing.assert_close(p, q, rtol=1e-11, atol=1e-13)
