"""Zeroth-order and population claims: C27 (zeroth-order Frank–Wolfe rate), C42 (CBO finds the global minimum of
Rastrigin where GD does not), C43 (forward gradients with local-loss guesses), C44 (a simple GA solves CartPole,
comparable to ES). The algorithms come from :mod:`optimlab.zo` through its public API."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from .. import zo
from . import _common as U
from ._framework import Check, Claim, Context, Figure, Measurements, Series, register
from ._stats import MeanAbove

# ============================================================================ C27


def _l1_ball_optimum(target: Tensor, radius: float) -> Tensor:
    """argmin_{‖x‖₁ ≤ r} ½‖x − t‖²: soft-thresholding of t at the τ that puts it on the sphere (bisection)."""
    if float(target.abs().sum()) <= radius:
        return target.clone()
    lo, hi = 0.0, float(target.abs().max())
    for _ in range(200):
        tau = (lo + hi) / 2
        lo, hi = (tau, hi) if float((target.abs() - tau).clamp(min=0).sum()) > radius else (lo, tau)
    return torch.sign(target) * (target.abs() - hi).clamp(min=0)


def _c27_run(seed: int, d: int, steps: int, noise: float) -> tuple[list[int], list[float]]:
    g = torch.Generator().manual_seed(1000 * d + seed)
    target = 3 * torch.randn(d, generator=g, dtype=torch.float64) / math.sqrt(d)
    radius = 1.0

    def f(x: Tensor) -> float:
        return float(0.5 * ((x - target) ** 2).sum())

    best = f(_l1_ball_optimum(target, radius))
    x = nn.Parameter(torch.zeros(d, dtype=torch.float64))
    opt = zo.ZOFrankWolfe([x], constraint="l1", radius=radius, seed=seed)
    checkpoints = sorted({int(round(v)) for v in np.geomspace(10, steps, 25)})
    ts, gaps = [], []
    for t in range(1, steps + 1):
        xi = noise * torch.randn(d, generator=g, dtype=torch.float64)  # one sample ξ per step, both evaluations
        opt.step(lambda xi=xi: 0.5 * ((x - target) ** 2).sum() + xi @ x)
        if t in checkpoints:
            ts.append(t)
            gaps.append(max(f(x.detach()) - best, 1e-300))
    return ts, gaps


def _c27_experiment(ctx: Context) -> Measurements:
    steps = ctx.pick(100, 5_000)
    dims = (10, 100)
    m = Measurements()
    series = []
    for seed in ctx.iterate(ctx.seeds, desc="C27 seeds"):
        final = {}
        for d in dims:
            ts, gaps = _c27_run(seed, d, steps, noise=0.1)
            keep = [i for i, t in enumerate(ts) if t >= steps / 20]  # the asymptotic part of the curve
            slope = float(np.polyfit(np.log([ts[i] for i in keep]), np.log([gaps[i] for i in keep]), 1)[0])
            m.add(f"slope_d{d}", slope)
            m.add("slope_above_-0.5", slope + 0.5)
            m.add("slope_below_-0.2", -0.2 - slope)
            final[d] = gaps[-1]
            m.table.append({"seed": seed, "d": d, "slope": round(slope, 3), "final gap": f"{gaps[-1]:.3g}"})
            if seed == ctx.seeds[0]:
                series.append(Series(f"d = {d}", [float(t) for t in ts], gaps))
        m.add("log_gap_ratio_d100_d10", math.log(final[100] / final[10]))
    m.figure = Figure("C27: ZO Frank–Wolfe primal gap, ℓ1 ball (first seed)", series, "step", "gap", True, True)
    m.info = {"steps": steps, "dims": list(dims), "noise": 0.1, "radius": 1.0}
    return m


register(
    Claim(
        id="C27",
        title="Zeroth-order Frank–Wolfe converges at O(T^-1/3), slower in higher dimension",
        paper=(
            "Sahu, Zaheer & Kar (2019), Towards Gradient Free and Projection Free Stochastic Optimization, "
            "arXiv:1810.03233 (#203)"
        ),
        statement=(
            "With one two-point random-direction estimate per step, stochastic Frank–Wolfe reaches a primal gap "
            "O(d^{1/3}/T^{1/3}) on convex problems: a log–log slope near −1/3, and a larger gap for larger d."
        ),
        setting=(
            "F(x; ξ) = ½‖x − t‖² + ξᵀx, ξ ~ N(0, 0.1² I) resampled each step, over the ℓ1 ball of radius 1 "
            "(optimum on the boundary, known in closed form); d ∈ {10, 100}; the paper's schedules; 5,000 steps; "
            "slope fitted on steps ≥ T/20. Replicates: (seed, d) for the slopes, seeds for the d comparison."
        ),
        experiment=_c27_experiment,
        checks=(
            Check("slope above −0.5", "fitted slope + 0.5 > 0", "slope_above_-0.5", MeanAbove(0.0)),
            Check("slope below −0.2", "−0.2 − fitted slope > 0", "slope_below_-0.2", MeanAbove(0.0)),
            Check(
                "larger d slower",
                "log(gap at T for d = 100 / gap for d = 10) > 0",
                "log_gap_ratio_d100_d10",
                MeanAbove(0.0),
            ),
        ),
        family="zeroth_order",
        seeds=5,
        expected_minutes=2.0,
    )
)

# ============================================================================ C42


def rastrigin(x: Tensor) -> Tensor:
    """Σ x_i² − 10 cos(2π x_i) + 10 (global minimum 0 at x = 0), over the last dimension."""
    return (x**2 - 10 * torch.cos(2 * math.pi * x)).sum(-1) + 10 * x.shape[-1]


def _c42_cbo(seed: int, n: int, d: int, steps: int) -> float:
    x = nn.Parameter(torch.zeros(d, dtype=torch.float64))
    opt = zo.CBO([x], n, dt=0.01, sigma=2.0, alpha=1.0, alpha_factor=1.005, alpha_max=1e3, noise="anisotropic",
                 init="uniform", init_scale=3.0, seed=seed)  # fmt: skip
    for _ in range(steps):
        opt.step(lambda pop: rastrigin(pop[0]))
    return float(x.detach().abs().max())


def _c42_gd(seed: int, runs: int, d: int, steps: int, lr: float = 0.002) -> Tensor:
    """Plain gradient descent from ``runs`` uniform starts in [−3, 3]^d (all runs at once); ‖x_T‖∞ per run."""
    g = torch.Generator().manual_seed(50_000 + seed)
    x = (torch.rand(runs, d, generator=g, dtype=torch.float64) * 6 - 3).requires_grad_()
    for _ in range(steps):
        (grad,) = torch.autograd.grad(rastrigin(x).sum(), x)
        with torch.no_grad():
            x -= lr * grad
    return x.detach().abs().max(-1).values


def _c42_experiment(ctx: Context) -> Measurements:
    d = ctx.pick(4, 10)
    steps = ctx.pick(150, 2000)
    sizes = ctx.pick((50,), (100, 500))
    m = Measurements()
    for seed in ctx.iterate(ctx.seeds, desc="C42 seeds"):
        row = {"seed": seed}
        for n in sizes:
            err = _c42_cbo(seed, n, d, steps)
            m.add(f"cbo_success_N{n}", float(err < 0.25))
            row[f"CBO N={n} ‖v‖∞"] = round(err, 3)
        gd = _c42_gd(seed, 20, d, steps)
        gd_success = float((gd < 0.25).double().mean())
        m.add("gd_success", gd_success)
        m.add("cbo_minus_gd", m.values[f"cbo_success_N{sizes[-1]}"][-1] - gd_success)
        row["GD success (20 starts)"] = gd_success
        m.table.append(row)
    rates = [float(np.mean(m.values[f"cbo_success_N{n}"])) for n in sizes]
    m.figure = Figure(
        "C42: success rate on Rastrigin (‖v_α‖∞ < 0.25)",
        [Series("CBO", [float(n) for n in sizes], rates),
         Series("GD (same N as starts)", [float(n) for n in sizes], [float(np.mean(m["gd_success"]))] * len(sizes))],
        "particles N", "success rate",
    )  # fmt: skip
    m.info = {"d": d, "steps": steps, "particle counts": list(sizes), "gd lr": 0.002}
    return m


register(
    Claim(
        id="C42",
        title="CBO finds the global minimizer of Rastrigin where gradient descent does not",
        paper=(
            "Riedl, Klock, Geldhauser & Fornasier (2023), Gradient is All You Need?, arXiv:2306.09778 (#82); "
            "CBO: Pinnau et al. (2017), arXiv:1604.06218; anisotropic noise: Carrillo et al. (2021), arXiv:1909.09249"
        ),
        statement=(
            "Consensus-based optimization converges to the global minimizer of a nonconvex function with many local "
            "minima (Rastrigin, d = 10) in most runs, while gradient descent from random starts gets stuck."
        ),
        setting=(
            "Rastrigin d = 10, particles U(−3, 3)^d, anisotropic CBO (λ = 1, σ = 2, dt = 0.01, α = 1 annealed ×1.005 "
            "per step to 1e3), N ∈ {100, 500}, 2,000 steps; success ‖v_α‖∞ < 0.25. GD: lr 0.002, 2,000 steps from 20 "
            "uniform starts per seed. 12 seeds. The drift–gradient correlation of the sheet is not measured."
        ),
        experiment=_c42_experiment,
        checks=(
            Check("CBO N=500 succeeds ≥ 80%", "mean success (N = 500) > 0.8", "cbo_success_N500", MeanAbove(0.8)),
            Check("GD much lower", "CBO success − GD success rate > 0.5", "cbo_minus_gd", MeanAbove(0.5)),
            Check(
                "CBO N=100", "success with N = 100 (shown only)", "cbo_success_N100", MeanAbove(0.8), role="report"
            ),  # fmt: skip
        ),
        family="zeroth_order",
        seeds=12,
        expected_minutes=4.0,
    )
)

# ============================================================================ C43


class _Blocks(nn.Module):
    """MLP 64-32-32-10 on digits, with a linear readout after each hidden block (the local losses' heads)."""

    def __init__(self) -> None:
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(64, 32), nn.Linear(32, 32), nn.Linear(32, 10)])
        self.readouts = nn.ModuleList([nn.Linear(32, 10), nn.Linear(32, 10)])

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.blocks):
            x = layer(x)
            if i < len(self.blocks) - 1:
                x = torch.relu(x)
        return x


