"""Population optimizers: parity with the plain references, with CBXpy (the authors' package), batched closures
over an nn.Module, CBO's known answer on Rastrigin, exact resume, validation."""

from __future__ import annotations

import io
import math

import pytest
import torch
from torch import nn

from optimlab import training, zo
from tests.reference import zo_population as ref


def rastrigin(x: torch.Tensor) -> torch.Tensor:
    return (x**2 - 10 * torch.cos(2 * math.pi * x)).sum(-1) + 10 * x.shape[-1]


def _x0(d: int = 4) -> torch.Tensor:
    return torch.linspace(-1.0, 1.5, d, dtype=torch.float64)


@pytest.mark.parametrize(
    "noise,batch_size,batch_partial",
    [("isotropic", None, True), ("anisotropic", None, True), ("isotropic", 6, True), ("anisotropic", 6, False)],
)
def test_cbo_matches_reference(noise: str, batch_size: int | None, batch_partial: bool) -> None:
    hp = dict(dt=0.1, lamda=1.0, sigma=0.7, alpha=2.0, alpha_factor=1.2, alpha_max=30.0, noise=noise, seed=3)
    x = nn.Parameter(_x0())
    opt = zo.CBO([x], 10, init_scale=1.5, batch_size=batch_size, batch_partial=batch_partial, **hp)
    mine = []
    for _ in range(15):
        opt.step(lambda pop: rastrigin(pop[0]))
        mine.append(x.detach().clone())
    consensus, particles = ref.cbo(
        _x0(), rastrigin, steps=15, n=10, init_scale=1.5, batch_size=batch_size, batch_partial=batch_partial, **hp
    )
    for a, b in zip(mine, consensus):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)
    torch.testing.assert_close(opt.population()[0], torch.stack(particles), atol=1e-10, rtol=0)
    assert math.isclose(opt.alpha, min(2.0 * 1.2**15, 30.0))


def test_es_and_ga_match_reference() -> None:
    x = nn.Parameter(_x0())
    es = zo.ES([x], 8, lr=0.3, sigma=0.2, weight_decay=0.01, seed=1)
    for _ in range(12):
        es.step(lambda pop: rastrigin(pop[0]))
    expected = ref.es(_x0(), rastrigin, steps=12, n=8, lr=0.3, sigma=0.2, weight_decay=0.01, seed=1)
    torch.testing.assert_close(x.detach(), expected, atol=1e-12, rtol=0)

    y = nn.Parameter(_x0())
    ga = zo.GA([y], 9, truncation=3, sigma=0.3, elites=2, init_scale=1.0, seed=2)
    bests = ref.ga(_x0(), rastrigin, steps=10, n=9, truncation=3, sigma=0.3, elites=2, init_scale=1.0, seed=2)
    for best_x, best_f in bests:
        loss = ga.step(lambda pop: rastrigin(pop[0]))
        torch.testing.assert_close(y.detach(), best_x, atol=1e-12, rtol=0)
        assert math.isclose(float(loss), best_f, rel_tol=1e-12)
    assert all(b[1] >= a[1] - 1e-12 for a, b in zip(bests[1:], bests))  # elitism: the best loss never rises


