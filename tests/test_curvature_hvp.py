"""optimlab.curvature: Hessian-vector products, Hutchinson estimators, probes and generator state.

Known answers come from the exact Hessian of small float64 functions (torch.autograd.functional.hessian).
Monte Carlo tolerances are 5 standard errors, from the estimator's exact variance.
"""

from __future__ import annotations

import functools
import io

import pytest
import torch

from optimlab import curvature as C


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny: one thread avoids OpenMP barrier stalls when the machine is oversubscribed."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


SHAPES = [(3,), (2, 3)]


def _loss(w, M):
    """A smooth function of two tensors with cross terms between them."""
    return (torch.tanh(M @ w) ** 2).sum() + (w**4).sum() / 4 + (torch.sin(M) * w).sum() + (M**2).prod(dim=0).sum()


def _split(theta):
    w, M = theta[:3], theta[3:].reshape(2, 3)
    return w, M


def _flat_loss(theta):
    return _loss(*_split(theta))


def _point(seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(9, generator=g, dtype=torch.float64)


def _exact_hessian(theta):
    return torch.autograd.functional.hessian(_flat_loss, theta)


def _params(theta):
    w, M = _split(theta.clone())
    return [w.clone().requires_grad_(True), M.clone().requires_grad_(True)]


def _graph_grads(params):
    return torch.autograd.grad(_loss(*params), params, create_graph=True)


# ------------------------------------------------------------------------------------------- HVP
def test_hvp_double_backward_matches_exact_hessian():
    theta = _point()
    H = _exact_hessian(theta)
    params = _params(theta)
    grads = _graph_grads(params)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        v = [torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
        hv = C.hvp(grads, params, v)
        torch.testing.assert_close(C.flatten(hv), H @ C.flatten(v), rtol=1e-10, atol=1e-12)


def test_hvp_accepts_p_grad_from_backward_create_graph():
    theta = _point()
    H = _exact_hessian(theta)
    params = _params(theta)
    _loss(*params).backward(create_graph=True)
    v = [torch.ones_like(p) for p in params]
    hv = C.hvp([p.grad for p in params], params, v)
    torch.testing.assert_close(C.flatten(hv), H @ C.flatten(v), rtol=1e-10, atol=1e-12)
    for p in params:  # break the p.grad <-> graph reference cycle
        p.grad = None


def test_functional_hvp_matches_exact_hessian_dict_and_list():
    theta = _point(2)
    H = _exact_hessian(theta)
    w, M = _split(theta)
    v = [torch.linspace(-1, 1, 3, dtype=torch.float64), torch.arange(6, dtype=torch.float64).reshape(2, 3)]
    expected = H @ C.flatten(v)

    hv = C.functional_hvp(lambda p: _loss(p["w"], p["M"]), {"w": w, "M": M}, {"w": v[0], "M": v[1]})
    torch.testing.assert_close(C.flatten([hv["w"], hv["M"]]), expected, rtol=1e-10, atol=1e-12)

    grad, hv = C.functional_grad_and_hvp(lambda p: _loss(*p), [w, M], v)
    torch.testing.assert_close(C.flatten(hv), expected, rtol=1e-10, atol=1e-12)
    exact_grad = torch.autograd.functional.jacobian(_flat_loss, theta)
    torch.testing.assert_close(C.flatten(grad), exact_grad, rtol=1e-10, atol=1e-12)


def test_hvp_without_create_graph_raises_clearly():
    params = _params(_point())
    grads = torch.autograd.grad(_loss(*params), params)  # no create_graph
    with pytest.raises(ValueError, match="create_graph"):
        C.hvp(grads, params, [torch.ones_like(p) for p in params])
    _loss(*params).backward()  # nor through p.grad
    with pytest.raises(ValueError, match="create_graph"):
        C.hvp([p.grad for p in params], params, [torch.ones_like(p) for p in params])


def test_hvp_unused_and_linear_parameters_give_zero_rows():
    x = torch.tensor([0.3, -1.2], dtype=torch.float64, requires_grad=True)
    lin = torch.tensor([2.0, 0.5], dtype=torch.float64, requires_grad=True)  # enters linearly: constant grad
    unused = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    params = [x, lin, unused]
    loss = (x**3).sum() + x.prod() + (lin * torch.tensor([1.0, -2.0], dtype=torch.float64)).sum()
    grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
    assert grads[1].grad_fn is None and grads[2] is None
    v = [torch.tensor([1.0, 2.0], dtype=torch.float64), torch.ones(2, dtype=torch.float64), torch.ones(4)]
    hv = C.hvp(grads, params, v)
    # H_x = diag(6x) + [[0, 1], [1, 0]]
    torch.testing.assert_close(hv[0], torch.tensor([6 * 0.3 * 1 + 2, 6 * -1.2 * 2 + 1], dtype=torch.float64))
    assert torch.equal(hv[1], torch.zeros(2, dtype=torch.float64)) and torch.equal(hv[2], torch.zeros(4))


def test_hvp_shape_mismatch_raises():
    params = _params(_point())
    grads = _graph_grads(params)
    with pytest.raises(ValueError, match="shape"):
        C.hvp(grads, params, [torch.ones(3), torch.ones(3, 2)])
    with pytest.raises(ValueError, match="tensors"):
        C.hvp(grads, params, [torch.ones(3)])


# ------------------------------------------------------------------------------------ Hutchinson
@pytest.mark.parametrize("distribution", ["rademacher", "gaussian"])
def test_hutchinson_diagonal_and_trace_match_exact_hessian(distribution):
    theta = _point(3)
    H = _exact_hessian(theta)
    params = _params(theta)
    op = functools.partial(C.hvp, _graph_grads(params), params)
    n = 1000
    diag = C.flatten(C.hutchinson_diagonal(op, params, C.make_generator(7), num_samples=n, distribution=distribution))
    d = torch.diagonal(H)
    off = (H**2).sum(dim=1) - d**2
    var = off if distribution == "rademacher" else 2 * d**2 + off
    assert ((diag - d).abs() <= 5 * (var / n).sqrt() + 1e-12).all(), (diag, d)

    # the trace estimate is the sum of the diagonal estimate over the same probes ...
    gen = C.make_generator(8)
    state = C.generator_state(gen)
    trace = C.hutchinson_trace(op, params, gen, num_samples=5, distribution=distribution)
    C.set_generator_state(gen, state)
    same = C.hutchinson_diagonal(op, params, gen, num_samples=5, distribution=distribution)
    torch.testing.assert_close(trace, C.flatten(same).sum(), rtol=1e-12, atol=1e-12)
    # ... so the n-probe diagonal above gives the n-probe trace estimate
    offdiag = (H**2).sum() - (d**2).sum()
    var_tr = 2 * offdiag if distribution == "rademacher" else 2 * (H**2).sum()
    assert abs(float(diag.sum() - torch.trace(H))) <= 5 * float((var_tr / n).sqrt())


def test_hutchinson_rademacher_is_exact_for_a_diagonal_hessian():
    c = torch.tensor([0.5, 2.0, -3.0], dtype=torch.float64)
    x = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64, requires_grad=True)
    grads = torch.autograd.grad((c * x**2).sum(), [x], create_graph=True)
    est = C.hutchinson_diagonal(functools.partial(C.hvp, grads, [x]), [x], C.make_generator(0))
    torch.testing.assert_close(est[0], 2 * c)


def test_hutchinson_on_bf16_params_accumulates_in_float32():
    x = torch.tensor([1.0, -2.0, 0.5], dtype=torch.bfloat16, requires_grad=True)
    grads = torch.autograd.grad((x**3).sum(), [x], create_graph=True)
    est = C.hutchinson_diagonal(functools.partial(C.hvp, grads, [x]), [x], C.make_generator(0), num_samples=2)
    assert est[0].dtype == torch.float32
    torch.testing.assert_close(est[0], 6 * x.detach().float(), rtol=1e-2, atol=1e-2)


def test_hutchinson_rejects_bad_arguments():
    x = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="num_samples"):
        C.hutchinson_diagonal(lambda v: v, [x], C.make_generator(0), num_samples=0)
    with pytest.raises(ValueError, match="distribution"):
        C.hutchinson_diagonal(lambda v: v, [x], C.make_generator(0), distribution="uniform")


