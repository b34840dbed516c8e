"""Muon family tests: bit parity with torch.optim.Muon (preset="torch", 2-D parameters), the Newton–Schulz band
of the update actually applied, the presets' conventions, the fallback routing, conv kernels, and convergence on
a matrix problem (the generic matrix's problems are vectors, i.e. fallback parameters)."""

from __future__ import annotations

import math

import pytest
import torch

import optimlab
from optimlab import curvature as C
from optimlab.optim.muon import PRESETS, lr_scale

BF16_SLACK = 0.05  # as tests/test_curvature_newton_schulz.py: bf16 widens the exact band by ~1%


@pytest.fixture(autouse=True)
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _feed(opts_and_params, shapes, steps, dtype, seed=0):
    """Give every optimizer's parameters the same random gradients for ``steps`` steps."""
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        grads = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
        for opt, params in opts_and_params:
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()


# ---------------------------------------------------------------------------- torch parity
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("adjust", ["original", "match_rms_adamw"])
def test_bit_identical_to_torch_muon_on_matrices(dtype, adjust):
    """preset="torch" equals torch.optim.Muon (bf16 Newton–Schulz, clamp eps) bit for bit: params and buffers."""
    shapes = [(8, 5), (5, 8), (12, 12)]
    gen = torch.Generator().manual_seed(1)
    p0 = [torch.randn(s, generator=gen, dtype=dtype) for s in shapes]
    ours = [p.clone().requires_grad_(True) for p in p0]
    theirs = [p.clone().requires_grad_(True) for p in p0]
    opt = optimlab.Muon(
        [{"params": ours[:2]}, {"params": ours[2:], "lr": 0.01, "weight_decay": 0.05}],
        preset="torch",
        lr=0.02,
        adjust_lr=adjust,
    )
    ref = torch.optim.Muon(
        [{"params": theirs[:2]}, {"params": theirs[2:], "lr": 0.01, "weight_decay": 0.05}],
        lr=0.02,
        adjust_lr_fn=adjust,
    )
    _feed([(opt, ours), (ref, theirs)], shapes, 20, dtype)
    for p, q in zip(ours, theirs):
        assert torch.equal(p, q)
        assert torch.equal(opt.state[p]["momentum_buffer"], ref.state[q]["momentum_buffer"])


def test_torch_preset_has_torch_muon_defaults():
    torch_muon = torch.optim.Muon([torch.zeros(2, 2, requires_grad=True)]).defaults
    ours = optimlab.Muon([torch.zeros(2, 2, requires_grad=True)], preset="torch").defaults
    for key in ("lr", "weight_decay", "momentum", "nesterov", "eps", "ns_steps"):
        assert ours[key] == torch_muon[key], key
    assert tuple(ours["ns_coefficients"]) == tuple(torch_muon["ns_coefficients"])


# ---------------------------------------------------------------------------- the band invariant
@pytest.mark.parametrize("ns_dtype", ["bfloat16", "float32"])
@pytest.mark.parametrize("shape", [(32, 16), (16, 48), (8, 4, 3, 3)])
def test_applied_update_singular_values_lie_in_the_newton_schulz_band(ns_dtype, shape):
    """−Δp / (lr·scale) of a step from W = 0 (no decay) is the orthogonalized momentum: its singular values lie in
    the quintic's band for every singular value of the momentum above 1% of its Frobenius norm."""
    gen = torch.Generator().manual_seed(2)
    rows, cols = shape[0], math.prod(shape[1:])
    lo, hi = C.QUINTIC_BAND
    slack = BF16_SLACK if ns_dtype == "bfloat16" else 1e-3
    for adjust in ("original", "match_rms_adamw"):
        w = torch.zeros(shape, requires_grad=True)
        opt = optimlab.Muon([w], lr=0.1, weight_decay=0.0, ns_dtype=ns_dtype, adjust_lr=adjust)
        for step in range(3):
            before = w.detach().clone()
            w.grad = torch.randn(shape, generator=gen)
            opt.step()
            applied = -(w.detach() - before) / (0.1 * lr_scale(rows, cols, adjust))
            momentum = opt.state[w]["momentum_buffer"]
            nesterov = w.grad.lerp(momentum, 0.95).reshape(rows, cols).double()
            s = torch.linalg.svdvals(nesterov)
            assert float(s.min() / s.norm()) >= C.QUINTIC_BAND_THRESHOLD  # the band's premise holds here
            sv = torch.linalg.svdvals(applied.reshape(rows, cols).double())
            assert len(sv) == min(rows, cols)
            assert lo - slack <= float(sv.min()) and float(sv.max()) <= hi + slack, (step, sv.min(), sv.max())


