"""Learn one L2 penalty per feature by bilevel optimization, on scikit-learn's bundled diabetes data.

    python examples/bilevel_feature_penalties.py                       # 100 outer iterations per method
    python examples/bilevel_feature_penalties.py --outer-steps 5 --out /tmp/curves.png

Inner problem (training): ridge regression with per-feature penalties e^{λ_i} on the 10 standardized features and
their 45 pairwise products (55 features, 150 training examples). Outer problem: the validation MSE (150 examples)
of the inner solution. Each method of ``optimlab.bilevel`` starts from penalty 1 everywhere and runs the same
number of outer iterations; the validation loss at the *exact* inner solution w*(λ) (closed form) is recorded
after each one, and the plot shows it against the outer iteration for every method (PNG with matplotlib, else a
self-contained SVG). The best single penalty from a grid search is drawn as a reference line.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time

import torch

try:
    from optimlab import bilevel as B
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    from optimlab import bilevel as B

F64 = torch.float64


def diabetes_features(seed: int = 0) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Standardized features + pairwise products, standardized target; train / validation / test splits."""
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    x = torch.tensor(data.data, dtype=F64)
    y = torch.tensor(data.target, dtype=F64)
    x = (x - x.mean(0)) / x.std(0)
    i, j = torch.triu_indices(10, 10, offset=1)
    x = torch.cat([x, x[:, i] * x[:, j]], dim=1)
    x = (x - x.mean(0)) / x.std(0)
    y = (y - y.mean()) / y.std()
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    parts = perm[:150], perm[150:300], perm[300:]
    return {name: (x[idx], y[idx]) for name, idx in zip(("train", "val", "test"), parts)}


class FeaturePenalties:
    """g(w, λ) = ½ mean (Xw − y)² + ½ Σ e^{λ_i} w_i²;  f(w, λ) = ½ validation mean (X_v w − y_v)²."""

    def __init__(self, data: dict) -> None:
        (self.x, self.y), (self.xv, self.yv), (self.xt, self.yt) = data["train"], data["val"], data["test"]
        self.gram = self.x.T @ self.x / len(self.y)
        self.problem = B.BilevelProblem(outer=self.outer, inner=self.inner)

    def inner(self, w, lam):
        return 0.5 * ((self.x @ w - self.y) ** 2).mean() + 0.5 * (lam.exp() * w * w).sum()

    def outer(self, w, lam):
        return 0.5 * ((self.xv @ w - self.yv) ** 2).mean()

    def solution(self, lam: torch.Tensor) -> torch.Tensor:
        return torch.linalg.solve(self.gram + torch.diag(lam.exp()), self.x.T @ self.y / len(self.y))

    def losses(self, lam: torch.Tensor) -> tuple[float, float]:
        """(validation, test) ½ MSE at the exact inner solution."""
        w = self.solution(lam)
        return float(self.outer(w, lam)), float(0.5 * ((self.xt @ w - self.yt) ** 2).mean())


def make_methods(task: FeaturePenalties, max_penalty: float = 10.0) -> dict[str, B.HyperMethod]:
    d = task.x.shape[1]
    lam0, w0 = torch.zeros(d, dtype=F64), torch.zeros(d, dtype=F64)
    inner_lr = 1.0 / (float(torch.linalg.eigvalsh(task.gram)[-1]) + max_penalty)
    common = {"inner_lr": inner_lr, "bounds": (math.log(1e-4), math.log(max_penalty))}
    return {
        "IFT + CG (AID)": B.AID(
            task.problem,
            lam0,
            w0,
            outer_lr=5.0,
            inner_steps=20,
            linear_solve=functools.partial(B.cg, maxiter=50),
            **common,
        ),
        "IFT + Neumann K=20 (AID)": B.AID(
            task.problem,
            lam0,
            w0,
            outer_lr=5.0,
            inner_steps=20,
            linear_solve=functools.partial(B.neumann, terms=20, alpha=inner_lr),
            **common,
        ),
        "HOAG": B.HOAG(task.problem, lam0, w0, outer_lr=5.0, tol=1e-2, max_inner_steps=200, **common),
        "truncated unroll (10 of 20)": B.TruncatedUnroll(
            task.problem, lam0, w0, outer_lr=5.0, inner_steps=20, truncate=10, **common
        ),
        "F2SA": B.F2SA(
            task.problem,
            lam0,
            w0,
            outer_lr=5.0,
            inner_steps=20,
            multiplier=10.0,
            multiplier_increment=1.0,
            max_multiplier=100.0,
            **common,
        ),
        # V-PBGD's λ-step carries γ(∇_λ g(w) − ∇_λ g(z)): a smaller step than the others keeps it stable here
        "penalty (V-PBGD)": B.PenaltyBilevel(
            task.problem, lam0, w0, outer_lr=0.5, penalty=10.0, inner_steps=20, **common
        ),
    }


