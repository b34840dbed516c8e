"""optimlab.curvature.newton_schulz: known answers in float64, the documented singular-value band in fp32 and
bf16 (random and ill-conditioned matrices), shapes, and bit parity with torch.optim.Muon's iteration.

bf16 matmuls need ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 on this CPU; tests/conftest.py sets it.
"""

from __future__ import annotations

import pytest
import torch

from optimlab import curvature as C
from optimlab.curvature.newton_schulz import DEFAULT_STEPS, EPS_MODES


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny: one thread avoids OpenMP barrier stalls when the machine is oversubscribed."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


BF16_SLACK = 0.05  # bf16 rounding widens the exact-arithmetic band by about 1%; allow 5%


def _scalar_map(s, coefficients, steps):
    a, b, c = coefficients
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    return s


def _with_spectrum(m, n, singular_values, seed):
    """G = U diag(s) Vᵀ with random orthonormal U (m×r), V (n×r), r = len(s)."""
    g = torch.Generator().manual_seed(seed)
    r = len(singular_values)
    U, _ = torch.linalg.qr(torch.randn(m, r, generator=g, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(n, r, generator=g, dtype=torch.float64))
    return U, V, (U * singular_values) @ V.T


@pytest.mark.parametrize("coefficients", ["muon", "cubic"])
@pytest.mark.parametrize("shape", [(12, 30), (30, 12)])
def test_float64_output_is_the_scalar_polynomial_of_the_normalized_singular_values(coefficients, shape):
    s = torch.logspace(0, -3, 12, dtype=torch.float64)
    U, V, G = _with_spectrum(*shape, s, seed=0)
    out = C.newton_schulz(G, coefficients=coefficients, dtype=torch.float64, eps=0.0)
    steps = DEFAULT_STEPS[coefficients]
    expected = _scalar_map(s / s.norm(), C.COEFFICIENTS[coefficients], steps)
    torch.testing.assert_close(U.T @ out @ V, torch.diag(expected), rtol=1e-10, atol=1e-12)


def test_the_documented_band_is_the_scalar_maps_range():
    s = torch.logspace(-6, 0, 200001, dtype=torch.float64)
    out = _scalar_map(s, C.COEFFICIENTS["muon"], 5)
    lo, hi = C.QUINTIC_BAND
    above = out[s >= C.QUINTIC_BAND_THRESHOLD]
    assert lo <= float(above.min()) < lo + 1e-4 and hi - 1e-4 < float(above.max()) <= hi
    assert C.QUINTIC_MAX - 1e-4 < float(out.max()) <= C.QUINTIC_MAX


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_quintic_band_on_random_rectangular_matrices(dtype):
    g = torch.Generator().manual_seed(1)
    lo, hi = C.QUINTIC_BAND
    slack = BF16_SLACK if dtype == torch.bfloat16 else 1e-3
    for shape in [(48, 160), (160, 48), (32, 96), (4, 32, 96)]:
        G = torch.randn(shape, generator=g)
        out = C.newton_schulz(G, dtype=dtype)
        assert out.dtype == torch.float32 and out.shape == G.shape
        sv = torch.linalg.svdvals(out.double())
        assert float(sv.min()) >= lo - slack and float(sv.max()) <= hi + slack, (shape, sv.min(), sv.max())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_quintic_band_on_ill_conditioned_matrices(dtype):
    lo, hi = C.QUINTIC_BAND
    slack = BF16_SLACK if dtype == torch.bfloat16 else 1e-3
    s = torch.logspace(0, -5, 48, dtype=torch.float64)  # condition number 1e5
    rel = s / s.norm()
    for seed, shape in enumerate([(48, 160), (160, 48)]):
        U, V, G = _with_spectrum(*shape, s, seed=seed)
        out = C.newton_schulz(G.float(), dtype=dtype).double()
        S = U.T @ out @ V  # the iteration keeps U and V: S is diagonal up to rounding
        d = torch.diagonal(S)
        assert float((S - torch.diag(d)).abs().max()) < (0.1 if dtype == torch.bfloat16 else 1e-4)
        big = d[rel >= C.QUINTIC_BAND_THRESHOLD]
        assert float(big.min()) >= lo - slack and float(big.max()) <= hi + slack, (big.min(), big.max())
        assert float(torch.linalg.svdvals(out).max()) <= C.QUINTIC_MAX + slack
        # tiny singular values are amplified by at most ~a^5 and stay below the band, as documented
        tiny = d[rel < 1e-4]
        assert float(tiny.abs().max()) < lo


def test_cubic_converges_to_the_polar_factor():
    g = torch.Generator().manual_seed(2)
    G = torch.randn(20, 50, generator=g, dtype=torch.float64)
    out = C.newton_schulz(G, coefficients="cubic", steps=30, dtype=torch.float64)
    torch.testing.assert_close(out, C.polar_factor(G), rtol=0, atol=1e-10)
    out32 = C.newton_schulz(G.float(), coefficients="cubic", steps=30, dtype=torch.float32)
    sv = torch.linalg.svdvals(out32.double())
    assert float((sv - 1).abs().max()) < 1e-5


def test_shapes_tall_batched_and_flattened_conv():
    g = torch.Generator().manual_seed(3)
    G = torch.randn(40, 16, generator=g)
    tall = C.newton_schulz(G, dtype=torch.float32)
    torch.testing.assert_close(tall, C.newton_schulz(G.T.contiguous(), dtype=torch.float32).T, rtol=0, atol=1e-5)

    batch = torch.randn(3, 2, 16, 24, generator=g)
    out = C.newton_schulz(batch, dtype=torch.float32)
    loop = torch.stack([C.newton_schulz(m, dtype=torch.float32) for m in batch.reshape(6, 16, 24)])
    torch.testing.assert_close(out, loop.reshape(batch.shape), rtol=1e-5, atol=1e-5)

    kernel = torch.randn(8, 4, 3, 3, generator=g)
    flat = C.newton_schulz_flattened(kernel, dtype=torch.float32)
    assert flat.shape == kernel.shape
    torch.testing.assert_close(flat, C.newton_schulz(kernel.reshape(8, 36), dtype=torch.float32).reshape(kernel.shape))


def test_bit_parity_with_torch_optim_muon():
    muon = pytest.importorskip("torch.optim._muon")
    if not hasattr(muon, "_zeropower_via_newtonschulz"):
        pytest.skip("torch.optim.Muon's Newton-Schulz helper is not in this torch")
    assert (muon.DEFAULT_A, muon.DEFAULT_B, muon.DEFAULT_C) == C.COEFFICIENTS["torch"] == C.COEFFICIENTS["muon"]
    assert muon.DEFAULT_NS_STEPS == DEFAULT_STEPS["torch"] == 5 and muon.EPS == 1e-7
    g = torch.Generator().manual_seed(4)
    for shape in [(64, 96), (96, 64), (50, 50)]:
        G = torch.randn(shape, generator=g)
        theirs = muon._zeropower_via_newtonschulz(G, C.COEFFICIENTS["torch"], 5, 1e-7)
        ours = C.newton_schulz(G, eps_mode="clamp", out_dtype=theirs.dtype)
        assert torch.equal(ours, theirs), shape


def test_zero_matrix_and_argument_checks():
    for mode in EPS_MODES:
        out = C.newton_schulz(torch.zeros(4, 6), eps_mode=mode)
        assert torch.equal(out, torch.zeros(4, 6))
    with pytest.raises(ValueError, match="matrix"):
        C.newton_schulz(torch.ones(5))
    with pytest.raises(ValueError, match="coefficients"):
        C.newton_schulz(torch.ones(2, 2), coefficients="septic")
    with pytest.raises(ValueError, match="steps"):
        C.newton_schulz(torch.ones(2, 2), coefficients=(2.0, -1.5, 0.5))
    with pytest.raises(ValueError, match="eps_mode"):
        C.newton_schulz(torch.ones(2, 2), eps_mode="max")
    custom = C.newton_schulz(torch.eye(3), coefficients=(2.0, -1.5, 0.5), steps=1, dtype=torch.float64)
    torch.testing.assert_close(custom, _scalar_map(torch.tensor(1 / 3**0.5), (2.0, -1.5, 0.5), 1) * torch.eye(3))
