"""optimlab's optimizer benchmark: fixed CPU-sized workloads, resumable sweeps, time-to-target scoring, one report.

Modules (one idea each):

* :mod:`~optimlab.bench.workloads` — the 12 ``core`` workloads (data, model, loss, metric, target, budget; each
  knows nothing of optimizers) and the ``smoke`` suite of their tiny test configurations;
* :mod:`~optimlab.bench.adapters` — optimizer ids → constructors: the optimlab registry, ``torch:``, ``po:``
  (pytorch_optimizer), ``heavyball:``, ``schedulefree:``, ``optimi:``, ``bnb:``;
* :mod:`~optimlab.bench.runner` — one trial: the training loop, closure/HVP/logits support and counting, timing,
  divergence, status (hit / miss / diverged / error), memory; which pairs are not applicable (Sophia-G needs a
  cross-entropy of logits);
* :mod:`~optimlab.bench.tuning` — rulesets (``defaults``, ``tuned``), search spaces, Halton points, cache keys;
* :mod:`~optimlab.bench.sweep` — executing a plan against the store (resumable, kill-safe, progress bars);
* :mod:`~optimlab.bench.store` — the Optuna RDB results store (SQLite file or any SQLAlchemy URL);
* :mod:`~optimlab.bench.stepcost` — the per-step cost microbenchmark behind the modelled time T;
* :mod:`~optimlab.bench.scoring` — S/G/T clocks, performance profiles, bootstrap CIs, win rates, speedups;
* :mod:`~optimlab.bench.report` / :mod:`~optimlab.bench.svg` — the self-contained HTML report, Markdown, JSON;
* :mod:`~optimlab.bench.calibration` — the target-setting procedure for freezing a suite version;
* :mod:`~optimlab.bench.provenance` — git/library/machine provenance stored with every result;
* :mod:`~optimlab.bench.cli` — ``optimlab bench list|run|step-cost|report|calibrate|export``.

Quick start::

    optimlab bench run --suite core --ruleset defaults --optimizers adamw,sgd,lion --seeds 3
    optimlab bench step-cost --suite core --optimizers adamw,sgd,lion
    optimlab bench report                      # runs/report.html, runs/LEADERBOARD.md, runs/summary.json
"""