def _local_guesses(model: _Blocks, x: Tensor, y: Tensor) -> tuple[list[Tensor], Tensor]:
    """Fournier et al.'s local-loss guess: for each block, the gradient of a cross-entropy through its own readout
    with the block's input detached (the last block's local loss is the loss itself); also returns the readouts'
    local-loss gradients (the readouts train on their local losses)."""
    guesses, readout_loss = [], torch.zeros(())
    h = x
    for i, layer in enumerate(model.blocks):
        out = layer(h.detach())
        last = i == len(model.blocks) - 1
        act = out if last else torch.relu(out)
        local = nn.functional.cross_entropy(act if last else model.readouts[i](act), y)
        guesses += list(torch.autograd.grad(local, list(layer.parameters()), retain_graph=not last))
        if not last:
            readout_loss = readout_loss + nn.functional.cross_entropy(model.readouts[i](act.detach()), y)
        h = act
    return guesses, readout_loss


def _c43_run(seed: int, method: str, lr: float, steps: int, x: Tensor, y: Tensor, xt: Tensor, yt: Tensor) -> dict:
    torch.manual_seed(seed)
    model = _Blocks()
    params = [p for layer in model.blocks for p in layer.parameters()]
    blocks = [[0, 1], [2, 3], [4, 5]]
    names = [f"blocks.{i}.{k}" for i in range(3) for k in ("weight", "bias")]

    def fn(ps, xb, yb):
        return nn.functional.cross_entropy(torch.func.functional_call(model, dict(zip(names, ps)), (xb,)), yb)

    opt = torch.optim.SGD(params, lr=lr)
    readout_opt = torch.optim.SGD(model.readouts.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(10_000 + seed)
    cosines = []
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (64,), generator=gen)
        xb, yb = x[idx], y[idx]
        true = torch.autograd.grad(fn(params, xb, yb), params)  # measurement only
        if method == "local":
            guesses, readout_loss = _local_guesses(model, xb, yb)
            readout_opt.zero_grad()
            readout_loss.backward()
            readout_opt.step()
            zo.forward_grad_(params, lambda ps, xb=xb, yb=yb: fn(ps, xb, yb), guesses, blocks=blocks)
        else:
            zo.forward_grad_(params, lambda ps, xb=xb, yb=yb: fn(ps, xb, yb), generator=gen)
        est = torch.cat([p.grad.reshape(-1) for p in params])
        cosines.append(float(nn.functional.cosine_similarity(est, torch.cat([t.reshape(-1) for t in true]), dim=0)))
        opt.step()
    return {
        "cos": float(np.nanmean(cosines)) if np.isfinite(cosines).any() else math.nan,
        "acc": U.accuracy(model, xt, yt),
        "lr": lr,
        "dim": int(sum(p.numel() for p in params)),
    }


