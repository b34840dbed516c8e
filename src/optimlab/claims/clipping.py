"""Clipping and robust-estimation claims: C13 (clipping prevents exploding gradients in RNNs), C14 (clipped SGD is
biased under asymmetric noise), C15 (clipping and medians converge under heavy-tailed noise)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .. import grad as G
from . import _common as U
from ._framework import Check, Claim, Context, Figure, Measurements, Series, downsample, register
from ._stats import AllPass, MeanAbove

# ============================================================================ C13


class _TanhRNN(nn.Module):
    """h_t = tanh(W_x x_t + W_h h_{t−1} + b), prediction w·h_T + c; W_h Gaussian rescaled to spectral radius ρ."""

    def __init__(self, hidden: int, spectral_radius: float, generator: torch.Generator) -> None:
        super().__init__()
        self.rnn = nn.RNN(2, hidden, batch_first=True, nonlinearity="tanh")
        self.out = nn.Linear(hidden, 1)
        with torch.no_grad():
            w = torch.randn(hidden, hidden, generator=generator) / math.sqrt(hidden)
            w *= spectral_radius / torch.linalg.eigvals(w).abs().max()
            self.rnn.weight_hh_l0.copy_(w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(x)[0][:, -1])


def adding_problem(batch: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Hochreiter & Schmidhuber's adding problem: inputs (value ~ U(0, 1), marker), two markers (one in each half);
    the target is the sum of the two marked values (a constant predictor reaches MSE 1/6)."""
    v = torch.rand(batch, length, generator=generator)
    marks = torch.zeros(batch, length)
    rows = torch.arange(batch)
    marks[rows, torch.randint(0, length // 2, (batch,), generator=generator)] = 1.0
    marks[rows, torch.randint(length // 2, length, (batch,), generator=generator)] = 1.0
    return torch.stack([v, marks], dim=-1), (v * marks).sum(1, keepdim=True)


def _c13_run(seed: int, rho: float, lr: float, clip: float | None, steps: int, length: int) -> dict:
    torch.manual_seed(seed)
    init_gen = torch.Generator().manual_seed(10_000 + seed)
    model = _TanhRNN(64, rho, init_gen)
    eval_x, eval_y = adding_problem(512, length, torch.Generator().manual_seed(20_000 + seed))
    data_gen = torch.Generator().manual_seed(30_000 + seed)
    opt = U.make_optimizer("sgd", model.parameters(), lr=lr, momentum=0.0, nonfinite="propagate")

    def eval_loss() -> float:
        with torch.no_grad():
            return float(nn.functional.mse_loss(model(eval_x), eval_y))

    initial = eval_loss()
    max_norm, diverged, curve = 0.0, False, []
    for step in range(steps):
        x, y = adding_problem(32, length, data_gen)
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        stats = G.clip_grad_norm_(model.parameters(), clip if clip is not None else math.inf)
        max_norm = max(max_norm, float(stats.total_norm))
        lv = float(loss.detach())
        if not math.isfinite(lv) or lv > 10 * initial:
            diverged = True
            break
        opt.step()
        if step % 10 == 0:
            curve.append((step, lv))
    final = eval_loss() if not diverged else math.inf
    if not math.isfinite(final) or final > 10 * initial:
        diverged = True
    return {"initial": initial, "final": final, "diverged": diverged, "max_norm": max_norm, "curve": curve}


def _c13_experiment(ctx: Context) -> Measurements:
    steps = ctx.pick(40, 1000)
    length = ctx.pick(20, 50)
    rhos = ctx.pick([1.5], [1.5, 3.0])
    lrs = [0.01, 0.1]
    m = Measurements()
    curves: dict[str, list] = {}
    runs = [(seed, rho, lr) for seed in ctx.seeds for rho in rhos for lr in lrs]
    for seed, rho, lr in ctx.iterate(runs, desc="C13 runs"):
        clipped = _c13_run(seed, rho, lr, 1.0, steps, length)
        plain = _c13_run(seed, rho, lr, None, steps, length)
        cap = 10 * plain["initial"]  # a diverged run counts as the divergence threshold
        m.add("clipped_diverged", float(clipped["diverged"]))
        m.add("plain_diverged", float(plain["diverged"]))
        m.add("divergence_difference", float(plain["diverged"]) - float(clipped["diverged"]))
        m.add("loss_advantage", min(plain["final"], cap) - min(clipped["final"], cap))
        m.add("clipped_final", clipped["final"])
        m.add("plain_final", plain["final"])
        m.add("plain_max_grad_norm", plain["max_norm"])
        m.add("clipped_max_grad_norm", clipped["max_norm"])
        m.table.append(
            {
                "seed": seed,
                "rho": rho,
                "lr": lr,
                "initial": round(plain["initial"], 4),
                "clipped final": round(clipped["final"], 4),
                "plain final": plain["final"] if math.isinf(plain["final"]) else round(plain["final"], 4),
                "plain diverged": plain["diverged"],
                "clipped diverged": clipped["diverged"],
                "plain max ‖g‖": f"{plain['max_norm']:.3g}",
            }
        )
        if seed == ctx.seeds[0]:
            for label, run in (("clipped", clipped), ("plain", plain)):
                curves[f"{label} ρ={rho} lr={lr}"] = run["curve"]
    series = [Series(k, [s for s, _ in c], [v for _, v in c]) for k, c in curves.items() if c]
    m.figure = Figure(
        "C13: training loss, tanh RNN on the adding problem (first seed)", series, "step", "MSE", logy=True
    )
    m.info = {"steps": steps, "length": length, "spectral radii": rhos, "lrs": lrs, "clip": 1.0}
    return m


register(
    Claim(
        id="C13",
        title="Gradient-norm clipping prevents exploding gradients in RNNs",
        paper=(
            "Pascanu, Mikolov & Bengio (2013), On the difficulty of training recurrent neural networks, "
            "arXiv:1211.5063 (#27)"
        ),
        statement=(
            "With exploding gradients, plain SGD spikes or diverges while SGD with global-norm clipping does not "
            "diverge and reaches a lower loss at the same learning rate."
        ),
        setting=(
            "Vanilla tanh RNN (hidden 64) on the adding problem (length 50, batch 32), recurrent weights initialised "
            "at spectral radius 1.5 and 3, plain SGD with lr ∈ {0.01, 0.1}, 1,000 steps, clip c = 1; divergence = "
            "non-finite loss or a loss above 10× the initial loss. Replicates: (seed, ρ, lr)."
        ),
        experiment=_c13_experiment,
        checks=(
            Check("clipped never diverges", "no clipped run diverges", "clipped_diverged", AllPass(0.0)),
            Check(
                "plain diverges more",
                "plain SGD diverges more often than clipped SGD at the same (seed, ρ, lr) (value: 1 − 0 per pair)",
                "divergence_difference",
                MeanAbove(0.0),
            ),
            Check(
                "clipped reaches lower loss",
                "final evaluation MSE: plain − clipped > 0 at the same (seed, ρ, lr); a diverged run counts as 10× "
                "the initial loss",
                "loss_advantage",
                MeanAbove(0.0),
            ),
        ),
        family="clipping",
        seeds=5,
        quick_seeds=2,
        requires=("sgd",),
        expected_minutes=2.5,
    )
)


# ============================================================================ C14


def _c14_experiment(ctx: Context) -> Measurements:
    steps = ctx.pick(20_000, 100_000)
    etas = np.array([1e-1, 1e-2, 1e-3])
    c = 1.0
    s = len(ctx.seeds)
    x_clip = np.zeros((s, etas.size))
    x_sgd = np.zeros((s, etas.size))
    sum_clip = np.zeros_like(x_clip)
    sum_sgd = np.zeros_like(x_sgd)
    burn = steps // 2  # average the second half of the iterates
    rngs = [np.random.default_rng(seed) for seed in ctx.seeds]
    chunk = 5000
    for start in ctx.iterate(range(0, steps, chunk), desc="C14 chunks"):
        n = min(chunk, steps - start)
        # ξ = +9 w.p. 0.1, −1 w.p. 0.9: mean 0, asymmetric; the same noise drives both methods
        noise = np.stack([np.where(r.random((n, etas.size)) < 0.1, 9.0, -1.0) for r in rngs], axis=1)
        for i in range(n):
            xi = noise[i]
            x_clip -= etas * np.clip(x_clip + xi, -c, c)  # in 1-D, norm clipping is clamping to [−c, c]
            x_sgd -= etas * (x_sgd + xi)
            if start + i >= burn:
                sum_clip += x_clip
                sum_sgd += x_sgd
    avg_clip = sum_clip / (steps - burn)
    avg_sgd = sum_sgd / (steps - burn)
    # deterministic clipped GD from x0 = 100 for several thresholds: converges to the optimum 0
    cs = np.array([0.1, 1.0, 10.0])
    x = np.full(cs.size, 100.0)
    for _ in range(ctx.pick(15_000, 20_000)):
        x -= 0.1 * np.clip(x, -cs, cs)
    m = Measurements()
    for k in range(s):
        m.add("clipped_bias_small_eta", abs(avg_clip[k, -1]))
        m.add("bias_ratio_small_to_large_eta", abs(avg_clip[k, -1]) / abs(avg_clip[k, 0]))
        m.add("sgd_slack", 0.05 - abs(avg_sgd[k, -1]))
        m.add("clipped_minus_predicted", avg_clip[k, -1] - 8 / 9)
        for j, eta in enumerate(etas):
            m.table.append(
                {
                    "seed": ctx.seeds[k],
                    "eta": eta,
                    "clipped avg iterate": round(avg_clip[k, j], 4),
                    "SGD avg iterate": round(avg_sgd[k, j], 4),
                }
            )
    for ci, xi in zip(cs, x):
        m.add("deterministic_final_abs", abs(xi))
        m.table.append({"deterministic c": ci, "final |x|": float(abs(xi))})
    m.figure = Figure(
        "C14: averaged iterate vs step size (median over seeds)",
        [
            Series("clipped SGD (c = 1)", list(etas), list(np.median(avg_clip, axis=0))),
            Series("SGD", list(etas), list(np.median(avg_sgd, axis=0))),
        ],
        xlabel="η",
        ylabel="mean of x_t (second half)",
        logx=True,
        hlines=[(8 / 9, "predicted clipped limit 8/9"), (0.0, "optimum")],
    )
    m.info = {"steps": steps, "etas": list(etas), "predicted clipped fixed point": 8 / 9}
    return m


register(
    Claim(
        id="C14",
        title="Clipped SGD is biased under asymmetric noise; deterministic clipping is not",
        paper=(
            "Koloskova, Hendrikx & Stich (2023), Revisiting Gradient Clipping: Stochastic bias and tight convergence "
            "guarantees, arXiv:2305.01588 (#185)"
        ),
        statement=(
            "With stochastic gradients, clipped SGD does not converge to the optimum even for tiny steps (a bias that "
            "does not shrink as η → 0); unclipped SGD's bias vanishes; deterministic clipped GD converges for any c."
        ),
        setting=(
            "f(x) = ½x², g = x + ξ with ξ = −1 w.p. 0.9 and +9 w.p. 0.1; clipped SGD (c = 1) and SGD with "
            "η ∈ {1e-1, 1e-2, 1e-3}, 10⁵ steps, iterates averaged over the second half; deterministic clipped GD "
            "(η = 0.1) from x₀ = 100 with c ∈ {0.1, 1, 10}. The clipped fixed point solves "
            "0.9·(x − 1) + 0.1·1 = 0, x = 8/9."
        ),
        experiment=_c14_experiment,
        checks=(
            Check(
                "clipped bias ≠ 0",
                "the averaged clipped-SGD iterate at η = 1e-3 is farther than 0.1 from the optimum",
                "clipped_bias_small_eta",
                MeanAbove(0.1),
            ),
            Check(
                "bias does not shrink",
                "bias(η = 1e-3) / bias(η = 1e-1) > 0.5",
                "bias_ratio_small_to_large_eta",
                MeanAbove(0.5),
            ),
            Check(
                "unclipped bias vanishes",
                "0.05 − |averaged SGD iterate at η = 1e-3| > 0",
                "sgd_slack",
                MeanAbove(0.0),
            ),
            Check(
                "deterministic clipping converges",
                "deterministic clipped GD ends within 1e-6 of the optimum for every c",
                "deterministic_final_abs",
                AllPass(1e-6, min_n=3),
            ),
            Check(
                "bias matches 8/9",
                "averaged clipped iterate at η = 1e-3 minus the predicted 8/9 (reported)",
                "clipped_minus_predicted",
                MeanAbove(-0.05),
                role="report",
            ),
        ),
        family="clipping",
        seeds=5,
        quick_seeds=2,
        expected_minutes=0.5,
    )
)


# ============================================================================ C15

C15_METHODS = ("sgd", "clipped", "batch_median", "iterate_median")


def _c15_run(seed: int, noise: str, method: str, steps: int, d: int = 10, batch: int = 8) -> dict:
    g = torch.Generator().manual_seed(seed)
    w_star = torch.randn(d, generator=g, dtype=torch.float64)
    data_rng = np.random.default_rng([seed, 1 if noise == "cauchy" else 0])
    nu = 1.0 if noise == "cauchy" else 1.5
    x = torch.from_numpy(data_rng.standard_normal((steps, batch, d)))
    eps = torch.from_numpy(data_rng.standard_t(nu, size=(steps, batch)))
    y = x @ w_star + eps
    w = torch.zeros(d, dtype=torch.float64)
    lr, clip, gamma = 0.05, 1.0, 0.5
    median_state = [torch.zeros(d, dtype=torch.float64)]
    errors = []
    for t in range(steps):
        per_sample = x[t] * (x[t] @ w - y[t])[:, None]  # ∇ ½(xᵀw − y)² per sample, (B, d)
        if method == "sgd":
            direction = per_sample.mean(0)
        elif method == "clipped":
            direction = G.clipped_mean(per_sample, clip)
        elif method == "batch_median":
            direction = G.coordinate_median(per_sample)
        else:  # the median of the gradient stream, tracked by stochastic proximal-point steps
            G.median_tracking_step_(median_state, [per_sample.mean(0)], gamma)
            direction = median_state[0]
        w = w - lr * direction
        errors.append(float(torch.linalg.vector_norm(w - w_star)))
    late = errors[steps // 2 :]
    worst = max(late) if all(map(math.isfinite, late)) else math.inf
    start = float(torch.linalg.vector_norm(w_star))  # the distance from the start w0 = 0
    return {"worst_late": worst, "worst_late_rel": worst / start, "final": errors[-1], "curve": errors}


def _c15_experiment(ctx: Context) -> Measurements:
    steps = ctx.pick(300, 1500)
    noises = ("student_t_1.5", "cauchy")
    m = Measurements()
    curves: dict[str, list[list[float]]] = {k: [] for k in C15_METHODS}
    bound = 1.0  # relative to the starting distance ‖w0 − w*‖
    for seed in ctx.iterate(ctx.seeds, desc="C15 seeds"):
        for noise in noises:
            res = {meth: _c15_run(seed, noise, meth, steps) for meth in C15_METHODS}
            for meth, r in res.items():
                m.add(f"{meth}_worst", r["worst_late_rel"])
                curves[meth].append(r["curve"])
            for meth in C15_METHODS[1:]:
                m.add(f"{meth}_vs_sgd", math.log(res["sgd"]["worst_late"] / res[meth]["worst_late"]))
    sgd = np.asarray(m["sgd_worst"])
    m.info = {
        "steps": steps,
        "bound on the late error (relative to ‖w0 − w*‖)": bound,
        "SGD worst-late relative error: median / max over replicates": [float(np.median(sgd)), float(sgd.max())],
        "replicates": "(seed, noise) pairs, noise ∈ {Student-t ν=1.5, Cauchy}",
    }
    step_axis = list(range(1, steps + 1))
    m.figure = Figure(
        "C15: ‖w_t − w*‖, worst replicate per method",
        [Series(k, *downsample(step_axis, np.max(np.asarray(v), axis=0))) for k, v in curves.items()],
        xlabel="step",
        ylabel="max over replicates of ‖w_t − w*‖",
        logy=True,
        hlines=[(3.0, "‖w*‖ ≈ 3 (start distance)")],
    )
    return m


_C15_CHECKS = []
for _meth, _label in (
    ("clipped", "clipped SGD"),
    ("batch_median", "batch median"),
    ("iterate_median", "iterate median"),
):
    _C15_CHECKS.append(
        Check(
            f"{_label} bounded",
            f"{_label}: late in training (t ≥ T/2) the error never exceeds the starting error: "
            "max_t ‖w_t − w*‖ / ‖w_0 − w*‖ ≤ 1 in every replicate",
            f"{_meth}_worst",
            AllPass(1.0),
        )
    )
    _C15_CHECKS.append(
        Check(
            f"{_label} beats SGD",
            f"log(worst late error of SGD / of {_label}) > 0 (plain SGD shows heavy-tailed excursions)",
            f"{_meth}_vs_sgd",
            MeanAbove(0.0, method="bootstrap"),
        )
    )

register(
    Claim(
        id="C15",
        title="Clipping and median estimators converge under heavy-tailed noise",
        paper=(
            "Schaipp, Garrigos, Simsekli & Gower (2024), SGD with Clipping is Secretly Estimating the Median "
            "Gradient, arXiv:2402.12828 (#72)"
        ),
        statement=(
            "Under heavy-tailed gradient noise, clipped SGD and median-based gradient estimators keep the error "
            "bounded in every run, while plain SGD shows heavy-tailed failures."
        ),
        setting=(
            "Linear regression, d = 10, x ~ N(0, I), y = xᵀw* + ε with ε Student-t (ν = 1.5, infinite variance) or "
            "Cauchy; batch 8, lr 0.05, 1,500 steps; SGD vs clipped SGD (c = 1, optimlab.grad.clipped_mean) vs batch "
            "coordinate median vs iterate median (optimlab.grad.median_tracking_step_, γ = 0.5); 20 seeds × 2 noises."
        ),
        experiment=_c15_experiment,
        checks=tuple(_C15_CHECKS),
        family="clipping",
        seeds=20,
        quick_seeds=3,
        expected_minutes=1.0,
    )
)