def test_cbo_matches_cbxpy_step_by_step() -> None:
    """Same particles, same noise (CBXpy's sampler fed from our generator), same α schedule: same consensus."""
    cbx = pytest.importorskip("cbx", reason="CBXpy (pip install cbx) is the authors' package used as oracle")
    import numpy as np
    from cbx.dynamics import CBO as CBXCBO
    from cbx.noise import anisotropic_noise, isotropic_noise
    from cbx.scheduler import multiply

    n, d, steps, seed = 12, 5, 25, 4
    x0 = torch.randn(n, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2

    def f_np(x):
        return (x**2 - 10 * np.cos(2 * np.pi * x)).sum(-1) + 10 * x.shape[-1]

    for noise, cls in (("isotropic", isotropic_noise), ("anisotropic", anisotropic_noise)):
        x = nn.Parameter(torch.zeros(d, dtype=torch.float64))
        opt = zo.CBO([x], n, dt=0.05, lamda=1.0, sigma=0.8, alpha=1.0, alpha_factor=1.1, alpha_max=50.0, noise=noise,
                     seed=seed)  # fmt: skip
        opt.set_population([x0])
        g = torch.Generator().manual_seed(seed)  # the generator our CBO draws ξ from, replayed for CBXpy

        def sampler(size, g=g):
            return torch.randn(size[1:], generator=g, dtype=torch.float64).numpy()[None]

        dyn = CBXCBO(f_np, f_dim="3D", x=x0.numpy()[None].copy(), dt=0.05, lamda=1.0, sigma=0.8, alpha=1.0,
                     noise=cls(norm=np.linalg.norm, sampler=sampler), verbosity=0)  # fmt: skip
        sched = multiply(name="alpha", factor=1.1, maximum=50.0)
        for _ in range(steps):
            opt.step(lambda pop: rastrigin(pop[0]))
            dyn.step()
            sched.update(dyn)
            np.testing.assert_allclose(x.detach().numpy(), dyn.consensus[0, 0], atol=1e-10, rtol=0)
        np.testing.assert_allclose(opt.population()[0].numpy(), dyn.x[0], atol=1e-10, rtol=0)
    assert cbx is not None


def test_cbo_finds_the_global_minimum_of_rastrigin_d10() -> None:
    """Known answer: anisotropic CBO, N = 500, α annealed 1 → 1e3, from U(−3, 3)^10: ‖v_α‖∞ < 0.25."""
    x = nn.Parameter(torch.zeros(10, dtype=torch.float64))
    opt = zo.CBO([x], 500, dt=0.01, sigma=2.0, alpha=1.0, alpha_factor=1.005, alpha_max=1e3, noise="anisotropic",
                 init="uniform", init_scale=3.0, seed=0)  # fmt: skip
    for _ in range(2000):
        opt.step(lambda pop: rastrigin(pop[0]))
    assert float(x.detach().abs().max()) < 0.25


def test_population_closure_over_a_module_is_one_batched_call() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 1))
    x, y = torch.randn(32, 3), torch.randn(32, 1)
    closure = zo.population_closure(model, lambda f: ((f(x) - y) ** 2).mean())
    params = list(model.parameters())
    population = [torch.randn(5, *p.shape) for p in params]
    batched = closure(population)
    for i in range(5):
        with torch.no_grad():
            for p, pop in zip(params, population):
                p.copy_(pop[i])
            assert torch.allclose(batched[i], ((model(x) - y) ** 2).mean(), atol=1e-6)
    # a subset of the parameters: the others keep their values
    head = list(model[2].parameters())
    sub = zo.population_closure(model, lambda f: ((f(x) - y) ** 2).mean(), head)
    assert sub([torch.stack([p.detach()] * 3) for p in head]).shape == (3,)
    with pytest.raises(ValueError, match="parameters of module"):
        zo.population_closure(model, lambda f: f(x).sum(), [nn.Parameter(torch.ones(1))])


@pytest.mark.parametrize("name", ["CBO", "ES", "GA"])
def test_population_exact_resume_and_training_a_module(name: str) -> None:
    torch.manual_seed(0)
    x, y = torch.randn(64, 3), torch.randn(64, 1)

    def run(model, opt, steps):
        closure = zo.population_closure(model, lambda f: ((f(x) - y) ** 2).mean())
        return [float(opt.step(closure)) for _ in range(steps)]

    cls = getattr(zo, name)
    hp = {"CBO": dict(sigma=0.5, alpha=10.0, init_scale=0.5), "ES": dict(lr=0.05), "GA": dict(sigma=0.05)}[name]
    model = nn.Linear(3, 1)
    initial = float(((model(x) - y) ** 2).mean().detach())
    opt = cls(model.parameters(), 20, seed=1, **hp)
    run(model, opt, 5)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    buf.seek(0)
    ck = torch.load(buf, weights_only=True)
    run(model, opt, 40)
    model2 = nn.Linear(3, 1)
    model2.load_state_dict(ck["model"])
    opt2 = cls(model2.parameters(), 20, seed=99, **hp)
    opt2.load_state_dict(ck["opt"])
    run(model2, opt2, 40)
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)
    assert float(((model(x) - y) ** 2).mean()) < initial
    assert training.capabilities(opt).closure


def test_population_validation() -> None:
    p = [nn.Parameter(torch.zeros(2))]
    cases = [
        (zo.CBO, {"dt": 0.0}, "dt"),
        (zo.CBO, {"sigma": -1.0}, "sigma"),
        (zo.CBO, {"alpha_factor": 0.5}, "alpha_factor"),
        (zo.CBO, {"noise": "pink"}, "noise"),
        (zo.CBO, {"batch_size": 200}, "batch_size"),
        (zo.CBO, {"population_size": 1}, "population_size"),
        (zo.ES, {"population_size": 7}, "population_size"),
        (zo.ES, {"sigma": 0.0}, "sigma"),
        (zo.ES, {"lr": -1.0}, "lr"),
        (zo.GA, {"truncation": 500}, "truncation"),
        (zo.GA, {"elites": 20}, "elites"),
    ]
    for cls, kwargs, field in cases:
        with pytest.raises(ValueError, match=field):
            cls(p, **kwargs)
    with pytest.raises(RuntimeError, match="closure"):
        zo.CBO(p).step()
    with pytest.raises(ValueError, match="one loss per individual"):
        zo.GA(p, 4, truncation=2).step(lambda pop: pop[0].sum())
