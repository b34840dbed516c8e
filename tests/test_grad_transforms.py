"""optimlab.grad: torch parity, hand-computed answers and invariants of every gradient transform."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import optimlab.grad as G

SHAPES = [(3, 4), (5,), (2, 3, 2, 2), ()]


def _params(seed=0, scale=3.0, dtype=torch.float64, shapes=SHAPES, with_none=False):
    gen = torch.Generator().manual_seed(seed)
    ps = []
    for shape in shapes:
        p = torch.nn.Parameter(torch.randn(shape, generator=gen, dtype=dtype))
        p.grad = torch.randn(shape, generator=gen, dtype=dtype) * scale
        ps.append(p)
    if with_none:
        ps.append(torch.nn.Parameter(torch.randn(2, dtype=dtype)))  # grad None: skipped
    return ps


def _copy(ps):
    out = []
    for p in ps:
        q = torch.nn.Parameter(p.detach().clone())
        q.grad = None if p.grad is None else p.grad.clone()
        out.append(q)
    return out


def _norm(tensors):
    return math.sqrt(sum(float((t.double() ** 2).sum()) for t in tensors))


def _grads(ps):
    return [p.grad for p in ps if p.grad is not None]


# ------------------------------------------------------------------------------------------ torch parity
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.5, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch_bitwise(dtype, norm_type, max_norm):
    ps = _params(dtype=dtype, with_none=True)
    qs = _copy(ps)
    stats = G.clip_grad_norm_(ps, max_norm, norm_type)
    expected = torch.nn.utils.clip_grad_norm_(qs, max_norm, norm_type)
    assert torch.equal(stats.total_norm, expected)
    for p, q in zip(ps, qs):
        assert (p.grad is None and q.grad is None) or torch.equal(p.grad, q.grad)
    assert float(stats.threshold) == max_norm
    assert float(stats.fraction_clipped) == float(float(expected) > max_norm)


def test_clip_grad_norm_on_plain_gradient_tensors_and_single_tensor():
    ps = _params()
    grads = [p.grad.clone() for p in ps]
    G.clip_grad_norm_(ps, 1.0)
    G.clip_grad_norm_(grads, 1.0)  # tensors without requires_grad are gradients themselves
    for p, g in zip(ps, grads):
        assert torch.equal(p.grad, g)
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([3.0, 4.0])
    q = torch.nn.Parameter(torch.zeros(2))
    q.grad = p.grad.clone()
    assert torch.equal(G.clip_grad_norm_(p, 1.0).total_norm, torch.nn.utils.clip_grad_norm_(q, 1.0))
    assert torch.equal(p.grad, q.grad)


def test_clip_grad_norm_known_answer():
    g = torch.tensor([3.0, 4.0], dtype=torch.float64)
    stats = G.clip_grad_norm_([g], 1.0)
    torch.testing.assert_close(g, torch.tensor([3.0, 4.0], dtype=torch.float64) / (5 + 1e-6))
    assert float(stats.total_norm) == 5.0 and float(stats.fraction_clipped) == 1.0
    h = torch.tensor([0.3, 0.4], dtype=torch.float64)
    stats = G.clip_grad_norm_([h], 1.0)  # norm 0.5 < 1: untouched
    assert torch.equal(h, torch.tensor([0.3, 0.4], dtype=torch.float64))
    assert float(stats.fraction_clipped) == 0.0


@pytest.mark.parametrize("clip_value", [0.0, 0.7, 10.0])
def test_clip_grad_value_matches_torch_bitwise(clip_value):
    ps = _params(with_none=True)
    qs = _copy(ps)
    before = [g.clone() for g in _grads(ps)]
    stats = G.clip_grad_value_(ps, clip_value)
    torch.nn.utils.clip_grad_value_(qs, clip_value)
    for p, q in zip(ps, qs):
        assert (p.grad is None and q.grad is None) or torch.equal(p.grad, q.grad)
    n = sum(g.numel() for g in before)
    count = sum(int((g.abs() > clip_value).sum()) for g in before)
    assert float(stats.fraction_clipped) == pytest.approx(count / n)
    assert float(stats.total_norm) == pytest.approx(_norm(before))


def test_clip_grad_value_known_answer():
    g = torch.tensor([-3.0, 0.5, 2.0, -0.25])
    stats = G.clip_grad_value_([g], 1.0)
    assert torch.equal(g, torch.tensor([-1.0, 0.5, 1.0, -0.25]))
    assert float(stats.fraction_clipped) == 0.5


def test_bad_thresholds_raise_value_error_naming_the_field():
    ps = _params()
    for fn, kwargs, field in [
        (G.clip_grad_norm_, {"max_norm": -1.0}, "max_norm"),
        (G.clip_grad_value_, {"clip_value": -0.1}, "clip_value"),
        (G.clip_quantile_, {"q": 1.5}, "q"),
        (G.clip_coordinate_, {"threshold": -1.0}, "threshold"),
        (G.adaptive_clip_grad_, {"clipping": 0.0}, "clipping"),
    ]:
        with pytest.raises(ValueError, match=field):
            fn(ps, **kwargs)
    with pytest.raises(ValueError, match="nonfinite"):
        G.clip_grad_norm_(ps, 1.0, nonfinite="ignore")


# ------------------------------------------------------------------------------------------ non-finite norms
def _nonfinite_params(bad):
    ps = _params()
    ps[1].grad[2] = bad
    return ps


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_nonfinite_norm_policies(bad):
    # propagate == torch's default behaviour, bit for bit (NaN compared as equal)
    ps = _nonfinite_params(bad)
    qs = _copy(ps)
    G.clip_grad_norm_(ps, 1.0)
    torch.nn.utils.clip_grad_norm_(qs, 1.0)
    for p, q in zip(ps, qs):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=0, equal_nan=True)
    # error: raises, as torch's error_if_nonfinite=True, and leaves the gradients alone
    for kwargs in ({"error_if_nonfinite": True}, {"nonfinite": "raise"}):
        ps = _nonfinite_params(bad)
        before = [g.clone() for g in _grads(ps)]
        with pytest.raises(RuntimeError, match="non-finite"):
            G.clip_grad_norm_(ps, 1.0, **kwargs)
        for g, b in zip(_grads(ps), before):
            torch.testing.assert_close(g, b, rtol=0, atol=0, equal_nan=True)
    # skip: gradients untouched, the norm is reported, nothing counted as clipped
    ps = _nonfinite_params(bad)
    before = [g.clone() for g in _grads(ps)]
    stats = G.clip_grad_norm_(ps, 1.0, nonfinite="skip")
    assert not math.isfinite(float(stats.total_norm)) and float(stats.fraction_clipped) == 0.0
    for g, b in zip(_grads(ps), before):
        torch.testing.assert_close(g, b, rtol=0, atol=0, equal_nan=True)
    # zero: every gradient exactly zero
    ps = _nonfinite_params(bad)
    stats = G.clip_grad_norm_(ps, 1.0, nonfinite="zero")
    assert all(bool((g == 0).all()) for g in _grads(ps)) and float(stats.fraction_clipped) == 1.0


# ------------------------------------------------------------------------------------------ coordinate-wise
def test_clip_coordinate_known_answer_per_coordinate_thresholds():
    g = torch.tensor([-3.0, 0.5, 2.0])
    stats = G.clip_coordinate_([g], [torch.tensor([1.0, 1.0, 3.0])])
    assert torch.equal(g, torch.tensor([-1.0, 0.5, 2.0]))
    assert float(stats.fraction_clipped) == pytest.approx(1 / 3)
    assert float(stats.threshold) == pytest.approx(5 / 3)  # mean of the thresholds
    # a broadcastable threshold: one τ per row
    h = torch.tensor([[4.0, -4.0], [0.1, -0.3]])
    G.clip_coordinate_([h], [torch.tensor([[2.0], [0.2]])])
    assert torch.equal(h, torch.tensor([[2.0, -2.0], [0.1, -0.2]]))


def test_clip_coordinate_scalar_equals_value_clipping():
    ps, qs = _params(), _params()
    G.clip_coordinate_(ps, 0.5)
    G.clip_grad_value_(qs, 0.5)
    for p, q in zip(ps, qs):
        assert torch.equal(p.grad, q.grad)


@pytest.mark.parametrize("q", [0.0, 0.3, 0.7, 0.9, 0.95, 1.0])
def test_quantile_clipping_threshold_and_fraction(q):
    ps = _params(seed=3, shapes=[(10, 7), (13,), (3, 3, 3)])
    before = np.concatenate([p.grad.abs().flatten().numpy() for p in ps])
    n = before.size
    stats = G.clip_quantile_(ps, q)
    tau = float(stats.threshold)
    assert tau == pytest.approx(float(np.quantile(before, q, method="inverted_cdf")), rel=1e-6)
    # distinct magnitudes: exactly the n - k largest coordinates are clipped, k = ceil(q n) clamped to [1, n],
    # i.e. floor((1 - q) n) of them once q >= 1/n
    k = max(math.ceil(q * n - 1e-9), 1)
    expected = n - k
    assert q < 1 / n or expected == math.floor((1 - q) * n + 1e-9)
    assert round(float(stats.fraction_clipped) * n) == expected
    after = np.concatenate([p.grad.abs().flatten().numpy() for p in ps])
    assert after.max() <= tau + 1e-12
    assert int((after != before).sum()) == expected


def test_quantile_clipping_hand_computed():
    g = [torch.tensor([1.0, -5.0, 2.0]), torch.tensor([[0.5, -3.0], [4.0, 0.1]])]
    # |g| sorted: 0.1 0.5 1 2 3 4 5 (n = 7); q = 0.7 -> k = ceil(4.9) = 5 -> tau = 3
    stats = G.clip_quantile_(g, 0.7)
    assert float(stats.threshold) == 3.0
    assert torch.equal(g[0], torch.tensor([1.0, -3.0, 2.0]))
    assert torch.equal(g[1], torch.tensor([[0.5, -3.0], [3.0, 0.1]]))
    assert float(stats.fraction_clipped) == pytest.approx(2 / 7)


# ------------------------------------------------------------------------------------------ AGC
def test_agc_known_answer():
    w = torch.nn.Parameter(torch.tensor([[3.0, 4.0], [0.0, 0.0]]))
    w.grad = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    b = torch.nn.Parameter(torch.tensor([0.6, 0.8]))
    b.grad = torch.tensor([3.0, 4.0])
    ok = torch.nn.Parameter(torch.tensor([[10.0, 0.0]]))
    ok.grad = torch.tensor([[0.5, 0.0]])  # ratio 0.05 <= 0.1: untouched
    stats = G.adaptive_clip_grad_([w, b, ok], clipping=0.1, eps=1e-3)
    # row 0: ‖W‖ = 5 -> max 0.5; row 1: ‖W‖* = eps = 1e-3 -> max 1e-4; bias (one unit): ‖W‖ = 1 -> max 0.1
    torch.testing.assert_close(w.grad, torch.tensor([[0.5, 0.0], [0.0, 1e-4]]))
    torch.testing.assert_close(b.grad, torch.tensor([0.06, 0.08]))
    assert torch.equal(ok.grad, torch.tensor([[0.5, 0.0]]))
    assert float(stats.fraction_clipped) == pytest.approx(3 / 4)  # 2 rows + bias of 4 units
    assert float(stats.total_norm) == pytest.approx(math.sqrt(2 + 25 + 0.25))


def test_agc_ratio_bounded_and_unclipped_units_untouched():
    gen = torch.Generator().manual_seed(1)
    shapes = [(8, 5), (6, 3, 3, 3), (7,), ()]
    ps = []
    for shape in shapes:
        p = torch.nn.Parameter(torch.randn(shape, generator=gen, dtype=torch.float64))
        p.grad = torch.randn(shape, generator=gen, dtype=torch.float64) * torch.rand((), generator=gen) * 0.5
        ps.append(p)
    ps[0].data[2].zero_()  # a zero unit: ‖W‖* = eps
    lam, eps = 0.05, 1e-3
    before = [p.grad.clone() for p in ps]
    G.adaptive_clip_grad_(ps, lam, eps)
    n_clipped = 0
    for p, g0 in zip(ps, before):
        w = G.unitwise_norm(p.detach()).clamp_min(eps)
        ratio_before = G.unitwise_norm(g0) / w
        ratio_after = G.unitwise_norm(p.grad) / w
        # which side of λ a unit is on is decided here by ‖G‖/‖W‖ ≤ λ and in the library by ‖G‖ > λ‖W‖: the data
        # must keep every unit far from λ for the two to agree on every CPU
        assert bool(((ratio_before / lam - 1).abs() > 1e-9).all())
        assert bool((ratio_after <= lam * (1 + 1e-12)).all())
        untouched = (ratio_before <= lam).expand_as(p.grad)
        assert torch.equal(p.grad[untouched], g0[untouched])
        n_clipped += int((ratio_before > lam).sum())
    assert n_clipped > 0


def test_agc_explicit_grads_list():
    ps = _params()
    grads = [p.grad.clone() for p in ps]
    G.adaptive_clip_grad_(ps, 0.01)
    G.adaptive_clip_grad_([p.detach() for p in ps], 0.01, grads=grads)
    for p, g in zip(ps, grads):
        assert torch.equal(p.grad, g)


# ------------------------------------------------------------------------------------------ invariants
@pytest.mark.parametrize("seed", range(4))
def test_clipping_never_increases_the_norm(seed):
    transforms = [
        lambda ps: G.clip_grad_norm_(ps, 0.7),
        lambda ps: G.clip_grad_norm_(ps, 1e3),
        lambda ps: G.clip_grad_value_(ps, 0.3),
        lambda ps: G.clip_coordinate_(ps, [torch.rand_like(p) for p in ps]),
        lambda ps: G.clip_quantile_(ps, 0.8),
        lambda ps: G.adaptive_clip_grad_(ps, 0.02),
    ]
    for transform in transforms:
        ps = _params(seed=seed, scale=10 ** (seed - 1))
        before = _norm(_grads(ps))
        stats = transform(ps)
        after = _norm(_grads(ps))
        assert after <= before * (1 + 1e-12)
        assert float(stats.total_norm) == pytest.approx(before, rel=1e-12)
        for g, b in zip(_grads(ps), _grads(_params(seed=seed, scale=10 ** (seed - 1)))):
            assert bool((g.abs() <= b.abs() * (1 + 1e-12)).all())  # and never grows a coordinate
            assert bool((g * b >= 0).all())  # nor flips a sign


# ------------------------------------------------------------------------------------------ robust estimators
def test_coordinate_median_known_answers():
    odd = torch.tensor([[1.0, 10.0], [3.0, -2.0], [2.0, 0.0]])
    assert torch.equal(G.coordinate_median(odd), torch.tensor([2.0, 0.0]))
    even = torch.tensor([[1.0], [4.0], [2.0], [100.0]])
    assert torch.equal(G.coordinate_median(even), torch.tensor([3.0]))  # mean of the two middle values
    out = G.coordinate_median({"w": odd, "b": torch.tensor([5.0, -1.0, 0.0])})
    assert torch.equal(out["w"], torch.tensor([2.0, 0.0])) and float(out["b"]) == 0.0


def test_median_of_means_known_answer():
    stack = torch.tensor([1.0, 2.0, 3.0, 4.0, 100.0, 6.0])
    # groups (1, 2), (3, 4), (100, 6) -> means 1.5, 3.5, 53 -> median 3.5
    assert float(G.median_of_means(stack, 3)) == 3.5
    assert float(G.median_of_means(stack, 1)) == pytest.approx(float(stack.mean()))
    assert float(G.median_of_means(stack, 6)) == float(G.coordinate_median(stack))
    with pytest.raises(ValueError, match="num_groups"):
        G.median_of_means(stack, 7)


def test_geometric_median_known_answers():
    square = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], dtype=torch.float64)
    torch.testing.assert_close(G.geometric_median(square), torch.tensor([0.5, 0.5], dtype=torch.float64))
    # collinear points: the geometric median is the middle point
    line = torch.tensor([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0]], dtype=torch.float64)
    torch.testing.assert_close(G.geometric_median(line), torch.tensor([1.0, 0.0], dtype=torch.float64))
    # optimality: the sum of unit vectors towards the points vanishes at an interior minimiser
    pts = torch.randn(9, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    m = G.geometric_median(pts, tol=1e-12, max_iter=1000)
    d = pts - m
    assert float(torch.linalg.vector_norm((d / d.norm(dim=1, keepdim=True)).sum(0))) < 1e-6


def test_median_estimators_are_robust_to_a_planted_outlier():
    gen = torch.Generator().manual_seed(0)
    mu = {"w": torch.tensor([[1.0, -2.0], [0.5, 3.0]], dtype=torch.float64), "b": torch.tensor([0.25, -1.0])}
    b = 15
    stack = {k: v.double() + 0.05 * torch.randn(b, *v.shape, generator=gen, dtype=torch.float64) for k, v in mu.items()}
    stack["w"][4] = 1e6  # one corrupted sample
    stack["b"][4] = -1e6

    def err(est):
        return max(float((est[k] - mu[k].double()).abs().max()) for k in mu)

    assert err({k: v.mean(0) for k, v in stack.items()}) > 1e4  # the mean is ruined
    assert err(G.coordinate_median(stack)) < 0.1
    assert err(G.geometric_median(stack)) < 0.1
    assert err(G.median_of_means(stack, 5)) < 0.1
    assert err(G.median_of_means(stack, 5, median="geometric")) < 0.1
    assert err(G.clipped_mean(stack, 10.0, per_sample=True)) < 1.0  # bounded influence: ≤ C/B


def test_clipped_mean_known_answers():
    stack = [torch.tensor([[3.0, 4.0], [0.0, 0.5]], dtype=torch.float64)]
    per_sample = G.clipped_mean(stack, 1.0, per_sample=True)[0]
    torch.testing.assert_close(per_sample, torch.tensor([0.3, 0.65], dtype=torch.float64))
    clipped = G.clipped_mean(stack, 1.0)[0]
    mean = torch.tensor([1.5, 2.25], dtype=torch.float64)
    torch.testing.assert_close(clipped, mean / mean.norm())
    zero = G.clipped_mean(torch.zeros(3, 2), 1.0, per_sample=True)
    assert torch.equal(zero, torch.zeros(2))


def test_median_tracking_step_known_answers_and_convergence():
    m = [torch.zeros(2, dtype=torch.float64)]
    stats = G.median_tracking_step_(m, [torch.tensor([3.0, 4.0], dtype=torch.float64)], 1.0)
    torch.testing.assert_close(m[0], torch.tensor([0.6, 0.8], dtype=torch.float64))
    assert float(stats.total_norm) == 5.0 and float(stats.fraction_clipped) == 1.0
    m = [torch.zeros(2, dtype=torch.float64)]
    G.median_tracking_step_(m, [torch.tensor([3.0, 4.0], dtype=torch.float64)], 10.0)  # prox reaches g
    torch.testing.assert_close(m[0], torch.tensor([3.0, 4.0], dtype=torch.float64))
    m = [torch.zeros(2, dtype=torch.float64)]
    G.median_tracking_step_(m, [torch.tensor([3.0, -0.5], dtype=torch.float64)], 1.0, norm="l1")
    torch.testing.assert_close(m[0], torch.tensor([1.0, -0.5], dtype=torch.float64))
    # a heavy-tailed stream (Cauchy: no mean) centred at 2: the tracker (tail-averaged) finds its median,
    # while the sample mean of the same stream is far off
    gen = torch.Generator().manual_seed(0)
    steps = 1500
    samples = 2.0 + torch.tan(math.pi * (torch.rand(steps, 3, generator=gen, dtype=torch.float64) - 0.5))
    assert float((samples.mean(0) - 2.0).abs().max()) > 1.0
    for norm in ("l2", "l1"):
        m = [samples[0].clone()]
        tail = []
        for t in range(1, steps):
            G.median_tracking_step_(m, [samples[t]], 1.0 / math.sqrt(t), norm=norm)
            if t >= steps // 2:
                tail.append(m[0].clone())
        assert float((torch.stack(tail).mean(0) - 2.0).abs().max()) < 0.25


# ------------------------------------------------------------------------------------------ DP-SGD
def _dp_setup(b=6):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3)).double()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(b, 4, generator=gen, dtype=torch.float64) * torch.tensor([[0.1], [1], [5], [0.2], [3], [1]])
    y = torch.randint(0, 3, (b,), generator=gen)
    return model, torch.nn.functional.cross_entropy, x, y


def _loop_grads(model, loss_fn, x, y):
    out = []
    for i in range(x.shape[0]):
        model.zero_grad()
        loss_fn(model(x[i : i + 1]), y[i : i + 1]).backward()
        out.append({n: p.grad.clone() for n, p in model.named_parameters()})
    model.zero_grad()
    return out


def _loop_norms(loop):
    return torch.stack([torch.sqrt(sum((g**2).sum() for g in ref.values())) for ref in loop])


def _threshold_between_middle_norms(norms):
    """C halfway between the two middle norms: exactly half the samples have ‖g_i‖ > C, however the norms are
    rounded. (The median itself is one sample's norm, and whether that sample is clipped would depend on the last
    bit of a norm computed two ways: the loop's, and the library's vectorized one, which differs between CPU
    kernels, e.g. ATEN_CPU_CAPABILITY=avx2 vs default.)"""
    s = norms.sort().values
    below, above = float(s[len(s) // 2 - 1]), float(s[len(s) // 2])
    assert above - below > 1e-6 * above, "the middle norms must be far apart compared with rounding"
    return (below + above) / 2


def test_per_sample_grads_equal_a_per_sample_loop():
    model, loss_fn, x, y = _dp_setup()
    grads, losses = G.per_sample_grads(model, loss_fn, x, y)
    loop = _loop_grads(model, loss_fn, x, y)
    for i, ref in enumerate(loop):
        for name, g in ref.items():
            torch.testing.assert_close(grads[name][i], g, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(losses[i], loss_fn(model(x[i : i + 1]), y[i : i + 1]).detach())
    assert all(p.grad is None for p in model.parameters())


def test_per_sample_clipping_bounds_norms_and_matches_loop():
    model, loss_fn, x, y = _dp_setup()
    grads, _ = G.per_sample_grads(model, loss_fn, x, y)
    loop = _loop_grads(model, loss_fn, x, y)
    loop_norms = _loop_norms(loop)
    c = _threshold_between_middle_norms(loop_norms)  # half the samples get clipped
    norms = G.clip_per_sample_(grads, c)
    torch.testing.assert_close(norms, loop_norms, rtol=1e-12, atol=0)
    after = G.per_sample_norms(grads)
    assert bool((after <= c * (1 + 1e-12)).all())
    torch.testing.assert_close(after, torch.minimum(loop_norms, torch.tensor(c, dtype=after.dtype)))


def test_dp_sgd_grad_equals_loop_clipping_plus_seeded_noise():
    model, loss_fn, x, y = _dp_setup()
    loop = _loop_grads(model, loss_fn, x, y)
    norms = _loop_norms(loop)
    b, c, sigma = x.shape[0], _threshold_between_middle_norms(norms), 1.3
    clipped_sum = {}
    for ref, norm in zip(loop, norms):
        for name, g in ref.items():
            clipped_sum[name] = clipped_sum.get(name, 0) + g / max(1.0, float(norm) / c)
    # no noise: the average of the clipped per-sample gradients, written to p.grad
    result = G.dp_sgd_grad(model, loss_fn, x, y, max_norm=c, noise_multiplier=0.0)
    for name, p in model.named_parameters():
        torch.testing.assert_close(result.grads[name], clipped_sum[name] / b, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(p.grad, clipped_sum[name] / b, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(result.per_sample_norms, norms, rtol=1e-12, atol=0)
    assert float(result.fraction_clipped) == 0.5  # C lies strictly between the 3rd and 4th of 6 norms
    # with noise: N(0, σ²C²) drawn from the caller's generator in named_parameters order, averaged over L
    noisy = G.dp_sgd_grad(
        model,
        loss_fn,
        x,
        y,
        max_norm=c,
        noise_multiplier=sigma,
        generator=torch.Generator().manual_seed(7),
        expected_batch_size=8,
    )
    gen = torch.Generator().manual_seed(7)
    for name, p in model.named_parameters():
        noise = torch.randn(p.shape, generator=gen, dtype=p.dtype) * (sigma * c)
        torch.testing.assert_close(noisy.grads[name], (clipped_sum[name] + noise) / 8, rtol=1e-12, atol=1e-15)
        assert torch.equal(p.grad, noisy.grads[name])  # p.grad replaced, not accumulated
    again = G.dp_sgd_grad(
        model,
        loss_fn,
        x,
        y,
        max_norm=c,
        noise_multiplier=sigma,
        generator=torch.Generator().manual_seed(7),
        expected_batch_size=8,
        write_grad=False,
    )
    for name in noisy.grads:
        assert torch.equal(again.grads[name], noisy.grads[name])


def test_dp_sgd_boundary_rule_norm_equal_to_c_is_left_alone_and_not_counted():
    """Abadi et al. (2016): ḡ = g / max(1, ‖g‖/C), so ‖g‖ = C is unchanged; "clipped" means ‖g‖ > C strictly."""
    model = torch.nn.Linear(2, 1, bias=False).double()
    x = torch.tensor([[3.0, 4.0], [6.0, 8.0], [0.6, 0.8]], dtype=torch.float64)  # norms 5 and 10 exactly, and about 1
    y = torch.ones(3, dtype=torch.float64)

    def loss_fn(out, target):  # ∇_w = y_i x_i exactly
        return (out.squeeze(-1) * target).sum()

    result = G.dp_sgd_grad(model, loss_fn, x, y, max_norm=5.0, noise_multiplier=0.0)
    assert torch.equal(result.per_sample_norms[:2], torch.tensor([5.0, 10.0], dtype=torch.float64))
    assert round(float(result.fraction_clipped) * 3) == 1  # only the sample with norm 10
    expected = (x[0] + x[1] / 2 + x[2]).unsqueeze(0) / 3
    torch.testing.assert_close(result.grads["weight"], expected, rtol=1e-14, atol=0)
    per_sample = x.clone()
    G.clip_per_sample_([per_sample], 5.0)
    assert torch.equal(per_sample, torch.stack([x[0], x[0], x[2]]))  # the norm-5 sample is bitwise unchanged