# -------------------------------------------------------------------------------- probes and rng
def test_probes_have_the_right_law():
    gen = C.make_generator(0)
    z = C.random_probe(torch.empty(20000, dtype=torch.float64), gen)
    assert set(z.unique().tolist()) == {-1.0, 1.0} and abs(float(z.mean())) < 0.03
    z = C.random_probe(torch.empty(20000), gen, "gaussian")
    assert z.dtype == torch.float32 and abs(float(z.mean())) < 0.03 and abs(float(z.var()) - 1) < 0.05
    assert C.random_probe(torch.empty(4, dtype=torch.bfloat16), gen).dtype == torch.bfloat16


def test_generator_state_round_trip_gives_identical_probes():
    like = [torch.empty(5), torch.empty(2, 3, dtype=torch.float64)]
    gen = C.make_generator(123)
    C.random_probes(like, gen)  # advance a little
    state = C.generator_state(gen)
    assert state.dtype == torch.uint8 and state.device.type == "cpu"
    first = C.random_probes(like, gen, "gaussian") + C.random_probes(like, gen)

    # through a checkpoint: torch.save / torch.load(weights_only=True), into a fresh generator
    buf = io.BytesIO()
    torch.save({"rng": state}, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=True)["rng"]
    fresh = C.set_generator_state(torch.Generator(), loaded)
    again = C.random_probes(like, fresh, "gaussian") + C.random_probes(like, fresh)
    for a, b in zip(first, again):
        assert torch.equal(a, b)

    # the saved tensor is a copy: drawing more does not change it
    assert torch.equal(state, loaded)
    with pytest.raises(ValueError, match="uint8"):
        C.set_generator_state(gen, state.float())