def test_match_rms_adamw_gives_update_rms_near_0_2_lr():
    """Moonlight's point: with 0.2·√max(A, B) the update's RMS is ≈ 0.2·lr whatever the shape. The exact polar
    factor of an A × B matrix has min(A, B) unit singular values, so its RMS is 1/√max(A, B); Newton–Schulz's
    singular values lie in its band, so the RMS lies in 0.2·lr·band."""
    lo, hi = C.QUINTIC_BAND
    gen = torch.Generator().manual_seed(3)
    for shape in [(64, 16), (16, 64), (32, 32)]:
        w = torch.zeros(shape, requires_grad=True)
        opt = optimlab.Muon([w], preset="moonlight", lr=0.01, weight_decay=0.0, ns_dtype="float32")
        w.grad = torch.randn(shape, generator=gen)
        opt.step()
        rms = float(w.detach().square().mean().sqrt())
        assert 0.2 * 0.01 * lo <= rms <= 0.2 * 0.01 * hi, (shape, rms)


# ---------------------------------------------------------------------------- presets and validation
def test_presets_fill_unspecified_arguments_and_explicit_ones_win():
    w = torch.zeros(4, 4, requires_grad=True)
    for name, conventions in PRESETS.items():
        opt = optimlab.Muon([w], preset=name)
        for key, value in conventions.items():
            assert opt.defaults[key] == value, (name, key)
    opt = optimlab.Muon([w], preset="torch", lr=0.5, eps_mode="add")
    assert opt.defaults["lr"] == 0.5 and opt.defaults["eps_mode"] == "add" and opt.defaults["weight_decay"] == 0.1


def test_a_param_group_may_name_its_own_preset():
    a, b = torch.zeros(4, 4, requires_grad=True), torch.zeros(4, 4, requires_grad=True)
    opt = optimlab.Muon([{"params": [a]}, {"params": [b], "preset": "moonlight", "lr": 3e-3}])
    kj, moon = opt.param_groups
    assert kj["adjust_lr"] == "original" and kj["lr"] == 0.02
    assert moon["adjust_lr"] == "match_rms_adamw" and moon["lr"] == 3e-3 and moon["weight_decay"] == 0.1


def test_create_with_a_preset_gets_that_presets_lr():
    opt = optimlab.create("muon", [torch.zeros(3, 3, requires_grad=True)], preset="torch")
    assert opt.defaults["lr"] == 1e-3 and opt.defaults["eps_mode"] == "clamp"


@pytest.mark.parametrize(
    "field,value",
    [
        ("preset", "nope"),
        ("lr", None),
        ("lr", -1.0),
        ("weight_decay", -0.1),
        ("eps_mode", "max"),
        ("adjust_lr", "spectral"),
        ("ns_dtype", "float16"),
        ("ns_steps", 2.5),
        ("fallback", "muon"),
        ("fallback", "no-such-algorithm"),
        ("fallback_options", "betas"),
        ("fallback_options", {"lr": 1e-3}),
        ("fallback_options", {"betas": (0.9, 1.5)}),
        ("use_muon", "yes"),
    ],
)
def test_bad_arguments_raise_value_error_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        optimlab.Muon([torch.zeros(3, 3, requires_grad=True)], **{field: value})
    opt = optimlab.Muon([torch.zeros(3, 3, requires_grad=True)])
    with pytest.raises(ValueError, match=field):
        opt.add_param_group({"params": [torch.zeros(2, 2, requires_grad=True)], field: value})


def test_use_muon_true_rejects_vectors():
    with pytest.raises(ValueError, match="use_muon"):
        optimlab.Muon([{"params": [torch.zeros(3, requires_grad=True)], "use_muon": True}])


# ---------------------------------------------------------------------------- the fallback
def test_vectors_and_use_muon_false_follow_the_fallback_exactly():
    """A 1-D parameter, and a 2-D one in a use_muon=False group, take AdamW's steps with the preset's fallback
    options and the group's lr / weight decay, bit for bit."""
    shapes = [(6,), (5, 7)]
    gen = torch.Generator().manual_seed(4)
    p0 = [torch.randn(s, generator=gen) for s in shapes]
    ours = [p.clone().requires_grad_(True) for p in p0]
    adamw = [p.clone().requires_grad_(True) for p in p0]
    opt = optimlab.Muon(
        [{"params": [ours[0]]}, {"params": [ours[1]], "use_muon": False, "lr": 3e-3}], lr=0.01, weight_decay=0.1
    )
    ref = optimlab.AdamW(
        [{"params": [adamw[0]]}, {"params": [adamw[1]], "lr": 3e-3}],
        lr=0.01,
        weight_decay=0.1,
        **PRESETS["kj"]["fallback_options"],
    )
    _feed([(opt, ours), (ref, adamw)], shapes, 10, torch.float32)
    for p, q in zip(ours, adamw):
        assert torch.equal(p, q)
        assert torch.equal(opt.state[p]["exp_avg"], ref.state[q]["exp_avg"])
        assert "momentum_buffer" not in opt.state[p]  # a fallback parameter keeps only the fallback's state
    w = torch.zeros(3, 3, requires_grad=True)
    opt = optimlab.Muon([w])
    w.grad = torch.ones(3, 3)
    opt.step()
    assert set(opt.state[w]) == {"step", "momentum_buffer"} and opt.state[w]["momentum_buffer"].shape == (3, 3)


