"""The refined schedule of #225 against its plain reference, known answers, and the gradient-norm recorder."""

import io

import pytest
import torch

import optimlab
from optimlab import schedules as S
from tests.reference.schedules import refined


def test_equals_the_reference():
    g = torch.rand(40, generator=torch.Generator().manual_seed(0), dtype=torch.float64) + 0.1
    for power in (1.0, 2.0):
        got = S.refined_schedule(g, power=power)
        torch.testing.assert_close(
            got, torch.tensor(refined(g.tolist(), power), dtype=torch.float64), rtol=1e-13, atol=0
        )


def test_constant_norms_give_linear_decay_and_scale_does_not_matter():
    t = 17
    got = S.refined_schedule(torch.full((t,), 3.0))
    torch.testing.assert_close(got, torch.arange(t - 1, -1, -1, dtype=torch.float64) / (t - 1), rtol=1e-14, atol=0)
    g = torch.linspace(2.0, 0.5, 30, dtype=torch.float64)
    torch.testing.assert_close(S.refined_schedule(g), S.refined_schedule(g * 1e3), rtol=1e-12, atol=0)


def test_large_early_gradients_give_a_warmup_and_the_end_anneals():
    g = torch.cat([torch.linspace(20.0, 1.0, 20), torch.ones(80)])
    m = S.refined_schedule(g)
    assert m[0] < 0.05 and int(m.argmax()) >= 15 and m.max() == 1.0 and m[-1] == 0.0


def test_median_filter_equals_scipy_with_nearest_padding():
    ndimage = pytest.importorskip("scipy.ndimage", reason="scipy is not installed")
    x = torch.randn(50, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for width in (1, 3, 7):
        want = torch.from_numpy(ndimage.median_filter(x.numpy(), size=width, mode="nearest"))
        assert torch.equal(S.median_filter(x, width), want)
    smooth = S.refined_schedule(x.abs() + 0.1, smoothing=0.1)
    assert torch.equal(smooth, S.refined_schedule(S.median_filter(x.abs() + 0.1, 5)))


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(grad_norms=[1.0]), "grad_norms"),
        (dict(grad_norms=[1.0, 0.0]), "grad_norms"),
        (dict(grad_norms=[1.0, 2.0], smoothing=2.0), "smoothing"),
        (dict(grad_norms=[1.0, 2.0], power=0.0), "power"),
    ],
)
def test_bad_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        S.refined_schedule(**kwargs)


def test_recorder_records_the_global_norm_before_each_step_and_resumes():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = optimlab.create("sgd", model.parameters(), lr=0.1)
    rec = S.GradNormRecorder(opt)
    expected = []
    for _ in range(5):
        opt.zero_grad()
        model(torch.randn(4, 3)).pow(2).sum().backward()
        expected.append(float(torch.nn.utils.get_total_norm([p.grad.double() for p in model.parameters()])))
        opt.step()
    torch.testing.assert_close(rec.norms, torch.tensor(expected, dtype=torch.float64), rtol=1e-14, atol=0)
    buf = io.BytesIO()
    torch.save(rec.state_dict(), buf)
    buf.seek(0)
    other = S.GradNormRecorder()
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert torch.equal(other.norms, rec.norms)
    rec.remove()
    opt.step()
    assert len(rec.norms) == 5
    sched = S.MultiplierSchedule(opt, S.refined_schedule(rec.norms))
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * float(sched.multipliers[0]))
