"""Train a classifier under a per-class recall floor with optimlab.constrained, and plot the multipliers and the
constraint slack over the steps.

Data: scikit-learn's digits with classes 8 and 9 made rare (15% kept), so plain training under-serves them.
Constraint, one per class: recall_c ≥ floor, written ``floor − recall_c ≤ 0``. Recall (the arg-max) has no
gradient, so the primal step uses a differentiable surrogate (the mean predicted probability of the true class
among class-c examples) and the dual step the true recall: the proxy-constraint scheme (Cotter et al. 2019,
arXiv:1809.04198), through ``Violation(value=surrogate, strict=true_value)``.

    python examples/constrained_recall_floor.py --steps 400 --out recall_floor.png

Writes a PNG with matplotlib when it is installed (a self-contained SVG otherwise, or with ``--format svg``).
"""

from __future__ import annotations

import argparse
import html
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits

from optimlab import constrained as C

RARE = (8, 9)


def data(seed: int = 0):
    d = load_digits()
    x, y = (d.data / 16.0).astype(np.float32), d.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    keep = np.array([(label not in RARE) or rng.random() < 0.15 for label in y])
    x, y = torch.from_numpy(x[keep]), torch.from_numpy(y[keep])
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    cut = int(0.7 * len(y))
    return (x[perm[:cut]], y[perm[:cut]]), (x[perm[cut:]], y[perm[cut:]])


def per_class_recall(logits: torch.Tensor, y: torch.Tensor, soft: bool) -> torch.Tensor:
    """Recall of each class (soft: the mean probability of the true class, differentiable)."""
    onehot = F.one_hot(y, 10).to(logits.dtype)
    hit = logits.softmax(-1) if soft else F.one_hot(logits.argmax(-1), 10).to(logits.dtype)
    return (hit * onehot).sum(0) / onehot.sum(0).clamp(min=1)


def train_unconstrained(steps: int, seed: int = 0) -> list[float]:
    """The same model, optimizer and budget without the constraint: its per-class training recall."""
    torch.manual_seed(seed)
    (x, y), _ = data(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    with torch.no_grad():
        return per_class_recall(model(x), y, soft=False).tolist()


def train(steps: int, floor: float, seed: int = 0) -> dict:
    torch.manual_seed(seed)
    (x, y), (x_test, y_test) = data(seed)
    model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    form = C.Lagrangian([C.Constraint("recall_floor", size=10)])
    pd = C.PrimalDual(
        form,
        torch.optim.Adam(model.parameters(), lr=3e-3),
        torch.optim.SGD(form.dual_parameters(), lr=0.2, maximize=True),
    )

    def closure():
        logits = model(x)
        soft, hard = per_class_recall(logits, y, soft=True), per_class_recall(logits.detach(), y, soft=False)
        return F.cross_entropy(logits, y), {"recall_floor": C.Violation(floor - soft, strict=floor - hard)}

    history = {"multipliers": [], "slack": []}
    for _ in range(steps):
        info = pd.step(closure)
        history["multipliers"].append(form.multipliers["recall_floor"].detach().tolist())
        history["slack"].append((-info.violations["recall_floor"]).tolist())  # recall − floor: ≥ 0 is satisfied
    with torch.no_grad():
        history["train_recall"] = per_class_recall(model(x), y, soft=False).tolist()
        history["test_recall"] = per_class_recall(model(x_test), y_test, soft=False).tolist()
    return history


def _svg(history: dict, path: Path, floor: float) -> None:
    """Two panels of polylines (multipliers; slack), written without any plotting library."""
    w, h, pad = 420, 260, 40
    colors = [f"hsl({36 * c},70%,45%)" for c in range(10)]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * w}" height="{h}" font-family="sans-serif">']
    for panel, (key, title) in enumerate((("multipliers", "multiplier λ_c"), ("slack", f"slack recall_c − {floor}"))):
        series = np.asarray(history[key], dtype=float)
        lo, hi = float(min(series.min(), 0.0)), float(max(series.max(), 1e-9))
        x0, n = panel * w, len(series)

        def px(i, v, lo=lo, hi=hi, n=n, x0=x0):
            return x0 + pad + (w - 2 * pad) * i / max(n - 1, 1), h - pad - (h - 2 * pad) * (v - lo) / (hi - lo)

        parts.append(f'<text x="{x0 + w / 2}" y="20" text-anchor="middle">{html.escape(title)} over steps</text>')
        parts.append(f'<rect x="{x0 + pad}" y="{pad}" width="{w - 2 * pad}" height="{h - 2 * pad}" fill="none" '
                     'stroke="#999"/>')  # fmt: skip
        zx0, zy = px(0, 0.0)
        zx1, _ = px(len(series) - 1, 0.0)
        parts.append(f'<line x1="{zx0}" y1="{zy}" x2="{zx1}" y2="{zy}" stroke="#bbb" stroke-dasharray="4"/>')
        for c in range(series.shape[1]):
            pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in (px(i, v) for i, v in enumerate(series[:, c])))
            parts.append(f'<polyline points="{pts}" fill="none" stroke="{colors[c]}" stroke-width="1.5">'
                         f"<title>class {c}</title></polyline>")  # fmt: skip
        parts.append(f'<text x="{x0 + pad}" y="{h - 10}" font-size="11">steps 0–{len(series) - 1}; '
                     f"range [{lo:.3g}, {hi:.3g}]</text>")  # fmt: skip
    parts.append("</svg>")
    path.write_text("\n".join(parts))


def _png(history: dict, path: Path, floor: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "multipliers", "multiplier λ_c"), (axes[1], "slack", f"recall_c − {floor}")):
        series = np.asarray(history[key])
        for c in range(series.shape[1]):
            ax.plot(series[:, c], label=f"class {c}", lw=2 if c in RARE else 1)
        ax.axhline(0, color="gray", ls="--", lw=0.8)
        ax.set(title=title, xlabel="step")
    axes[1].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot(history: dict, out: Path, floor: float, fmt: str = "auto") -> Path:
    """Write the figure; returns the path written (PNG via matplotlib when available, else SVG)."""
    if fmt == "auto":
        try:
            import matplotlib  # noqa: F401

            fmt = "png"
        except ImportError:
            fmt = "svg"
    out = out.with_suffix("." + fmt)
    (_png if fmt == "png" else _svg)(history, out, floor)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--floor", type=float, default=0.97, help="the per-class recall floor on the training set")
    parser.add_argument("--out", type=Path, default=Path("recall_floor.png"))
    parser.add_argument("--format", choices=("auto", "png", "svg"), default="auto")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    history = train(args.steps, args.floor)
    path = plot(history, args.out, args.floor, args.format)
    train_min = min(history["train_recall"])
    print(f"min train recall {train_min:.3f} (floor {args.floor}); feasible: {train_min >= args.floor}")
    plain = train_unconstrained(args.steps)
    print(f"without the constraint (same budget): min train recall {min(plain):.3f} (class {plain.index(min(plain))})")
    print("test recall per class: " + " ".join(f"{r:.2f}" for r in history["test_recall"]))
    print(f"final multipliers: {' '.join(f'{v:.3f}' for v in history['multipliers'][-1])}")
    print(f"figure: {path}")


if __name__ == "__main__":
    main()
