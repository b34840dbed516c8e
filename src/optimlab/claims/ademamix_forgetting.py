"""C4: AdEMAMix converges faster and forgets a once-seen batch more slowly than AdamW."""

from __future__ import annotations

import torch
from torch import nn

from . import _common as U
from ._framework import Check, Claim, Context, Figure, Measurements, Series, register
from ._stats import MeanAbove


def _run(seed: int, opt_name: str, lr: float, steps: int, batch: int = 32) -> dict:
    sample = U.teacher_stream(seed)
    data_gen = torch.Generator().manual_seed(60_000 + seed)
    b0 = sample(batch, torch.Generator().manual_seed(70_000 + seed))  # the batch seen once, at 10% of training
    val = sample(2048, torch.Generator().manual_seed(80_000 + seed))
    torch.manual_seed(seed)
    model = U.mlp([20, 128, 128, 10], nn.ReLU)
    extra = {"t_alpha_beta3": steps} if opt_name == "ademamix" else {}
    opt = U.make_optimizer(opt_name, model.parameters(), lr=lr, weight_decay=0.0, **extra)
    t_b0 = steps // 10

    def loss_on(xy) -> float:
        with torch.no_grad():
            return float(nn.functional.cross_entropy(model(xy[0]), xy[1]))

    curve = []
    for t in range(steps):
        xb, yb = b0 if t == t_b0 else sample(batch, data_gen)
        U.train_step(opt, lambda xb=xb, yb=yb: nn.functional.cross_entropy(model(xb), yb))
        if t % 100 == 0 or t == steps - 1:
            curve.append((t, loss_on(val), loss_on(b0)))
    return {"val": loss_on(val), "b0": loss_on(b0), "curve": curve}


def _experiment(ctx: Context) -> Measurements:
    steps = ctx.pick(120, 6000)
    lrs = ctx.pick([1e-3], [3e-4, 1e-3, 3e-3])
    names = ("adamw", "ademamix")
    m = Measurements()
    chosen = {}
    for name in names:
        tune = {lr: _run(1000, name, lr, steps)["val"] for lr in lrs}
        chosen[name] = min(lrs, key=lambda lr: tune[lr])
    runs = {
        name: [_run(s, name, chosen[name], steps) for s in ctx.iterate(ctx.seeds, desc=f"C4 {name}")] for name in names
    }
    for a, b in zip(runs["adamw"], runs["ademamix"]):
        m.add("val_loss_gain", a["val"] - b["val"])
        # forgetting: how much better B₀ is fitted than fresh data at the end (more negative = remembered)
        m.add("retention_gain", (a["b0"] - a["val"]) - (b["b0"] - b["val"]))
        m.table.append(
            {
                "AdamW val": round(a["val"], 4),
                "AdEMAMix val": round(b["val"], 4),
                "AdamW B0 − val": round(a["b0"] - a["val"], 4),
                "AdEMAMix B0 − val": round(b["b0"] - b["val"], 4),
            }
        )
    series = []
    for name in names:
        c = runs[name][0]["curve"]
        series.append(Series(f"{name} validation loss", [p[0] for p in c], [p[1] for p in c]))
        series.append(Series(f"{name} loss on B₀", [p[0] for p in c], [p[2] for p in c]))
    m.figure = Figure(
        "C4: validation loss and loss on the once-seen batch B₀ (first seed)", series, "step", "CE", hlines=[]
    )
    m.info = {
        "steps": steps,
        "B0 at step": steps // 10,
        "lr chosen (tuning seed 1000)": chosen,
        "AdEMAMix": "β3 = 0.9999, α = 5, warm-up T = run length",
    }
    return m


register(
    Claim(
        id="C4",
        title="AdEMAMix: faster convergence and slower forgetting than AdamW",
        paper="Pagliardini, Ablin & Grangier (2024), The AdEMAMix Optimizer: Better, Faster, Older, arXiv:2409.03137 "
        "(#165)",
        statement="AdEMAMix reaches a lower loss than AdamW and forgets a once-seen batch more slowly.",
        setting=(
            "Stream of fresh samples from a random teacher MLP (20 inputs, 10 classes, 20% label noise); student MLP "
            "20-128-128-10, batch 32, 6,000 steps, weight decay 0; a batch B₀ is trained on once at 10% of training. "
            "lr from {3e-4, 1e-3, 3e-3} per optimizer on a tuning seed. Forgetting = loss(B₀) − validation loss at "
            "the end (lower = B₀ better remembered)."
        ),
        experiment=_experiment,
        checks=(
            Check("lower loss", "validation loss AdamW − AdEMAMix > 0", "val_loss_gain", MeanAbove(0.0)),
            Check(
                "slower forgetting",
                "(loss(B₀) − val loss) AdamW − same for AdEMAMix > 0",
                "retention_gain",
                MeanAbove(0.0),
            ),
        ),
        family="speed",
        seeds=5,
        quick_seeds=2,
        requires=("adamw", "ademamix"),
        expected_minutes=1.5,
    )
)
