"""C19: saddle-free Newton escapes saddles where GD plateaus; Newton is attracted."""

from __future__ import annotations

import math

import numpy as np
import torch

from . import _common as U
from ._framework import Check, Claim, Context, Figure, Measurements, Series, downsample, register
from ._stats import AllPass, MeanAbove


def _saddle_f(z: torch.Tensor, mu: float) -> torch.Tensor:
    """f(x, y) = ½x² − (μ/2)y² + (μ/4)y⁴ per row of z (…, 2): a strict saddle at 0 with negative curvature −μ,
    minima at (0, ±1) with f = −μ/4. μ = 1 is the sheet's toy; small μ makes the escape direction flat."""
    x, y = z[..., 0], z[..., 1]
    return 0.5 * x**2 - 0.5 * mu * y**2 + 0.25 * mu * y**4


def _saddle_grad_hess(z: torch.Tensor, mu: float) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = z[..., 0], z[..., 1]
    g = torch.stack([x, -mu * y + mu * y**3], dim=-1)
    zero = torch.zeros_like(x)
    h = torch.stack([torch.stack([torch.ones_like(x), zero], -1), torch.stack([zero, -mu + 3 * mu * y**2], -1)], -2)
    return g, h


def _escape_time(values: list[float], threshold: float) -> float:
    return U.first_reach(list(range(len(values))), values, threshold)


def _second_order(z0: torch.Tensor, mu: float, steps: int, saddle_free: bool, damping: float = 1e-3) -> list:
    """Damped Newton z ← z − (H + δI)⁻¹g, or saddle-free Newton z ← z − (|H| + δI)⁻¹g (|H| = V|Λ|Vᵀ)."""
    z = z0.clone()
    values = [float(_saddle_f(z, mu))]
    for _ in range(steps):
        g, h = _saddle_grad_hess(z, mu)
        evals, evecs = torch.linalg.eigh(h)
        evals = evals.abs() if saddle_free else evals
        z = z - evecs @ ((evecs.T @ g) / (evals + damping))
        values.append(float(_saddle_f(z, mu)))
    return values, z


def _first_order(z0: torch.Tensor, mu: float, steps: int, name: str, lr: float, rho: float = 0.0) -> list:
    z = z0.clone().requires_grad_(True)
    if name == "sam":
        opt = U.make_optimizer("sam", [z], lr=lr, momentum=0.0, rho=rho)
    else:
        opt = U.make_optimizer("sgd", [z], lr=lr, momentum=0.0)
    values = [float(_saddle_f(z.detach(), mu))]
    threshold = -mu / 8
    for _ in range(steps):
        U.train_step(opt, lambda: _saddle_f(z, mu))
        values.append(float(_saddle_f(z.detach(), mu)))
        if values[-1] <= threshold:  # escaped: no need to run on
            break
    return values