def test_hutchinson_is_deterministic_given_the_generator_state():
    params = _params(_point())
    op = functools.partial(C.hvp, _graph_grads(params), params)
    a = C.hutchinson_diagonal(op, params, C.make_generator(5), num_samples=3)
    b = C.hutchinson_diagonal(op, params, C.make_generator(5), num_samples=3)
    c = C.hutchinson_diagonal(op, params, C.make_generator(6), num_samples=3)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))


# ----------------------------------------------------------------------------- spatial averaging
def test_spatial_average_conv_kernel_and_blocks():
    g = torch.Generator().manual_seed(0)
    d = torch.randn(4, 3, 3, 3, generator=g)
    out = C.spatial_average(d)
    assert out.shape == d.shape
    expected = d.abs().mean(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(out, expected.expand_as(d))
    torch.testing.assert_close(C.spatial_average(d, keepdim=True), expected)
    torch.testing.assert_close(C.spatial_average(d, absolute=False), d.mean(dim=(2, 3), keepdim=True).expand_as(d))
    d1 = torch.randn(5, 2, 7, generator=g)  # conv1d kernel: average over the width
    torch.testing.assert_close(C.spatial_average(d1), d1.abs().mean(dim=2, keepdim=True).expand_as(d1))

    m = torch.randn(6, 4, generator=g)  # dense: elementwise unless a block size is given
    torch.testing.assert_close(C.spatial_average(m), m.abs())
    blocks = C.spatial_average(m, block_size=4)
    torch.testing.assert_close(blocks, m.abs().mean(dim=1, keepdim=True).expand_as(m))
    with pytest.raises(ValueError, match="block_size"):
        C.spatial_average(m, block_size=5)
    out[0, 0, 0, 0] = 123.0  # a fresh tensor, not a view of the input
    assert d[0, 0, 0, 0] != 123.0


def test_hvp_create_graph_allows_third_derivatives():
    x = torch.tensor([0.7, -0.3], dtype=torch.float64, requires_grad=True)
    grads = torch.autograd.grad((x**4).sum(), [x], create_graph=True)
    v = [torch.ones(2, dtype=torch.float64)]
    (hv,) = C.hvp(grads, [x], v, create_graph=True)  # 12 x² v
    (third,) = torch.autograd.grad(hv.sum(), [x])  # 24 x
    torch.testing.assert_close(third, 24 * x.detach())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_params_with_cpu_and_cuda_generators():
    params = [p.detach().cuda().requires_grad_(True) for p in _params(_point())]
    cpu_probes = C.random_probes(params, C.make_generator(0))
    ref = C.random_probes([p.cpu() for p in params], C.make_generator(0))
    assert all(a.is_cuda and torch.equal(a.cpu(), b) for a, b in zip(cpu_probes, ref))
    gen = C.make_generator(0, "cuda")
    state = C.generator_state(gen)
    first = C.random_probes(params, gen, "gaussian")
    C.set_generator_state(gen, state.cuda())  # as load_state_dict may hand it back
    assert all(torch.equal(a, b) for a, b in zip(first, C.random_probes(params, gen, "gaussian")))
    op = functools.partial(C.hvp, _graph_grads(params), params)
    est = C.hutchinson_diagonal(op, params, gen, num_samples=4)
    assert all(e.is_cuda for e in est)
    res = C.lanczos(op, params, gen, k=2, num_iters=9)
    H = _exact_hessian(_point())
    torch.testing.assert_close(res.eigenvalues.cpu(), torch.linalg.eigvalsh(H).flip(0)[:2], rtol=1e-8, atol=1e-8)
    G = torch.randn(64, 256, device="cuda")
    sv = torch.linalg.svdvals(C.newton_schulz(G).double())
    assert float(sv.min()) >= C.QUINTIC_BAND[0] - 0.05 and float(sv.max()) <= C.QUINTIC_BAND[1] + 0.05
    logits = torch.randn(5, 3, device="cuda", requires_grad=True)
    assert C.gauss_newton_bartlett(logits, [logits], gen)[0].is_cuda
