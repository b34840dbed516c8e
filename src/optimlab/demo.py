"""``optimlab demo``: the first run. Trains one small MLP on a generated 4-class classification task with several
optimizers (paper defaults, full batch, seconds on a laptop CPU), prints the final losses and writes the loss
curves: a PNG when matplotlib is installed, otherwise a self-contained SVG (the benchmark report's plotter).
Every optimizer runs through :func:`optimlab.training.train_step`, so closure-based ones (SAM, Sophia, …) work."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from . import registry, routing
from .training import capabilities, train_step


@dataclass
class Run:
    name: str
    losses: list[float]
    seconds: float


def task(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """512 points in 16 dimensions, labelled by the argmax of a random linear teacher plus noise (4 classes)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(512, 16, generator=g)
    teacher = torch.randn(16, 4, generator=g)
    return x, (x @ teacher + 0.5 * torch.randn(512, 4, generator=g)).argmax(dim=1)


def train(name: str, steps: int, x: torch.Tensor, y: torch.Tensor) -> Run:
    """``steps`` full-batch steps of ``name`` (paper defaults, weight decay off biases and norms)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.Tanh(), torch.nn.Linear(64, 4))
    spec = registry.spec(name)
    opt = registry.create(name, routing.param_groups(model, weight_decay=spec.defaults.get("weight_decay", 0.0)))

    def loss_fn():
        logits = model(x)
        return torch.nn.functional.cross_entropy(logits, y), logits

    start = time.perf_counter()
    losses = [float(train_step(opt, loss_fn)) for _ in range(steps)]
    return Run(name, losses, time.perf_counter() - start)


def plot(runs: list[Run], out: Path) -> Path:
    """Loss curves per optimizer (log scale) at ``out`` with the suffix the available plotter writes."""
    out.parent.mkdir(parents=True, exist_ok=True)
    title = "optimlab demo: MLP classifier, paper defaults"
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from .bench import svg

        series = [svg.Series(r.name, list(range(len(r.losses))), r.losses, svg.color(i)) for i, r in enumerate(runs)]
        page = svg.Plot(title, "step", "training loss", ylog=True, width=640, height=380, series=series).render()
        path = out.with_suffix(".svg")
        path.write_text(page)
        return path
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    for r in runs:
        ax.plot(r.losses, label=r.name, linewidth=1.2)
    ax.set(yscale="log", xlabel="step", ylabel="training loss", title=title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = out.with_suffix(".png")
    fig.savefig(path)
    plt.close(fig)
    return path


def run(names: list[str], steps: int, out: Path) -> tuple[list[Run], Path]:
    """Train every optimizer of ``names`` and plot them; unknown names raise ``KeyError`` and optimizers that need
    class-split losses (ImbSAM) ``ValueError``, before any training."""
    for name in names:
        if capabilities(registry.spec(name)).head_tail:
            raise ValueError(f"{name} needs class-split (head, tail) losses; the demo's task has no class split")
    x, y = task()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 64-unit MLP: one thread is 30x faster than several contending ones
    try:
        runs = [train(name, steps, x, y) for name in names]
    finally:
        torch.set_num_threads(threads)
    return runs, plot(runs, out)
