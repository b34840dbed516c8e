"""C5: EXAdam converges faster than Adam."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from . import _common as U
from ._framework import Check, Claim, Context, Figure, Measurements, Series, register
from ._problems import DigitsCNN, Problem, steps_to_target
from ._stats import MeanAbove


def _problem(seed: int) -> tuple[Problem, Callable[[], float]]:
    x, y = U.digits()
    tr, te = U.split_indices(len(x), (0.75, 0.25), 0)
    torch.manual_seed(seed)
    model = DigitsCNN()
    batches = torch.Generator().manual_seed(90_000 + seed)

    def step_loss(t: int) -> torch.Tensor:
        b = tr[torch.randint(0, len(tr), (64,), generator=batches)]
        return nn.functional.cross_entropy(model(x[b]), y[b])

    def train_loss() -> float:
        with torch.no_grad():
            return float(nn.functional.cross_entropy(model(x[tr]), y[tr]))

    return Problem(list(model.parameters()), step_loss, train_loss), lambda: U.accuracy(model, x[te], y[te])


VARIANTS = {
    "adam": ("adam", {}),
    "exadam": ("exadam", {}),
    "exadam_dynamic": ("exadam", {"dynamic_step_size": True}),
}


def _experiment(ctx: Context) -> Measurements:
    budget = ctx.pick(30, 1500)
    every = 10
    target = ctx.pick(1.5, 0.1)
    lrs = ctx.pick([1e-3], [3e-4, 1e-3, 3e-3])
    m = Measurements()
    res = {}
    for label, (name, extra) in ctx.iterate(list(VARIANTS.items()), desc="C5 variants"):
        tune = {}
        for lr in lrs:
            problem, _ = _problem(1000)
            t, curve = steps_to_target(problem, name, {"lr": lr, **extra}, target, budget, every)
            tune[lr] = (t, curve[-1][1])
        lr = min(lrs, key=lambda v: tune[v])
        out = []
        for s in ctx.seeds:
            problem, test_acc = _problem(s)
            t, curve = steps_to_target(problem, name, {"lr": lr, **extra}, target, budget, every)
            out.append({"steps": t, "test": test_acc(), "curve": curve})
        res[label] = {"lr": lr, "runs": out}
    for variant in ("exadam", "exadam_dynamic"):
        for a, b in zip(res["adam"]["runs"], res[variant]["runs"]):
            m.add(f"{variant}_speedup_log", U.censored_log_ratio(a["steps"], b["steps"], 2 * budget))
            m.add(f"{variant}_speedup_fraction", 1 - min(b["steps"], 2 * budget) / max(min(a["steps"], 2 * budget), 1))
            m.add(f"{variant}_test_gain", b["test"] - a["test"])
    for label, r in res.items():
        m.table.append(
            {
                "optimizer": label,
                "lr": r["lr"],
                "median steps to target": float(np.median([x["steps"] for x in r["runs"]])),
                "mean test acc (at target)": round(float(np.mean([x["test"] for x in r["runs"]])), 4),
            }
        )
    m.figure = Figure(
        "C5: training loss of the CNN on load_digits (first seed)",
        [
            Series(k, [c[0] for c in r["runs"][0]["curve"]], [c[1] for c in r["runs"][0]["curve"]])
            for k, r in res.items()
        ],
        "step",
        "train CE",
        logy=True,
        hlines=[(target, "target")],
    )
    m.info = {"target train loss": target, "budget": budget, "claimed speed-up": "48.07% (paper v1, CIFAR-10)"}
    return m


register(
    Claim(
        id="C5",
        title="EXAdam converges faster than Adam (48% on CIFAR-10 in the paper)",
        paper="Adly (2024), EXAdam: The Power of Adaptive Cross-Moments, arXiv:2412.20302 (#235)",
        statement="EXAdam needs fewer steps than Adam to reach a training-loss target (the paper reports 48.07% "
        "faster convergence on a CIFAR-10 CNN).",
        setting=(
            "CNN (conv16-conv32-pool-linear) on load_digits (75% train), batch 64; steps to full-training-set "
            "cross-entropy ≤ 0.1 (checked every 10 steps, budget 1,500); lr from {3e-4, 1e-3, 3e-3} per variant on a "
            "tuning seed; EXAdam with and without the version-1 dynamic step size."
        ),
        experiment=_experiment,
        checks=(
            Check("EXAdam faster", "log(steps_Adam / steps_EXAdam) > 0", "exadam_speedup_log", MeanAbove(0.0)),
            Check(
                "EXAdam (dynamic step) faster",
                "log(steps_Adam / steps_EXAdam-dynamic) > 0",
                "exadam_dynamic_speedup_log",
                MeanAbove(0.0),
                role="report",
            ),
            Check(
                "48% faster",
                "speed-up 1 − steps_EXAdam/steps_Adam > 0.4807 (the paper's number)",
                "exadam_speedup_fraction",
                MeanAbove(0.4807),
                role="report",
            ),
            Check(
                "accuracy not worse",
                "test accuracy at the target: EXAdam − Adam > −0.01",
                "exadam_test_gain",
                MeanAbove(-0.01),
                role="report",
            ),
        ),
        family="speed",
        seeds=5,
        quick_seeds=2,
        weak=True,
        requires=("adam", "exadam"),
        expected_minutes=2.0,
    )
)