def _experiment(ctx: Context) -> Measurements:
    steps = ctx.pick(250, 5000)
    gd_lrs = [0.1, 0.3, 1.0]  # GD is stable on the x-direction (curvature 1) for η < 2
    rho = 0.05
    m = Measurements()
    series = []
    for seed in ctx.iterate(ctx.seeds, desc="C19 seeds"):
        rng = np.random.default_rng(seed)
        z0 = torch.tensor([1.0, float(10 ** rng.uniform(-6.5, -5.5))], dtype=torch.float64)
        for mu in (1.0, 0.01):
            threshold = -mu / 8  # halfway down from the saddle (f = 0) to the minima (f = −μ/4)
            gd = {lr: _first_order(z0, mu, steps, "gd", lr) for lr in gd_lrs}
            best_lr = min(gd_lrs, key=lambda lr: (_escape_time(gd[lr], threshold), lr))
            t_gd = _escape_time(gd[best_lr], threshold)
            sfn, _ = _second_order(z0, mu, min(steps, 200), saddle_free=True)
            newton, z_newton = _second_order(z0, mu, min(steps, 200), saddle_free=False)
            sam = _first_order(z0, mu, steps, "sam", best_lr, rho)
            t_sfn = _escape_time(sfn, threshold)
            t_sam = _escape_time(sam, threshold)
            cap = 2 * steps
            key = "iso" if mu == 1.0 else "flat"
            m.add(f"{key}_sfn_speedup", U.censored_log_ratio(t_gd, t_sfn, cap))
            m.add(f"{key}_sam_vs_gd", U.censored_log_ratio(t_sam, t_gd, cap))
            m.add("newton_distance_to_saddle", float(torch.linalg.vector_norm(z_newton)))
            m.table.append(
                {
                    "seed": seed,
                    "μ": mu,
                    "y0": float(z0[1]),
                    "best GD η": best_lr,
                    "GD escape": t_gd,
                    "SFN escape": t_sfn,
                    "SAM escape": t_sam,
                    "Newton ends at": [float(f"{v:.3g}") for v in z_newton.tolist()],
                }
            )
            if seed == ctx.seeds[0]:
                for label, vals in (
                    (f"GD η={best_lr}", gd[best_lr]),
                    ("SFN", sfn),
                    ("Newton", newton),
                    (f"SAM ρ={rho}", sam),
                ):
                    xs, ys = downsample(list(range(len(vals))), [v + mu / 4 + 1e-12 for v in vals])
                    series.append(Series(f"μ={mu} {label}", xs, ys))
    m.figure = Figure(
        "C19: f − f_min from near the saddle (first seed)", series, "iteration", "f − f_min", logx=True, logy=True
    )
    m.info = {
        "escape": "first iteration with f ≤ −μ/8",
        "GD step grid": gd_lrs,
        "SAM": f"normalized, ρ = {rho}, GD base with the best GD step",
        "damping δ": 1e-3,
        "iteration cap": steps,
    }
    return m


register(
    Claim(
        id="C19",
        title="Saddle-free Newton escapes saddles where GD plateaus; Newton is attracted",
        paper=(
            "Dauphin, Pascanu, Gulcehre, Cho, Ganguli & Bengio (2014), Identifying and attacking the saddle point "
            "problem in high-dimensional non-convex optimization, arXiv:1406.2572 (#58); SAM and saddles (#34): "
            "Andriushchenko & Flammarion (2022), arXiv:2206.06232"
        ),
        statement=(
            "Near a saddle, saddle-free Newton (|H|⁻¹g) escapes in far fewer iterations than GD, which plateaus, "
            "while Newton's method converges to the saddle; SAM's escape time relative to GD is reported."
        ),
        setting=(
            "f(x, y) = ½x² − (μ/2)y² + (μ/4)y⁴ from (1, y₀), y₀ ≈ 1e-6 (seeded); μ = 0.01 (flat escape direction, the "
            "regime the paper targets) and the sheet's μ = 1 (isotropic); GD with the best step of {0.1, 0.3, 1}; "
            "damped Newton and SFN with δ = 1e-3; SAM (ρ = 0.05) on GD's best step. Escape = first f ≤ −μ/8. "
            "The deep linear autoencoder of the sheet is not run."
        ),
        experiment=_experiment,
        checks=(
            Check(
                "SFN ≫ GD (flat saddle)",
                "log(GD escape / SFN escape) > log 3 at μ = 0.01 (GD's best step)",
                "flat_sfn_speedup",
                MeanAbove(math.log(3)),
            ),
            Check(
                "Newton attracted",
                "damped Newton ends within 1e-6 of the saddle (both μ)",
                "newton_distance_to_saddle",
                AllPass(1e-6),
            ),
            Check(
                "SFN ≫ GD (isotropic toy)",
                "log(GD escape / SFN escape) > log 3 at μ = 1 (with a tuned step GD does not plateau on this toy)",
                "iso_sfn_speedup",
                MeanAbove(math.log(3)),
                role="report",
            ),
            Check(
                "SAM vs GD escape",
                "log(SAM escape / GD escape) at μ = 0.01 (> 0: SAM slower)",
                "flat_sam_vs_gd",
                MeanAbove(0.0),
                role="report",
            ),
        ),
        family="dynamics",
        seeds=5,
        quick_seeds=2,
        requires=("sgd", "sam"),
        expected_minutes=0.5,
    )
)