def _c43_experiment(ctx: Context) -> Measurements:
    steps = ctx.pick(8, 300)
    lrs = ctx.pick([0.1], [0.003, 0.03, 0.3])
    xall, yall = U.digits()
    m = Measurements()
    dim, series = 0, []
    for seed in ctx.iterate(ctx.seeds, desc="C43 seeds"):
        tr, te = U.split_indices(xall.shape[0], [0.8, 0.2], seed)
        res = {}
        for method in ("local", "random"):
            runs = [_c43_run(seed, method, lr, steps, xall[tr], yall[tr], xall[te], yall[te]) for lr in lrs]
            best = max(runs, key=lambda r: r["acc"])
            if seed == ctx.seeds[0]:
                series.append(Series(method, [float(lr) for lr in lrs], [r["acc"] for r in runs]))
            res[method] = (float(np.nanmean([r["cos"] for r in runs])), best["acc"], best["lr"])
            dim = runs[0]["dim"]
        m.add("local_cos_times_sqrt_d", res["local"][0] * math.sqrt(dim))
        m.add("random_cos_times_sqrt_d", res["random"][0] * math.sqrt(dim))
        m.add("accuracy_gain", res["local"][1] - res["random"][1])
        m.table.append({"seed": seed, "cos local": round(res["local"][0], 4), "cos random": round(res["random"][0], 4),
                        "acc local": round(res["local"][1], 3), "acc random": round(res["random"][1], 3),
                        "best lr local": res["local"][2], "best lr random": res["random"][2]})  # fmt: skip
    m.figure = Figure("C43: test accuracy after training on forward gradients (first seed)", series, "lr",
                      "test accuracy", logx=True)  # fmt: skip
    m.info = {"steps": steps, "lrs": lrs, "d": dim, "1/sqrt(d)": 1 / math.sqrt(dim)}
    return m