def test_another_registered_elementwise_algorithm_can_be_the_fallback():
    """SGD with momentum as the fallback: its momentum_buffer shares the slot name with Muon's (one key)."""
    b, w = torch.zeros(4, requires_grad=True), torch.zeros(3, 3, requires_grad=True)
    b_ref = torch.zeros(4, requires_grad=True)
    opt = optimlab.Muon([b, w], fallback="sgd", fallback_options={"momentum": 0.5}, lr=0.1)
    ref = optimlab.SGD([b_ref], lr=0.1, momentum=0.5)
    for t in range(4):
        g = torch.full((4,), float(t + 1))
        b.grad, b_ref.grad, w.grad = g.clone(), g.clone(), torch.ones(3, 3)
        opt.step()
        ref.step()
    assert torch.equal(b, b_ref)
    assert set(opt.state[b]) == set(opt.state[w]) == {"step", "momentum_buffer"}
    assert torch.equal(opt.state[b]["momentum_buffer"], ref.state[b_ref]["momentum_buffer"])


def test_state_dict_round_trip_with_mixed_parameters():
    shapes = [(4, 6), (6,), (3, 2, 2, 2)]
    gen = torch.Generator().manual_seed(5)
    p0 = [torch.randn(s, generator=gen) for s in shapes]
    straight = [p.clone().requires_grad_(True) for p in p0]
    first = [p.clone().requires_grad_(True) for p in p0]
    opt_s = optimlab.Muon(straight, fallback_options={"betas": (0.8, 0.9), "eps": 1e-8})
    opt_1 = optimlab.Muon(first, fallback_options={"betas": (0.8, 0.9), "eps": 1e-8})
    _feed([(opt_s, straight), (opt_1, first)], shapes, 3, torch.float32, seed=6)
    from tests._harness import roundtrip

    saved = roundtrip({"params": [p.detach() for p in first], "optim": opt_1.state_dict()})
    resumed = [p.clone().requires_grad_(True) for p in saved["params"]]
    opt_2 = optimlab.Muon(resumed, fallback_options={"betas": (0.8, 0.9), "eps": 1e-8})
    opt_2.load_state_dict(saved["optim"])
    gen = torch.Generator().manual_seed(7)
    for _ in range(3):
        grads = [torch.randn(s, generator=gen) for s in shapes]
        for opt, params in ((opt_s, straight), (opt_2, resumed)):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
    assert all(torch.equal(p, q) for p, q in zip(straight, resumed))


# ---------------------------------------------------------------------------- conv kernels
def test_conv_kernel_is_orthogonalized_as_out_by_in_times_kernel():
    """A (out, in, kh, kw) kernel's update is Newton–Schulz of the (out, in·kh·kw) matrix (as KJ's reference),
    scaled with that matrix's shape."""
    shape = (16, 2, 3, 3)  # 16 × 18
    gen = torch.Generator().manual_seed(8)
    w = torch.zeros(shape, requires_grad=True)
    opt = optimlab.Muon([w], lr=0.1, ns_dtype="float32", nesterov=False)
    g = torch.randn(shape, generator=gen)
    w.grad = g.clone()
    opt.step()
    expected = C.newton_schulz_flattened(g * 0.05, dtype=torch.float32) * (0.1 * lr_scale(16, 18, "original"))
    torch.testing.assert_close(-w.detach(), expected, rtol=1e-5, atol=1e-7)


# ---------------------------------------------------------------------------- convergence on a matrix problem
def test_muon_solves_a_matrix_least_squares_problem():
    """min ‖W X − Y‖² over a 12 × 20 matrix W (Muon itself, not the fallback), cosine-decayed lr."""
    gen = torch.Generator().manual_seed(9)
    X = torch.randn(20, 64, generator=gen, dtype=torch.float64)
    W_star = torch.randn(12, 20, generator=gen, dtype=torch.float64) / 4
    Y = W_star @ X
    W = torch.zeros(12, 20, dtype=torch.float64, requires_grad=True)
    steps = 300
    opt = optimlab.Muon([W], lr=0.1, ns_dtype="float64")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)))
    start = float(((W.detach() @ X - Y) ** 2).mean())
    for _ in range(steps):
        opt.zero_grad()
        ((W @ X - Y) ** 2).mean().backward()
        opt.step()
        sched.step()
    assert float(((W.detach() @ X - Y) ** 2).mean()) < 1e-4 * start
    assert float((W.detach() - W_star).abs().max()) < 1e-2


