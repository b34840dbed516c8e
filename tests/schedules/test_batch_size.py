"""AdAdaGrad's adaptive batch-size tests (#54): known answers, per-example gradients from torch.func, the helper."""

import math

import pytest
import torch

import optimlab.grad as G
from optimlab import schedules as S


def test_norm_test_known_answer():
    g = torch.tensor([[1.0, 0.0], [3.0, 0.0]])  # mean (2, 0): ‖ḡ‖² = 4; Var = (1 + 1)/1 = 2; statistic 2/2 = 1
    ok = S.norm_test(g, eta=0.5)  # bound 0.25·4 = 1
    assert ok.passed and ok.statistic == 1.0 and ok.bound == 1.0 and ok.batch_size == 2
    bad = S.norm_test(g, eta=0.4)  # bound 0.64: fails; next ⌈2/(0.16·4)⌉ = ⌈3.125⌉ = 4
    assert not bad.passed and bad.batch_size == 4


def test_inner_product_and_orthogonality_known_answers():
    g = torch.tensor([[1.0, 1.0], [3.0, -1.0]])  # ḡ = (2, 0); ⟨g_i, ḡ⟩ = 2, 6: Var = 8; ‖ḡ‖⁴ = 16
    ip = S.inner_product_test(g, theta=1.0)  # statistic 4 ≤ 16
    assert ip.passed and ip.statistic == 4.0 and ip.bound == 16.0
    ip = S.inner_product_test(g, theta=0.25)  # bound 1: next ⌈8/1⌉ = 8
    assert not ip.passed and ip.batch_size == 8
    # orthogonal parts (0, 1), (0, −1): Var = 2, statistic 1; bound ν²·4; ν = 0.4 → bound 0.64, next ⌈2/0.64⌉ = 4
    assert S.inner_product_test(g, theta=1.0, nu=0.5).passed  # bound 1
    aug = S.inner_product_test(g, theta=1.0, nu=0.4)
    assert not aug.passed and aug.batch_size == 4


def test_per_example_gradients_from_torch_func_and_the_helper():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 1)
    x, y = torch.randn(32, 5), torch.randn(32, 1)
    grads, _ = G.per_sample_grads(model, torch.nn.functional.mse_loss, x, y)
    manual = []
    for i in range(32):
        model.zero_grad()
        torch.nn.functional.mse_loss(model(x[i : i + 1]), y[i : i + 1]).backward()
        manual.append(torch.cat([p.grad.reshape(-1) for p in model.parameters()]))
    want = S.norm_test(torch.stack(manual), eta=0.3)
    got = S.norm_test(grads, eta=0.3)
    assert got.passed == want.passed and got.batch_size == want.batch_size
    assert math.isclose(got.statistic, want.statistic, rel_tol=1e-6)

    helper = S.AdaptiveBatchSize(32, test="augmented_inner_product", max_batch_size=100)
    sizes = [helper.update(grads) for _ in range(3)]
    assert sizes == sorted(sizes) and all(32 <= s <= 100 for s in sizes)
    other = S.AdaptiveBatchSize(32)
    other.load_state_dict(helper.state_dict())
    assert other.batch_size == helper.batch_size


def test_batch_never_shrinks_and_grows_with_noise():
    gen = torch.Generator().manual_seed(0)
    helper = S.AdaptiveBatchSize(8, eta=0.5)
    quiet = torch.ones(8, 10) + 0.01 * torch.randn(8, 10, generator=gen)
    assert helper.update(quiet) == 8
    noisy = torch.ones(8, 10) * 0.1 + torch.randn(8, 10, generator=gen)
    assert helper.update(noisy) > 8
    big = helper.batch_size
    assert helper.update(quiet) == big


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(initial_batch_size=1), "initial_batch_size"),
        (dict(initial_batch_size=8, test="variance"), "test"),
        (dict(initial_batch_size=8, eta=0.0), "eta"),
        (dict(initial_batch_size=8, theta=-1.0), "theta"),
        (dict(initial_batch_size=8, max_batch_size=4), "max_batch_size"),
    ],
)
def test_bad_arguments(kwargs, field):
    with pytest.raises(ValueError, match=field):
        S.AdaptiveBatchSize(**kwargs)