register(
    Claim(
        id="C43",
        title="Forward gradients with local-loss guesses beat random guesses",
        paper=(
            "Fournier, Rivaud, Belilovsky, Eickenberg & Oyallon (2023), Can Forward Gradient Match Backpropagation?, "
            "arXiv:2306.06968 (#142)"
        ),
        statement=(
            "Projecting the gradient on a guess given by a local auxiliary loss gives a forward-gradient estimate far "
            "better aligned with the true gradient than a random guess (cosine ≈ 1/√d) and trains faster."
        ),
        setting=(
            "load_digits, MLP 64-32-32-10 (d ≈ 3.5k), batch 64, SGD on the forward-gradient estimate for 300 "
            "steps with the best of lr ∈ {0.003, 0.03, 0.3} per method; local guesses: per-block gradients of a "
            "cross-entropy through a linear readout (trained on its local loss, block input detached), projected "
            "block by block (one JVP per block); random: (∇f·v)v, v ~ N(0, I). Cosine averaged over steps and lrs "
            "(steps after a divergence, non-finite, left out)."
        ),
        experiment=_c43_experiment,
        checks=(
            Check(
                "local cosine ≫ 1/√d", "cosine(local estimate, ∇f) · √d > 5", "local_cos_times_sqrt_d", MeanAbove(5.0)
            ),  # fmt: skip
            Check(
                "faster training", "test accuracy after N steps: local − random > 0", "accuracy_gain", MeanAbove(0.0)
            ),  # fmt: skip
            Check(
                "random cosine ≈ 1/√d",
                "cosine(random estimate, ∇f) · √d (shown only)",
                "random_cos_times_sqrt_d",
                MeanAbove(0.0),
                role="report",
            ),  # fmt: skip
        ),
        family="zeroth_order",
        seeds=4,
        expected_minutes=3.0,
    )
)