def run(outer_steps: int, seed: int = 0) -> dict:
    """Every method for ``outer_steps`` iterations: curves of validation loss, final test loss, time per step."""
    torch.set_num_threads(1)
    task = FeaturePenalties(diabetes_features(seed))
    d = task.x.shape[1]
    grid = {a: task.losses(torch.full((d,), math.log(a), dtype=F64)) for a in torch.logspace(-4, 2, 61).tolist()}
    best = min(grid, key=lambda a: grid[a][0])
    results = {"best single penalty": best, "single": grid[best], "methods": {}}
    for name, method in make_methods(task).items():
        curve = [task.losses(method.lam)[0]]
        start = time.perf_counter()
        for _ in range(outer_steps):
            method.step()
            curve.append(task.losses(method.lam)[0])
        seconds = (time.perf_counter() - start) / outer_steps
        results["methods"][name] = {"curve": curve, "test": task.losses(method.lam)[1], "step_s": seconds}
    return results


# ----------------------------------------------------------------------------- plotting


def plot(results: dict, path: str) -> str:
    """Validation loss vs outer iteration per method: PNG with matplotlib if it is installed, else SVG."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        path = os.path.splitext(path)[0] + ".svg"
        with open(path, "w") as fh:
            fh.write(svg(results))
        return path
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in results["methods"].items():
        ax.plot(range(len(r["curve"])), r["curve"], label=name)
    ax.axhline(
        results["single"][0], color="gray", ls="--", label=f"best single penalty ({results['best single penalty']:.3g})"
    )
    ax.set_xlabel("outer iteration")
    ax.set_ylabel("validation loss (½ MSE at w*(λ))")
    ax.set_title("55 per-feature L2 penalties on load_diabetes")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def svg(results: dict, width: int = 720, height: int = 440) -> str:
    """A self-contained SVG line plot of the curves (no dependencies)."""
    colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2"]
    curves = {k: v["curve"] for k, v in results["methods"].items()}
    values = [y for c in curves.values() for y in c if math.isfinite(y)] + [results["single"][0]]
    lo, hi = min(values), max(values)
    n = max(len(c) for c in curves.values()) - 1 or 1
    left, right, top, bottom = 60, width - 220, 30, height - 40

    def xy(i: float, y: float) -> tuple[float, float]:
        return left + (right - left) * i / n, bottom - (bottom - top) * (y - lo) / ((hi - lo) or 1.0)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="black"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="black"/>',
        f'<text x="{(left + right) / 2}" y="{height - 8}" text-anchor="middle" font-size="12">'
        f"outer iteration (0–{n})</text>",
        f'<text x="12" y="{top - 10}" font-size="12">validation loss {lo:.4f} – {hi:.4f}</text>',
    ]
    y0 = xy(0, results["single"][0])[1]
    parts.append(f'<line x1="{left}" y1="{y0:.1f}" x2="{right}" y2="{y0:.1f}" stroke="gray" stroke-dasharray="4"/>')
    for k, (name, curve) in enumerate(list(curves.items()) + [("best single penalty", None)]):
        color = colors[k % len(colors)] if curve is not None else "gray"
        if curve is not None:
            points = " ".join("{:.1f},{:.1f}".format(*xy(i, y)) for i, y in enumerate(curve) if math.isfinite(y))
            parts.append(f'<polyline points="{points}" fill="none" stroke="{color}" stroke-width="1.5"/>')
        parts.append(f'<text x="{right + 10}" y="{top + 16 * k + 10}" font-size="11" fill="{color}">{name}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outer-steps", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="bilevel_feature_penalties.png")
    args = parser.parse_args(argv)
    results = run(args.outer_steps, args.seed)
    print(
        f"best single penalty {results['best single penalty']:.3g}: validation {results['single'][0]:.4f}, "
        f"test {results['single'][1]:.4f}"
    )
    for name, r in results["methods"].items():
        print(
            f"{name:28s} validation {r['curve'][-1]:.4f}  test {r['test']:.4f}  {1e3 * r['step_s']:.1f} ms/outer step"
        )
    results["plot"] = plot(results, args.out)
    print("plot:", results["plot"])
    return results


if __name__ == "__main__":
    main()
