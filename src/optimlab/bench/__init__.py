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
  :mod:`~optimlab.bench.datacache` — the per-user cache of workload data hashes used when planning;
* :mod:`~optimlab.bench.store` — the Optuna RDB results store (SQLite file or any SQLAlchemy URL), store-wide lock;
* :mod:`~optimlab.bench.workqueue` — the store's trials as the work queue (enqueue once, atomic claim,
  heartbeats, stale runs retried, results in one transaction); :mod:`~optimlab.bench.worker` — the worker loop
  (``optimlab bench worker``); :mod:`~optimlab.bench.sweep` — a sweep: enqueue, local workers, progress;
* :mod:`~optimlab.bench.stepcost` — the amortized per-step cost microbenchmark behind the modelled time T;
  :mod:`~optimlab.bench.estimate` — the dry run's time estimate (step-cost table, else shipped AdamW costs);
* :mod:`~optimlab.bench.variants` — what a run is ranked under (named variants) and which runs replace others;
  :mod:`~optimlab.bench.scoring` — S/G/T clocks, profiles, bootstrap CIs and rank intervals, honest speedups,
  miss distances, per-workload winners with ties; :mod:`~optimlab.bench.stats` — the rank test, Holm's
  correction and the tuning hit probabilities it uses;
* :mod:`~optimlab.bench.report` (data, Markdown via :mod:`~optimlab.bench.report_md`, JSON),
  :mod:`~optimlab.bench.report_html` / :mod:`~optimlab.bench.html_kit` / :mod:`~optimlab.bench.svg` — the
  self-contained HTML report; :mod:`~optimlab.bench.export` — the long-format export;
* :mod:`~optimlab.bench.calibration` — the target-setting procedure for freezing a suite version;
* :mod:`~optimlab.bench.provenance` — git/library/machine provenance stored with every result;
* :mod:`~optimlab.bench.cli` — ``optimlab bench list|run|worker|step-cost|report|calibrate|export``, their flags in
  :mod:`~optimlab.bench.cli_args`.

Quick start::

    optimlab bench run --suite core --ruleset defaults --optimizers adamw,sgd,lion --seeds 3
    optimlab bench step-cost --suite core --optimizers adamw,sgd,lion
    optimlab bench report                      # runs/report.html, runs/LEADERBOARD.md, runs/summary.json
"""
