"""C1: Adam beats SGD on a transformer; coordinate-wise clipping closes part of the gap."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .. import grad as G
from . import _common as U
from ._framework import Check, Claim, Context, Figure, Measurements, Series, register
from ._stats import MeanAbove
from ._tiny_lm import TinyTransformer, ZipfMarkovText

METHODS = {
    "sgd": ("sgd", None),
    "sgd_clip1": ("sgd", 0.99),  # coordinate clipping of the largest 1% |g_i| to the 99% quantile
    "sgd_clip5": ("sgd", 0.95),
    "adam": ("adam", None),
}


def _directional_sharpness(params: list[torch.Tensor], before: list[torch.Tensor], loss_fn) -> float:
    """uᵀHu/‖u‖² for the update u = θ_after − θ_before, with H the Hessian of the step's batch loss at θ_before
    (the parameters are moved back for the product and restored)."""
    from .. import curvature as C

    after = [p.detach().clone() for p in params]
    u = [a - b for a, b in zip(after, before)]
    with torch.no_grad():
        for p, b in zip(params, before):
            p.copy_(b)
    grads = torch.autograd.grad(loss_fn(), params, create_graph=True)
    hu = C.hvp(grads, params, u, retain_graph=False)
    with torch.no_grad():
        for p, a in zip(params, after):
            p.copy_(a)
    num = sum(float((a * b).sum()) for a, b in zip(u, hu))
    den = sum(float((a * a).sum()) for a in u)
    return num / den if den > 0 else math.nan


def _run(seed: int, method: str, lr: float, steps: int, sharp_every: int | None, size: dict) -> dict:
    name, q = METHODS[method]
    vocab, length, batch_size = size["vocab"], size["length"], size["batch"]
    text = ZipfMarkovText(vocab, seed)
    torch.manual_seed(seed)
    model = TinyTransformer(vocab, d=size["d"], context=length)
    params = list(model.parameters())
    extra = {"momentum": 0.9} if name == "sgd" else {}
    opt = U.make_optimizer(name, params, lr=lr, **extra)
    data = torch.Generator().manual_seed(100_000 + seed)
    eval_batch = text.batch(512, length, torch.Generator().manual_seed(200_000 + seed))

    def loss_of(batch) -> torch.Tensor:
        inp, tgt = batch
        return nn.functional.cross_entropy(model(inp).reshape(-1, vocab), tgt.reshape(-1))

    def excess() -> float:
        with torch.no_grad():
            return float(loss_of(eval_batch)) - text.entropy

    curve, sharpness = [], []
    for t in range(steps):
        batch = text.batch(batch_size, length, data)
        loss = loss_of(batch)
        opt.zero_grad()
        loss.backward()
        if q is not None:
            G.clip_quantile_([p.grad for p in params], q)
        measure = sharp_every is not None and t % sharp_every == 0 and t > 0
        before = [p.detach().clone() for p in params] if measure else None
        opt.step()
        if measure:
            sharpness.append(_directional_sharpness(params, before, lambda batch=batch: loss_of(batch)))
        lv = float(loss.detach())
        if not math.isfinite(lv):
            break
        if t % 50 == 0:
            curve.append((t, excess()))
    final = excess()
    curve.append((steps, final))
    return {"final": final if math.isfinite(final) else math.inf, "curve": curve, "sharpness": sharpness}


def _experiment(ctx: Context) -> Measurements:
    steps = ctx.pick(16, 1000)
    tune_steps = ctx.pick(6, 300)
    size = ctx.pick({"d": 16, "vocab": 16, "length": 8, "batch": 8}, {"d": 64, "vocab": 64, "length": 32, "batch": 32})
    grids = {"sgd": ctx.pick([0.1], [0.1, 0.3, 1.0]), "adam": ctx.pick([1e-3], [1e-3, 3e-3, 1e-2])}
    m = Measurements()
    res = {}
    for method in ctx.iterate(list(METHODS), desc="C1 methods"):
        grid = grids["adam" if method == "adam" else "sgd"]
        tune = {lr: _run(1000, method, lr, tune_steps, None, size)["final"] for lr in grid}
        lr = min(grid, key=lambda v: tune[v])
        res[method] = {"lr": lr, "runs": [_run(s, method, lr, steps, ctx.pick(8, 100), size) for s in ctx.seeds]}
    clip = min(("sgd_clip1", "sgd_clip5"), key=lambda k: np.mean([r["final"] for r in res[k]["runs"]]))
    cap = 2 * math.log(size["vocab"])  # a diverged run counts as an excess loss of twice the uniform loss

    def fin(r: dict) -> float:
        return r["final"] if math.isfinite(r["final"]) else cap

    for s_run, a_run, c_run in zip(res["sgd"]["runs"], res["adam"]["runs"], res[clip]["runs"]):
        m.add("adam_vs_sgd", math.log(fin(s_run) / fin(a_run)))
        m.add("clip_vs_sgd", math.log(fin(s_run) / fin(c_run)))
        m.add(
            "sgd_vs_adam_sharpness",
            math.log(np.mean(s_run["sharpness"]) / np.mean(a_run["sharpness"]))
            if s_run["sharpness"]
            and a_run["sharpness"]
            and np.mean(a_run["sharpness"]) > 0
            and np.mean(s_run["sharpness"]) > 0
            else math.nan,
        )
    for k, r in res.items():
        m.table.append(
            {
                "method": k,
                "lr": r["lr"],
                "final excess loss (mean)": round(float(np.mean([x["final"] for x in r["runs"]])), 4),
                "mean directional sharpness uᵀHu/‖u‖²": round(
                    float(np.mean([np.mean(x["sharpness"]) if x["sharpness"] else math.nan for x in r["runs"]])), 4
                ),
            }
        )
    m.figure = Figure(
        "C1: excess loss over the entropy rate (first seed, tuned lr)",
        [
            Series(k, [c[0] for c in r["runs"][0]["curve"]], [c[1] for c in r["runs"][0]["curve"]])
            for k, r in res.items()
        ],
        "step",
        "eval cross-entropy − entropy rate",
        logy=True,
    )
    m.info = {
        "steps": steps,
        "clip variant judged": clip,
        "lr tuned on seed 1000 over steps": tune_steps,
        "model": size,
    }
    return m


register(
    Claim(
        id="C1",
        title="Adam beats SGD on transformers; coordinate-wise clipping closes part of the gap",
        paper=(
            "Kunstner et al. / Pan & Li (2023), Toward Understanding Why Adam Converges Faster Than SGD for "
            "Transformers, arXiv:2306.00204 (#221); seed #234"
        ),
        statement=(
            "On a transformer, Adam reaches a lower loss than SGD-momentum at equal steps; coordinate-wise clipping "
            "of SGD's gradient closes part of the gap; SGD's updates have higher directional sharpness uᵀHu/‖u‖² "
            "than Adam's."
        ),
        setting=(
            "2-layer transformer (d = 64, 4 heads, context 32, pre-LN) as a char-level LM on a synthetic text: a "
            "first-order Markov chain over 64 symbols whose next-symbol laws are Zipf(1) (heavy-tailed frequencies); "
            "loss = eval cross-entropy minus the chain's entropy rate. Batch 32, 1,000 steps; SGD-momentum 0.9, SGD-M "
            "with coordinate clipping of the top 1% / 5% |g_i| to the quantile (the better one is judged), Adam; lr "
            "tuned per method on a separate seed (300 steps); directional sharpness of the actual update via an HVP "
            "every 100 steps. (A first version used sequence reversal, which every method solves to ~1e-5 loss within "
            "100 steps, so a final-loss comparison said nothing about speed.)"
        ),
        experiment=_experiment,
        checks=(
            Check(
                "Adam below SGD",
                "log(excess loss SGD / excess loss Adam) > 0 at the last step",
                "adam_vs_sgd",
                MeanAbove(0.0),
            ),
            Check(
                "clipping helps SGD",
                "log(excess loss SGD / excess loss SGD+coord-clip) > 0",
                "clip_vs_sgd",
                MeanAbove(0.0),
            ),
            Check(
                "SGD updates sharper",
                "log(mean uᵀHu/‖u‖² of SGD / of Adam) > 0",
                "sgd_vs_adam_sharpness",
                MeanAbove(0.0),
            ),
        ),
        family="speed",
        seeds=3,
        quick_seeds=2,
        requires=("sgd", "adam"),
        expected_minutes=3.0,
    )
)
