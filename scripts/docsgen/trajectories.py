"""Trajectory plots of an algorithm on two 2-D problems, drawn at build time and cached.

Rosenbrock's function from (−1.5, 2) and a noisy ill-conditioned quadratic ½(x² + 10y²) whose gradient carries
fresh N(0, σ²) noise each step (the same noise on every closure call of that step), both run with the paper's
defaults and the convergence settings the test matrix uses for the algorithm (tests/optim_db.py), under the
matrix's cosine schedule. A PNG is kept in ``.cache/docs/trajectories`` under a key of everything that can change
it (the settings, the sources of the algorithm's module and of the step pipeline, torch's version), so a build
redraws only what changed.
"""

from __future__ import annotations

import hashlib
import inspect
import io
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from . import evidence

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "docs" / "trajectories"
ROSENBROCK_STEPS = 1500
QUADRATIC_STEPS = 300
NOISE = 0.5
H = torch.tensor([1.0, 10.0], dtype=torch.float64)
START = {"rosenbrock": (-1.5, 2.0), "quadratic": (-1.5, 1.0)}


def rosenbrock(xy: torch.Tensor, t: int) -> torch.Tensor:
    return (1 - xy[0]) ** 2 + 100 * (xy[1] - xy[0] ** 2) ** 2


def noisy_quadratic(xy: torch.Tensor, t: int) -> torch.Tensor:
    """½ Σ hᵢ xᵢ² + σ ξₜ·x: the gradient is H x plus N(0, σ²) noise drawn once per step t."""
    xi = torch.randn(2, generator=torch.Generator().manual_seed(t), dtype=torch.float64)
    return 0.5 * (H * xy**2).sum() + NOISE * (xi * xy).sum()


PROBLEMS = {"rosenbrock": (rosenbrock, ROSENBROCK_STEPS), "quadratic": (noisy_quadratic, QUADRATIC_STEPS)}


@dataclass(frozen=True)
class Path2D:
    problem: str
    points: list[tuple[float, float]]
    hparams: dict


def run(name: str, problem: str) -> Path2D | None:
    """The iterates of ``name`` on ``problem`` (None where the matrix opts it out of that problem)."""
    import optimlab

    extra = evidence.convergence_settings(name, problem)
    if extra is None:
        return None
    extra.pop("steps", None)
    fn, steps = PROBLEMS[problem]
    xy = torch.tensor(START[problem], dtype=torch.float64, requires_grad=True)
    opt = optimlab.create(name, [xy], **extra)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps)))
    hvp = getattr(opt, "requires_hvp", False)
    points = [tuple(xy.tolist())]
    for t in range(steps):

        def closure(t=t):
            opt.zero_grad()
            loss = fn(xy, t)
            loss.backward(create_graph=hvp)
            return loss

        opt.step(closure)
        sched.step()
        points.append(tuple(xy.detach().tolist()))
    return Path2D(problem, points, extra)


def cache_key(name: str) -> str:
    import optimlab
    from optimlab.optim import _base

    spec = optimlab.spec(name)
    parts = [
        inspect.getsource(inspect.getmodule(spec.cls)),
        inspect.getsource(_base),
        Path(__file__).read_text(),
        torch.__version__,
        repr(sorted(spec.defaults.items())),
        repr([evidence.convergence_settings(name, p) for p in PROBLEMS]),
    ]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _panel(ax, path: Path2D | None, title: str, skipped: str | None) -> None:
    import textwrap

    import numpy as np

    ax.set_title(title, fontsize=9)
    if path is None:
        why = textwrap.fill(f"not run: {skipped}", 48)
        ax.text(0.5, 0.5, f"{why}\n(tests/optim_db.py)", ha="center", va="center", fontsize=8, wrap=True)
        ax.set_axis_off()
        return
    if path.problem == "rosenbrock":
        xs, ys = np.linspace(-2, 2, 200), np.linspace(-1, 3, 200)
        X, Y = np.meshgrid(xs, ys)
        Z = (1 - X) ** 2 + 100 * (Y - X**2) ** 2
        ax.contour(X, Y, np.log10(Z + 1e-3), levels=15, linewidths=0.5, cmap="Greys")
        ax.plot([1], [1], marker="*", color="k", markersize=9)
    else:
        xs, ys = np.linspace(-2, 2, 200), np.linspace(-1.5, 1.5, 200)
        X, Y = np.meshgrid(xs, ys)
        ax.contour(X, Y, 0.5 * (X**2 + 10 * Y**2), levels=12, linewidths=0.5, cmap="Greys")
        ax.plot([0], [0], marker="*", color="k", markersize=9)
    pts = np.clip(np.array(path.points), -1e3, 1e3)
    ax.plot(pts[:, 0], pts[:, 1], color="#d62728", linewidth=1.0, marker=".", markersize=2)
    ax.plot(pts[0, 0], pts[0, 1], marker="o", color="#1f77b4")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.tick_params(labelsize=7)
    hp = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in path.hparams.items())
    ax.set_xlabel(f"end ({pts[-1, 0]:.3g}, {pts[-1, 1]:.3g}); {hp or 'defaults'}", fontsize=7)


def draw(name: str) -> bytes:
    """The PNG of both panels (no cache)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.4), dpi=80)
    titles = {
        "rosenbrock": f"{name} on Rosenbrock, {ROSENBROCK_STEPS} steps",
        "quadratic": f"{name} on a noisy quadratic (σ={NOISE}), {QUADRATIC_STEPS} steps",
    }
    for ax, (problem, title) in zip(axes, titles.items()):
        _panel(ax, run(name, problem), title, evidence.convergence_skip(name, problem))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def png(name: str) -> bytes:
    """The cached PNG of ``name`` (drawn and stored when its key changed)."""
    path = CACHE / f"{name}-{cache_key(name)}.png"
    if path.exists():
        return path.read_bytes()
    data = draw(name)
    CACHE.mkdir(parents=True, exist_ok=True)
    for stale in CACHE.glob(f"{name}-*.png"):
        stale.unlink()
    path.write_bytes(data)
    return data
