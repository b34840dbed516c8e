"""Generalization claims: C8 (SAM improves generalization and resists label noise), C10 (StableMax avoids Softmax
Collapse and groks without regularization)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .. import curvature as C
from ..losses import stablemax_cross_entropy
from . import _common as U
from ._framework import Check, Claim, Context, Figure, Measurements, Series, register
from ._stats import AllPass, MeanAbove

# ============================================================================ C8


def _moons(seed: int, n: int = 1500) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import make_moons

    x, y = make_moons(n_samples=n, noise=0.2, random_state=seed)
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)


def _noisy_labels(y: torch.Tensor, classes: int, rate: float, generator: torch.Generator) -> torch.Tensor:
    """Symmetric label noise: with probability ``rate`` a label is replaced by a uniformly drawn *other* class."""
    flip = torch.rand(y.shape, generator=generator) < rate
    shift = torch.randint(1, classes, y.shape, generator=generator)
    return torch.where(flip, (y + shift) % classes, y)


def _c8_data(dataset: str, noise: float, seed: int) -> dict:
    x, y = U.digits() if dataset == "digits" else _moons(seed)
    classes = 10 if dataset == "digits" else 2
    tr, va, te = U.split_indices(len(x), (0.6, 0.2, 0.2), seed)
    g = torch.Generator().manual_seed(7_000 + seed)
    return {
        "classes": classes,
        "sizes": [x.shape[1], 128, 128, classes] if dataset == "digits" else [2, 64, 64, 2],
        "train": (x[tr], _noisy_labels(y[tr], classes, noise, g)),
        "val": (x[va], _noisy_labels(y[va], classes, noise, g)),  # validation is as noisy as training
        "test": (x[te], y[te]),  # clean
    }


def _c8_train(data: dict, seed: int, epochs: int, lr: float, rho: float | None) -> dict:
    torch.manual_seed(seed)
    model = U.mlp(data["sizes"], nn.ReLU)
    if rho is None:
        opt = U.make_optimizer("sgd", model.parameters(), lr=lr, momentum=0.9)
    else:
        opt = U.make_optimizer("sam", model.parameters(), lr=lr, momentum=0.9, rho=rho)
    x, y = data["train"]
    order = torch.Generator().manual_seed(9_000 + seed)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=order)
        for b in perm.split(64):
            U.train_step(opt, lambda b=b: nn.functional.cross_entropy(model(x[b]), y[b]))
    params = list(model.parameters())
    loss = nn.functional.cross_entropy(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    lam = float(C.sharpness(lambda v: C.hvp(grads, params, v), params, torch.Generator().manual_seed(seed)))
    return {"val": U.accuracy(model, *data["val"]), "test": U.accuracy(model, *data["test"]), "lambda_max": lam}


def _c8_experiment(ctx: Context) -> Measurements:
    epochs = ctx.pick(3, 100)
    sgd_lrs = ctx.pick([0.05], [0.01, 0.03, 0.1])
    rhos = ctx.pick([0.05], [0.02, 0.05, 0.1])
    settings = [(d, n) for d in ("digits", "moons") for n in (0.0, 0.3)]
    if ctx.quick:
        settings = [("moons", 0.3)]
    m = Measurements()
    bars = []
    for dataset, noise in ctx.iterate(settings, desc="C8 settings"):
        data = {s: _c8_data(dataset, noise, s) for s in ctx.seeds}
        # SGD-M: pick the learning rate by mean (noisy) validation accuracy; SAM: pick ρ on top of it
        sgd = {lr: [_c8_train(data[s], s, epochs, lr, None) for s in ctx.seeds] for lr in sgd_lrs}
        lr = max(sgd_lrs, key=lambda v: np.mean([r["val"] for r in sgd[v]]))
        sam = {rho: [_c8_train(data[s], s, epochs, lr, rho) for s in ctx.seeds] for rho in rhos}
        rho = max(rhos, key=lambda v: np.mean([r["val"] for r in sam[v]]))
        for a, b in zip(sam[rho], sgd[lr]):
            m.add("acc_gain", a["test"] - b["test"])
            if noise > 0:
                m.add("acc_gain_noisy", a["test"] - b["test"])
            m.add("sharpness_ratio", math.log(b["lambda_max"] / a["lambda_max"]))
        row = {
            "dataset": dataset,
            "label noise": noise,
            "SGD lr": lr,
            "SAM ρ": rho,
            "SGD test acc": round(float(np.mean([r["test"] for r in sgd[lr]])), 4),
            "SAM test acc": round(float(np.mean([r["test"] for r in sam[rho]])), 4),
            "SGD λ_max": round(float(np.median([r["lambda_max"] for r in sgd[lr]])), 3),
            "SAM λ_max": round(float(np.median([r["lambda_max"] for r in sam[rho]])), 3),
        }
        m.table.append(row)
        bars.append((f"{dataset} {int(noise * 100)}%", row["SGD test acc"], row["SAM test acc"]))
    xs = list(range(len(bars)))
    m.figure = Figure(
        "C8: clean test accuracy per setting (x: " + ", ".join(f"{i}={b[0]}" for i, b in enumerate(bars)) + ")",
        [Series("SGD-M", xs, [b[1] for b in bars]), Series("SAM", xs, [b[2] for b in bars])],
        xlabel="setting",
        ylabel="test accuracy",
    )
    m.info = {
        "epochs": epochs,
        "batch": 64,
        "SGD lr grid": sgd_lrs,
        "SAM ρ grid": rhos,
        "selection": "mean validation accuracy (validation labels as noisy as training labels)",
    }
    return m


register(
    Claim(
        id="C8",
        title="SAM improves generalization and is robust to label noise",
        paper=(
            "Foret, Kleiner, Mobahi & Neyshabur (2021), Sharpness-Aware Minimization for Efficiently Improving "
            "Generalization, arXiv:2010.01412 (#30)"
        ),
        statement="SAM reaches higher test accuracy than SGD, especially under label noise, at smaller λ_max.",
        setting=(
            "load_digits MLP 64-128-128-10 and make_moons MLP 2-64-64-2 (60/20/20 split), 0% and 30% symmetric label "
            "noise on train and validation (test clean); SGD-momentum 0.9, batch 64, 100 epochs; SGD lr from "
            "{0.01, 0.03, 0.1} and SAM ρ from {0.02, 0.05, 0.1} (at SGD's lr) chosen by validation accuracy; λ_max of "
            "the training loss by Lanczos at the end. Replicates: (setting, seed)."
        ),
        experiment=_c8_experiment,
        checks=(
            Check(
                "SAM more accurate", "clean test accuracy SAM − SGD > 0 over all settings", "acc_gain", MeanAbove(0.0)
            ),
            Check(
                "SAM more accurate with noise",
                "clean test accuracy SAM − SGD > 0 with 30% label noise",
                "acc_gain_noisy",
                MeanAbove(0.0),
            ),
            Check("SAM flatter", "log(λ_max SGD / λ_max SAM) > 0", "sharpness_ratio", MeanAbove(0.0)),
        ),
        family="generalization",
        seeds=5,
        quick_seeds=2,
        requires=("sgd", "sam"),
        expected_minutes=3.0,
    )
)


# ============================================================================ C10


def _modular_addition(p: int, fraction: float, seed: int) -> dict:
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    a, b = a.flatten(), b.flatten()
    x = torch.cat([nn.functional.one_hot(a, p), nn.functional.one_hot(b, p)], dim=1).float()
    y = (a + b) % p
    tr, te = U.split_indices(p * p, (fraction, 1 - fraction), seed)
    return {"train": (x[tr], y[tr]), "test": (x[te], y[te])}


def _zero_gradient_fraction(logits: torch.Tensor, y: torch.Tensor, loss_fn) -> tuple[float, float]:
    """(fraction of samples whose float32 loss is exactly 0, fraction whose loss gradient w.r.t. the logits is
    exactly 0) — the Softmax Collapse indicators."""
    z = logits.detach().clone().requires_grad_(True)
    per = loss_fn(z, y, reduction="none")
    (grad,) = torch.autograd.grad(per.sum(), z)
    return float((per == 0).float().mean()), float((grad == 0).all(dim=1).float().mean())


def _softmax_ce(z, y, reduction="mean"):
    return nn.functional.cross_entropy(z, y, reduction=reduction)


def _c10_run(
    data: dict, p: int, seed: int, steps: int, every: int, loss: str, wd: float, lr: float, optimizer: str
) -> dict:
    torch.manual_seed(seed)
    model = U.mlp([2 * p, 128, 128, p], nn.ReLU)
    # the authors' runs: AdamW (or ⊥Grad around it) with betas (0.9, 0.99)
    opt = U.make_optimizer(optimizer, model.parameters(), lr=lr, weight_decay=wd, betas=(0.9, 0.99))
    loss_fn = stablemax_cross_entropy if loss == "stablemax" else _softmax_ce
    x, y = data["train"]
    curve = []
    memorized_at = None
    for step in range(steps + 1):
        if step % every == 0 or step == steps:
            with torch.no_grad():
                logits = model(x)
                train_acc = float((logits.argmax(1) == y).float().mean())
                weight_norm = float(torch.sqrt(sum((q**2).sum() for q in model.parameters())))
            zero_loss, zero_grad = _zero_gradient_fraction(logits, y, loss_fn)
            curve.append(
                {
                    "step": step,
                    "train": train_acc,
                    "test": U.accuracy(model, *data["test"]),
                    "zero_loss": zero_loss,
                    "zero_grad": zero_grad,
                    "weight_norm": weight_norm,
                }
            )
            if memorized_at is None and train_acc == 1.0:
                memorized_at = curve[-1]
        if step < steps:
            U.train_step(opt, lambda: loss_fn(model(x), y))
    grokked = U.first_reach([c["step"] for c in curve], [c["test"] for c in curve], 0.9, below=False)
    return {"curve": curve, "memorized": memorized_at or curve[-1], "grokked_at": grokked}


def _c10_experiment(ctx: Context) -> Measurements:
    p = ctx.pick(13, 31)
    steps = ctx.pick(150, 5000)
    every = ctx.pick(50, 100)
    lr = 1e-2
    runs = {  # name: (loss, weight decay, optimizer)
        "softmax": ("softmax", 0.0, "adamw"),
        "stablemax": ("stablemax", 0.0, "adamw"),
        "orthograd": ("softmax", 0.0, "orthograd"),
        "softmax_wd1": ("softmax", 1.0, "adamw"),
    }
    m = Measurements()
    series = []
    for seed in ctx.iterate(ctx.seeds, desc="C10 seeds"):
        data = _modular_addition(p, 0.5, seed)
        res = {k: _c10_run(data, p, seed, steps, every, loss, wd, lr, opt) for k, (loss, wd, opt) in runs.items()}
        for k, r in res.items():
            end = r["curve"][-1]
            m.add(f"{k}_test", end["test"])
            m.add(f"{k}_weight_growth", end["weight_norm"] / r["curve"][0]["weight_norm"])
            m.table.append(
                {
                    "seed": seed,
                    "run": k,
                    "final test acc": round(end["test"], 4),
                    "final train acc": round(end["train"], 4),
                    "SC (zero-gradient) fraction": end["zero_grad"],
                    "zero-loss fraction": end["zero_loss"],
                    "weight norm": round(end["weight_norm"], 2),
                    "memorized at step": r["memorized"]["step"],
                    "test ≥ 90% at step": r["grokked_at"],
                }
            )
        soft = res["softmax"]
        m.add("softmax_sc_rise", soft["curve"][-1]["zero_grad"] - soft["memorized"]["zero_grad"])
        m.add(
            "orthograd_speedup",
            U.censored_log_ratio(res["softmax_wd1"]["grokked_at"], res["orthograd"]["grokked_at"], 2 * steps),
        )
        if seed == ctx.seeds[0]:
            for k, r in res.items():
                series.append(Series(f"{k} test acc", [c["step"] for c in r["curve"]], [c["test"] for c in r["curve"]]))
            series.append(
                Series(
                    "softmax SC fraction", [c["step"] for c in soft["curve"]], [c["zero_grad"] for c in soft["curve"]]
                )
            )
    m.figure = Figure("C10: test accuracy on (a + b) mod p (first seed)", series, "step", "accuracy / fraction")
    m.info = {
        "p": p,
        "train fraction": 0.5,
        "steps": steps,
        "optimizer": f"AdamW (or ⊥Grad around AdamW) lr {lr}, betas (0.9, 0.99), full batch",
        "model": "one-hot (2p) → 128 → 128 → p, ReLU, float32",
    }
    return m


register(
    Claim(
        id="C10",
        title="StableMax groks without regularization; softmax CE hits Softmax Collapse",
        paper=(
            "Prieto, Barsbey, Mediano & Birdal (2025), Grokking at the Edge of Numerical Stability, arXiv:2501.04697 "
            "(#253)"
        ),
        statement=(
            "Without regularization, softmax cross-entropy memorizes, stays at low test accuracy and drifts into "
            "Softmax Collapse (float32 gradients exactly zero); StableMax cross-entropy avoids it and generalizes "
            "(grokking without regularization); ⊥Grad generalizes quickly, faster than weight decay."
        ),
        setting=(
            "(a + b) mod 31, one-hot concatenated inputs, MLP 62-128-128-31 (ReLU), 50% of the pairs for training, "
            "full-batch AdamW lr 1e-2, betas (0.9, 0.99) (the authors' setting) for 5,000 steps, float32: (a) softmax "
            "CE (wd 0), (b) StableMax CE (wd 0), (c) ⊥Grad(AdamW) + softmax CE (wd 0), (d) softmax CE with weight "
            "decay 1 (control). Scaled down from the sheet (p = 53/97, 2×256, lr 1e-3, 10–20k steps) to fit the CPU "
            "budget; lr 1e-2 is the authors' ⊥AdamW setting and lets the control grok within the run."
        ),
        experiment=_c10_experiment,
        checks=(
            Check(
                "softmax stays low",
                "softmax CE without weight decay ends below 50% test accuracy",
                "softmax_test",
                AllPass(0.5),
            ),
            Check(
                "Softmax Collapse rises",
                "the fraction of training samples with an exactly-zero float32 loss "
                "gradient grows after memorization (final − at 100% train accuracy > 0)",
                "softmax_sc_rise",
                MeanAbove(0.0),
            ),
            Check(
                "StableMax groks",
                "StableMax CE without weight decay exceeds 90% test accuracy",
                "stablemax_test",
                AllPass(0.9, below=False),
            ),
            Check(
                "⊥Grad groks",
                "⊥Grad(AdamW) with softmax CE, no weight decay, exceeds 90% test accuracy",
                "orthograd_test",
                AllPass(0.9, below=False),
            ),
            Check(
                "⊥Grad faster than weight decay",
                "log(steps to 90% test accuracy with weight decay 1 / with ⊥Grad) > 0 (unreached: 2× the budget)",
                "orthograd_speedup",
                MeanAbove(0.0),
            ),
            Check(
                "weight-decay control groks",
                "softmax CE with weight decay 1 exceeds 90% test accuracy",
                "softmax_wd1_test",
                AllPass(0.9, below=False),
                role="report",
            ),
        ),
        family="generalization",
        seeds=3,
        quick_seeds=1,
        requires=("adamw", "orthograd"),
        expected_minutes=3.0,
    )
)