# ============================================================================ C44


def cartpole_return(policy, start: Tensor, max_steps: int) -> Tensor:
    """Return (steps survived, ≤ ``max_steps``) of a deterministic policy on CartPole from state ``start`` (4,).

    The classic cart-pole of Barto, Sutton & Anderson (1983) as in Gym's CartPole-v1: Euler steps of 0.02 s, force
    ±10 N, cart 1 kg, pole 0.1 kg and half-length 0.5 m; the episode ends when |x| > 2.4 or |θ| > 12°. Written with
    masks (no data-dependent branches) so that it runs under ``vmap`` over a population of policies."""
    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    total_mass, polemass_length = masscart + masspole, masspole * length
    s = start
    alive = torch.ones((), dtype=start.dtype)
    ret = torch.zeros((), dtype=start.dtype)
    for _ in range(max_steps):
        x, x_dot, theta, theta_dot = s.unbind(-1)
        logits = policy(s)
        force = torch.where(logits[1] > logits[0], force_mag, -force_mag)
        cos, sin = torch.cos(theta), torch.sin(theta)
        temp = (force + polemass_length * theta_dot**2 * sin) / total_mass
        theta_acc = (gravity * sin - cos * temp) / (length * (4.0 / 3.0 - masspole * cos**2 / total_mass))
        x_acc = temp - polemass_length * theta_acc * cos / total_mass
        s = torch.stack(
            [x + tau * x_dot, x_dot + tau * x_acc, theta + tau * theta_dot, theta_dot + tau * theta_acc], -1
        )
        ret = ret + alive
        done = (s[0].abs() > 2.4) | (s[2].abs() > 12 * 2 * math.pi / 360)
        alive = alive * (~done).to(alive.dtype)
    return ret


def _policy() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 2))


def _c44_run(seed: int, method: str, generations: int, n: int, max_steps: int) -> tuple[list[float], float]:
    torch.manual_seed(seed)
    model = _policy()
    g = torch.Generator().manual_seed(7_000 + seed)
    if method == "ga":
        opt = zo.GA(model.parameters(), n, truncation=10, sigma=0.1, init_scale=1.0, seed=seed)
    else:
        opt = zo.ES(model.parameters(), n, lr=0.1, sigma=0.1, seed=seed)
    curve = []
    for _ in range(generations):
        start = torch.rand(4, generator=g) * 0.1 - 0.05  # one start per generation, shared by the population
        closure = zo.population_closure(model, lambda f, s=start: -cartpole_return(f, s, max_steps))
        opt.step(closure)
        curve.append(float(cartpole_return(model, start, max_steps)))  # the current answer (GA best / ES mean)
    with torch.no_grad():
        evals = [float(cartpole_return(model, torch.rand(4, generator=g) * 0.1 - 0.05, max_steps)) for _ in range(10)]
    return curve, float(np.mean(evals))