# ---------------------------------------------------------------------------- batched Newton–Schulz per shape
@pytest.mark.parametrize("ns_dtype", ["bfloat16", "float32", "float64"])
def test_same_shape_matrices_share_one_batched_newton_schulz_with_the_per_matrix_result(ns_dtype, monkeypatch):
    """Muon's matrices are bucketed by shape and each bucket is orthogonalized with ONE batched Newton–Schulz;
    every parameter ends where a Muon holding it alone takes it (tall, wide, conv and transposed shapes, a bias in
    the fallback), bit for bit with bf16 products (the default), within rounding with fp32/fp64 ones."""
    from optimlab.optim import _compiled
    from optimlab.optim import muon as M

    monkeypatch.setattr(_compiled, "BATCH_ON_CPU", True)  # the batched path (on by default on GPUs only)
    calls = []
    real = M.newton_schulz
    monkeypatch.setattr(M, "newton_schulz", lambda G, **kw: calls.append(tuple(G.shape)) or real(G, **kw))
    dtype = torch.float64 if ns_dtype == "float64" else torch.float32
    gen = torch.Generator().manual_seed(0)
    shapes = [(24, 8)] * 3 + [(8, 24)] * 2 + [(6, 2, 3, 3)] * 2 + [(5, 7), (8,)]
    together = [torch.randn(s, generator=gen, dtype=dtype).requires_grad_(True) for s in shapes]
    alone = [p.detach().clone().requires_grad_(True) for p in together]
    options = dict(ns_dtype=ns_dtype, weight_decay=0.1, lr=0.05)
    groups = [{"params": together[:7]}, {"params": together[7:], "transpose": True}]
    batched = optimlab.Muon(groups, **options)
    singles = [optimlab.Muon([{"params": [p], "transpose": i >= 7}], **options) for i, p in enumerate(alone)]
    for _ in range(3):
        for p, q in zip(together, alone):
            p.grad = torch.randn(p.shape, generator=gen, dtype=dtype)
            q.grad = p.grad.clone()
        calls.clear()
        batched.step()
        assert sorted(calls) == sorted([(3, 24, 8), (2, 8, 24), (2, 6, 18), (5, 7)])  # one call per shape
        for opt in singles:
            opt.step()
    tol = {"bfloat16": dict(rtol=0, atol=0), "float32": dict(rtol=1e-6, atol=1e-6), "float64": {}}[ns_dtype]
    for p, q, single in zip(together, alone, singles):
        torch.testing.assert_close(p, q, **tol)
        for key, value in single.state[q].items():
            torch.testing.assert_close(batched.state[p][key], value, **tol)


def test_a_bucket_of_several_dtypes_is_updated_matrix_by_matrix(monkeypatch):
    """Same-shape matrices of different dtypes share a layout but are not stacked: each gets its own Newton–Schulz
    (in its own dtype), as alone."""
    from optimlab.optim import _compiled

    monkeypatch.setattr(_compiled, "BATCH_ON_CPU", True)
    gen = torch.Generator().manual_seed(1)
    dtypes = (torch.float32, torch.float64)
    together = [torch.randn(6, 4, generator=gen, dtype=dt).requires_grad_(True) for dt in dtypes]
    alone = [p.detach().clone().requires_grad_(True) for p in together]
    batched = optimlab.Muon(together, lr=0.05, ns_dtype="float64")
    singles = [optimlab.Muon([p], lr=0.05, ns_dtype="float64") for p in alone]
    for p, q in zip(together, alone):
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype)
        q.grad = p.grad.clone()
    batched.step()
    for opt in singles:
        opt.step()
    for p, q in zip(together, alone):
        assert p.dtype == q.dtype and torch.equal(p, q)


def test_on_cpu_newton_schulz_runs_per_matrix_by_default(monkeypatch):
    """On CPU a batched product is slower than a loop of 2-D ones (measured in optim/_compiled.py): by default
    each matrix gets its own Newton–Schulz there."""
    from optimlab.optim import muon as M

    calls = []
    real = M.newton_schulz
    monkeypatch.setattr(M, "newton_schulz", lambda G, **kw: calls.append(tuple(G.shape)) or real(G, **kw))
    params = [torch.randn(6, 4, requires_grad=True) for _ in range(3)]
    for p in params:
        p.grad = torch.randn(6, 4)
    optimlab.Muon(params).step()
    assert calls == [(6, 4)] * 3
