"""C6: optimizer shoot-out — are Grams, Lion, Optimistic AMSGrad, AdEMAMix and EXAdam faster than Adam?"""

from __future__ import annotations

import math

import numpy as np

from .. import registry
from . import _common as U
from ._framework import Check, Claim, Context, Figure, Measurements, Series, downsample, register
from ._problems import digits_mlp, logistic, noisy_quadratic, rosenbrock, tune_and_measure
from ._stats import MeanAbove

# name: (factory, target, budget, eval every, metric)
TASKS = {
    "rosenbrock": (rosenbrock, 1e-2, 4000, 1, "f"),
    "noisy_quadratic": (noisy_quadratic, 0.1, 2000, 5, "f (start ≈ 10)"),
    "logistic": (logistic, 1e-2, 2000, 10, "f − f*"),
    "digits_mlp": (digits_mlp, 0.1, 2000, 20, "train cross-entropy"),
}

#: optimizers of the shoot-out and their learning-rate grids (7 log-spaced values; Lion's is 10× lower)
_GRID = [1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2, 3.16e-2, 1e-1]

OPTIMIZERS = {
    "adam": (_GRID, {}),
    "sgd": (_GRID, {"momentum": 0.9}),
    "amsgrad": (_GRID, {}),
    "optimistic_amsgrad": (_GRID, {}),
    "lion": ([v / 10 for v in _GRID], {}),
    "grams": (_GRID, {}),
    "exadam": (_GRID, {}),
    "ademamix": (_GRID, {}),  # t_alpha_beta3 = budget is added per task (the paper's warm-up recipe)
}

#: the "faster than Adam" claims the shoot-out judges (the others are reported)
CLAIMED = ("grams", "lion", "optimistic_amsgrad", "ademamix", "exadam")

#: added when they are in the registry (being written by others)
OPTIONAL = {"adahessian": (_GRID, {}), "sophia_h": (_GRID, {})}


def _optimizers() -> dict:
    known = set(registry.available())
    opts = dict(OPTIMIZERS)
    opts.update({k: v for k, v in OPTIONAL.items() if k in known})
    return opts


def _experiment(ctx: Context) -> Measurements:
    opts = _optimizers()
    tasks = dict(TASKS)
    if ctx.quick:
        tasks = {"rosenbrock": (rosenbrock, 1.0, 200, 5, "f"), "noisy_quadratic": (noisy_quadratic, 1.0, 200, 5, "f")}
        opts = {k: ([1e-3, 1e-2], extra) for k, (_, extra) in opts.items() if k in ("adam", "sgd", "lion", "grams")}
    m = Measurements()
    results: dict[str, dict[str, dict]] = {}
    jobs = [(t, o) for t in tasks for o in opts]
    for task, opt in ctx.iterate(jobs, desc="C6 task × optimizer"):
        make, target, budget, every, _ = tasks[task]
        lrs, extra = opts[opt]
        extra = {"weight_decay": 0.0, **extra}  # no decoupled decay: every optimizer minimizes the same objective
        if opt == "ademamix":
            extra["t_alpha_beta3"] = budget
        results.setdefault(task, {})[opt] = tune_and_measure(
            make, opt, lrs, target, budget, every, ctx.seeds, tune_seed=1000, extra=extra
        )
    for opt in opts:
        if opt == "adam":
            continue
        for task in tasks:
            budget = tasks[task][2]
            for a, b in zip(results[task]["adam"]["steps"], results[task][opt]["steps"]):
                m.add(f"{opt}_vs_adam", U.censored_log_ratio(a, b, 2 * budget))
    ranking = {}
    for task, res in results.items():
        med = {o: float(np.median(r["steps"])) for o, r in res.items()}
        ranking[task] = sorted(med, key=lambda o: (med[o], o))
        for o, r in res.items():
            m.table.append(
                {
                    "task": task,
                    "optimizer": o,
                    "lr": r["lr"],
                    "median steps": med[o],
                    "reached": f"{sum(math.isfinite(s) for s in r['steps'])}/{len(r['steps'])}",
                    "rank": ranking[task].index(o) + 1,
                }
            )
    first = next(iter(tasks))
    m.figure = Figure(
        f"C6: {first} — metric vs step (first seed, tuned lr)",
        [
            Series(o, *downsample([c[0] for c in r["curves"][0]], [max(c[1], 1e-12) for c in r["curves"][0]]))
            for o, r in results[first].items()
        ],
        "step",
        tasks[first][4],
        logy=True,
        hlines=[(tasks[first][1], "target")],
    )
    m.info = {
        "ranking by median steps to target": ranking,
        "targets": {t: v[1] for t, v in tasks.items()},
        "budgets": {t: v[2] for t, v in tasks.items()},
        "tuning seed": 1000,
        "not run (not in the registry)": [k for k in OPTIONAL if k not in opts],
    }
    return m


def _check(opt: str, role: str) -> Check:
    return Check(
        f"{opt} faster than Adam",
        f"log(steps_Adam / steps_{opt}) > 0 over (task, seed), each with its tuned lr; unreached targets count as "
        "2× the budget",
        f"{opt}_vs_adam",
        MeanAbove(0.0),
        role=role,
    )


register(
    Claim(
        id="C6",
        title="Optimizer shoot-out: are Grams, Lion, Optimistic AMSGrad, AdEMAMix, EXAdam faster than Adam?",
        paper=(
            "Cao, Li & Song (2024), Grams, arXiv:2412.17107 (#121); Chen et al. (2023), Lion, arXiv:2302.06675 (#26); "
            "Wang, Li & Li (2019), Optimistic AMSGrad, arXiv:1903.01435 (#28); Pagliardini et al. (2024), AdEMAMix, "
            "arXiv:2409.03137; Adly (2024), EXAdam, arXiv:2412.20302"
        ),
        statement="Each of Grams, Lion, Optimistic AMSGrad, AdEMAMix and EXAdam reaches a target in fewer steps than "
        "Adam.",
        setting=(
            "Four tasks: 2-D Rosenbrock from (−1.5, 2) (target f ≤ 1e-2, 4k steps), 100-d noisy quadratic with "
            "condition number 100 (f ≤ 0.1), ℓ2-logistic regression d = 100, n = 1,000, batch 64 (f − f* ≤ 1e-2), "
            "MLP 64-64-10 on load_digits, batch 64 (train CE ≤ 0.1). Per optimizer and task the lr is picked from a "
            "7-point log grid on a separate tuning seed; steps to target on 5 seeds; weight decay 0 for all. "
            "AdaHessian and Sophia-H join (reported) when they are in the registry; Muon (matrices only) is not run."
        ),
        experiment=_experiment,
        checks=tuple(_check(o, "verdict") for o in CLAIMED)
        + tuple(_check(o, "report") for o in ("sgd", "amsgrad", *OPTIONAL)),
        family="speed",
        seeds=5,
        quick_seeds=2,
        requires=("adam", "sgd", "amsgrad", "optimistic_amsgrad", "lion", "grams", "exadam", "ademamix"),
        expected_minutes=4.0,
    )
)