def _c44_experiment(ctx: Context) -> Measurements:
    generations = ctx.pick(3, 40)
    n = ctx.pick(20, 100)
    max_steps = ctx.pick(50, 500)
    solved = 0.95 * max_steps  # CartPole-v1's "solved" is 475 of 500
    m = Measurements()
    series = []
    for seed in ctx.iterate(ctx.seeds, desc="C44 seeds"):
        out, reach = {}, {}
        for method in ("ga", "es"):
            curve, final = _c44_run(seed, method, generations, n, max_steps)
            out[method] = final
            episodes = [float(n * (i + 1)) for i in range(len(curve))]
            reach[method] = U.first_reach(episodes, curve, max_steps, below=False)
            m.add(f"{method}_final_return", final)
            m.add(f"{method}_solved", float(final >= solved))
            if seed == ctx.seeds[0]:
                series.append(Series(method.upper(), [float(n * (i + 1)) for i in range(len(curve))], curve))
        m.add("ga_minus_es_over_max", (out["ga"] - out["es"]) / max_steps)
        m.add("log_episodes_es_over_ga", U.censored_log_ratio(reach["es"], reach["ga"], 2.0 * n * generations))
        m.table.append({"seed": seed, "GA return": out["ga"], "ES return": out["es"],
                        "GA episodes to max": reach["ga"], "ES episodes to max": reach["es"]})  # fmt: skip
    m.figure = Figure("C44: CartPole return of the current policy (first seed)", series, "episodes", "return")
    m.info = {"generations": generations, "population": n, "episodes per method": generations * n,
              "max steps": max_steps, "REINFORCE": "not run"}  # fmt: skip
    return m


register(
    Claim(
        id="C44",
        title="A simple GA solves CartPole within the budget of ES",
        paper=(
            "Such, Madhavan, Conti, Lehman, Stanley & Clune (2017), Deep Neuroevolution: Genetic Algorithms Are a "
            "Competitive Alternative for Training Deep Neural Networks for Reinforcement Learning, arXiv:1712.06567 "
            "(#309); ES: Salimans et al. (2017), arXiv:1703.03864"
        ),
        statement=(
            "A gradient-free GA (truncation selection, Gaussian mutations, elitism, no crossover) reaches the maximum "
            "return on CartPole in most seeds, with a return comparable to OpenAI-ES at an equal episode budget."
        ),
        setting=(
            "CartPole-v1 dynamics written in torch (500-step cap), policy MLP 4-16-2 (argmax action); GA N = 100, top "
            "10, σ = 0.1, 1 elite; ES N = 100 antithetic, σ = 0.1, lr 0.1, centred ranks; 40 generations = 4,000 "
            "episodes each, the population evaluated in one vmap call per generation; final return = mean of 10 fresh "
            "episodes; solved = ≥ 475. REINFORCE is not run."
        ),
        experiment=_c44_experiment,
        checks=(
            Check(
                "GA solves in most seeds",
                "fraction of seeds with final return ≥ 475 > 0.5",
                "ga_solved",
                MeanAbove(0.5),
            ),  # fmt: skip
            Check("comparable to ES", "(GA − ES final return)/500 > −0.1", "ga_minus_es_over_max", MeanAbove(-0.1)),
            Check("ES solves", "ES fraction solved (shown only)", "es_solved", MeanAbove(0.5), role="report"),
            Check(
                "GA reaches the maximum sooner",
                "log(episodes ES needs / episodes GA needs) to first reach the maximum return (shown only; "
                "a miss counts as twice the budget)",
                "log_episodes_es_over_ga",
                MeanAbove(0.0),
                role="report",
            ),
        ),
        family="zeroth_order",
        seeds=5,
        expected_minutes=4.0,
    )
)
