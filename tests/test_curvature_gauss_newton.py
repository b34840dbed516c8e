"""optimlab.curvature.gauss_newton: the Gauss–Newton–Bartlett estimator of Sophia-G (Liu et al. 2023).

Known answer: E[B ĝ ⊙ ĝ] = diag of the Gauss–Newton matrix (1/B) Σ_b J_bᵀ (diag p_b − p_b p_bᵀ) J_b of the mean
cross-entropy; for softmax regression that is the Hessian's diagonal. Monte Carlo tolerance: 5 standard errors
estimated from the draws.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from optimlab import curvature as C


@pytest.fixture(autouse=True)
def _one_thread():
    """These tensors are tiny: one thread avoids OpenMP barrier stalls when the machine is oversubscribed."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


B, DIN, HID, NC = 6, 3, 4, 3


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(B, DIN, generator=g, dtype=torch.float64)
    y = torch.randint(0, NC, (B,), generator=g)
    return X, y, g


def _monte_carlo(estimate, n):
    draws = torch.stack([C.flatten(estimate()) for _ in range(n)])
    return draws.mean(0), draws.std(0) / n**0.5


def _gauss_newton_diag(logits_fn, theta):
    """diag((1/B) Σ_b J_bᵀ (diag p_b − p_b p_bᵀ) J_b) from the exact Jacobian of the logits."""
    J = torch.autograd.functional.jacobian(logits_fn, theta)  # (B, NC, d)
    p = torch.softmax(logits_fn(theta), dim=-1)
    S = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
    GN = torch.einsum("bcd,bce,bef->df", J, S, J) / J.shape[0]
    return torch.diagonal(GN)


def test_gnb_expectation_is_the_hessian_diagonal_for_softmax_regression():
    X, y, g = _data()
    W = torch.randn(DIN, NC, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(NC, generator=g, dtype=torch.float64, requires_grad=True)

    def loss_flat(theta):
        return F.cross_entropy(X @ theta[: DIN * NC].reshape(DIN, NC) + theta[DIN * NC :], y)

    theta = C.flatten([W.detach(), b.detach()])
    exact = torch.diagonal(torch.autograd.functional.hessian(loss_flat, theta))
    gn = _gauss_newton_diag(lambda t: X @ t[: DIN * NC].reshape(DIN, NC) + t[DIN * NC :], theta)
    torch.testing.assert_close(gn, exact, rtol=1e-10, atol=1e-12)  # linear model: GN = H

    gen = C.make_generator(0)
    mean, se = _monte_carlo(lambda: C.gauss_newton_bartlett(X @ W + b, [W, b], gen), 2000)
    assert ((mean - exact).abs() <= 5 * se + 1e-12).all(), (mean, exact, se)


def test_gnb_expectation_is_the_gauss_newton_diagonal_for_an_mlp():
    X, _, g = _data(1)
    shapes = [(HID, DIN), (HID,), (NC, HID), (NC,)]
    params = [(torch.randn(s, generator=g, dtype=torch.float64)).requires_grad_(True) for s in shapes]

    def logits_of(W1, b1, W2, b2):
        return torch.tanh(X @ W1.T + b1) @ W2.T + b2

    def logits_flat(theta):
        return logits_of(*C.unflatten(theta, params))

    exact = _gauss_newton_diag(logits_flat, C.flatten([p.detach() for p in params]))
    gen = C.make_generator(1)
    mean, se = _monte_carlo(lambda: C.gauss_newton_bartlett(logits_of(*params), params, gen), 2000)
    assert ((mean - exact).abs() <= 5 * se + 1e-12).all(), (mean, exact, se)


def test_sample_labels_follow_the_softmax_and_the_generator():
    logits = torch.tensor([[2.0, 0.0, -1.0, 0.5]]).expand(20000, 4)
    labels = C.sample_labels(logits, C.make_generator(3))
    assert labels.shape == (20000,) and labels.dtype == torch.int64
    freq = torch.bincount(labels, minlength=4).double() / 20000
    p = torch.softmax(logits[0].double(), -1)
    assert ((freq - p).abs() <= 5 * (p * (1 - p) / 20000).sqrt()).all(), (freq, p)
    again = C.sample_labels(logits, C.make_generator(3))
    assert torch.equal(labels, again)
    seq = C.sample_labels(torch.zeros(2, 5, 7), C.make_generator(0))
    assert seq.shape == (2, 5)


def test_gnb_scaling_mask_and_unused_parameters():
    g = torch.Generator().manual_seed(4)
    E = torch.randn(7, 5, generator=g, dtype=torch.float64, requires_grad=True)  # "embedding"
    H = torch.randn(5, 7, generator=g, dtype=torch.float64, requires_grad=True)  # "head"
    unused = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    tokens = torch.randint(0, 7, (2, 6), generator=g)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 4:] = False  # padding

    def logits():
        return E[tokens] @ H  # (2, 6, 7): a tiny language model

    gen = C.make_generator(5)
    state = C.generator_state(gen)
    est = C.gauss_newton_bartlett(logits(), [E, H, unused], gen, mask=mask)

    # by hand, with the same labels: mean CE over the 10 unmasked positions, times B = 10
    C.set_generator_state(gen, state)
    out = logits()
    labels = C.sample_labels(out, gen)
    grads = torch.autograd.grad(F.cross_entropy(out[mask], labels[mask]), [E, H])
    for e, gr in zip(est, grads):
        torch.testing.assert_close(e, 10 * gr**2, rtol=1e-12, atol=0)
    assert torch.equal(est[2], torch.zeros(3, dtype=torch.float64))

    C.set_generator_state(gen, state)
    unscaled = C.gauss_newton_bartlett(logits(), [E, H], gen, mask=mask, batch_size=1)
    torch.testing.assert_close(unscaled[0], grads[0] ** 2, rtol=1e-12, atol=0)

    with pytest.raises(ValueError, match="mask"):
        C.gauss_newton_bartlett(logits(), [E, H], gen, mask=torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="no label positions"):
        C.gauss_newton_bartlett(logits(), [E, H], gen, mask=torch.zeros(2, 6, dtype=torch.bool))


def test_gnb_on_bf16_model_returns_float32():
    g = torch.Generator().manual_seed(6)
    W = torch.randn(4, 3, generator=g).bfloat16().requires_grad_(True)
    X = torch.randn(8, 4, generator=g).bfloat16()
    est = C.gauss_newton_bartlett(X @ W, [W], C.make_generator(0))
    assert est[0].dtype == torch.float32 and est[0].shape == W.shape and torch.isfinite(est[0]).all()
