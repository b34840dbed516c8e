"""The flags of ``optimlab bench``: one parser per command (what :mod:`~optimlab.bench.cli` runs), their
defaults and help. Only argparse and os are imported here, so ``optimlab --help`` stays fast."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from typing import Any

Command = Callable[[argparse.Namespace], int]

DEFAULT_THREADS = 2
#: sweeps run this many worker processes by default, splitting the threads between them: on small CPU
#: workloads two 1-thread processes do about twice the work of one 2-thread process
DEFAULT_JOBS = min(2, os.cpu_count() or 1)
#: the defaults of ``bench run``'s flags (filled when its parser is built; the warnings for flags without effect)
RUN_DEFAULTS: dict[str, Any] = {}


def add_bench(subparsers: Any, commands: Mapping[str, Command]) -> argparse.ArgumentParser:
    """The ``bench`` parser and its sub-commands, each calling ``commands[name]``."""
    bench = subparsers.add_parser(
        "bench",
        help="benchmark optimizers on the workload suite",
        description="Benchmark optimizers: run sweeps into a results store, measure step costs, write reports.",
    )
    bench.set_defaults(func=lambda args: (bench.print_help(), 2)[1])
    sub = bench.add_subparsers(dest="bench_command", metavar="{" + ",".join(commands) + "}")
    adders = {
        "list": _add_list,
        "run": _add_run,
        "worker": _add_worker,
        "step-cost": _add_step_cost,
        "report": _add_report,
        "calibrate": _add_calibrate,
        "export": _add_export,
    }
    for name, func in commands.items():
        adders[name](sub, func)
    return bench


def _add_list(sub: Any, func: Command) -> None:
    p = sub.add_parser("list", help="list workloads, optimizers, suites or libraries")
    p.add_argument("what", nargs="?", default="workloads", choices=("workloads", "optimizers", "suites", "libraries"))
    p.set_defaults(func=func)


def _add_run(sub: Any, func: Command) -> None:
    p = sub.add_parser("run", help="run a sweep (resumable: finished runs are skipped)")
    _common(p)
    p.add_argument("--ruleset", default="defaults", choices=("defaults", "tuned"))
    p.add_argument("--seeds", type=int, default=3, help="seeds per workload (defaults ruleset)")
    p.add_argument("--trials", type=int, default=5, help="trials per study (tuned ruleset)")
    p.add_argument("--studies", type=int, default=3, help="independent studies (tuned ruleset)")
    p.add_argument("--sampler", default="qmc", choices=("qmc", "tpe"), help="tuned ruleset sampler")
    p.add_argument("--tune-schedule", action="store_true", help="also tune warm-up fraction and decay horizon")
    p.add_argument("--hparams", default="{}", help="JSON overrides for every run, e.g. '{\"lr\": 3e-3}'")
    p.add_argument("--schedule", choices=("cosine", "linear", "constant"), help="LR schedule (default cosine)")
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="multiply every workload's max_steps (default: 1.5 for the defaults ruleset, 1.0 for tuned)",
    )
    p.add_argument(
        "--budget-unit",
        default="grads",
        choices=("grads", "steps"),
        help="what max_steps counts: gradient-equivalent evaluations (equal compute, the default) or steps",
    )
    p.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="worker processes; --threads is split between them")
    p.add_argument("--retry-errors", action="store_true", help="rerun runs that ended with status error")
    p.add_argument("--dry-run", action="store_true", help="print the plan and a time estimate; write nothing")
    p.add_argument(
        "--enqueue-only", action="store_true", help="enqueue the planned runs and exit (workers run them: bench worker)"
    )
    _heartbeat_arg(p)
    p.set_defaults(func=func)
    RUN_DEFAULTS.update({a.dest: a.default for a in p._actions})


def _add_worker(sub: Any, func: Command) -> None:
    p = sub.add_parser("worker", help="work through the runs queued in a shared store (any number, any machine)")
    _storage_args(p)
    p.add_argument("--suite", default=None, help="only runs of this suite (name or version)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of this worker")
    p.add_argument("--max-runs", type=int, default=None, help="leave after this many runs")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    _heartbeat_arg(p)
    p.set_defaults(func=func)


def _add_step_cost(sub: Any, func: Command) -> None:
    p = sub.add_parser("step-cost", help="measure the per-step cost table c(optimizer, workload)")
    _common(p)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--force", action="store_true", help="re-measure pairs already in the table")
    p.add_argument("--hparams", default="{}", help="JSON hyperparameters to measure at (default: paper defaults)")
    p.set_defaults(func=func)


def _add_report(sub: Any, func: Command) -> None:
    p = sub.add_parser("report", help="write the HTML report, a Markdown leaderboard and a JSON summary")
    _storage_args(p)
    p.add_argument("--suite", default="core", help="suite name or version to report")
    p.add_argument("--html", default=None, help="HTML output (default <results>/report.html)")
    p.add_argument("--md", default=None, help="Markdown leaderboard (default <results>/LEADERBOARD.md)")
    p.add_argument("--json", default=None, help="JSON summary (default <results>/summary.json)")
    p.add_argument("--baseline", default="adamw", help="optimizer the speedups are relative to")
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the score CIs")
    p.add_argument("--machine", default=None, help="step-cost table (machine id) to use for T")
    p.add_argument(
        "--rank-by",
        choices=("T", "S", "G"),
        default="T",
        help="clock the leaderboard is ordered and ranked on (default T; G where run times are not comparable)",
    )
    p.set_defaults(func=func)


def _add_calibrate(sub: Any, func: Command) -> None:
    p = sub.add_parser("calibrate", help="maintainers: propose targets and budgets (benchmark.md §6.4)")
    _common(p)
    p.set_defaults(optimizers="adamw,sgd_nesterov")
    for action in p._actions:
        if action.dest == "optimizers":
            action.required = False
    p.add_argument("--trials", type=int, default=6, help="quasi-random configurations per optimizer and workload")
    p.add_argument("--seeds", type=int, default=3, help="seeds for the best configuration")
    p.add_argument("--budget", type=float, default=1.0, help="multiple of max_steps for the calibration runs")
    p.add_argument("--jobs", type=int, default=DEFAULT_JOBS)
    p.add_argument("--out", default=None, help="write the proposals as JSON here")
    p.set_defaults(func=func)


def _add_export(sub: Any, func: Command) -> None:
    p = sub.add_parser("export", help="export every evaluation point in long format (CSV or JSONL)")
    _storage_args(p)
    p.add_argument("--suite", default=None)
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--out", default="-", help="output file (default stdout)")
    p.set_defaults(func=func)


def _heartbeat_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--heartbeat",
        type=int,
        default=int(os.environ.get("OPTIMLAB_BENCH_HEARTBEAT", "20")),
        help="seconds between a running trial's heartbeats; silent for 4× this, it is retried elsewhere",
    )


def _storage_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--results", default=os.environ.get("OPTIMLAB_BENCH_RESULTS", "runs"), help="results directory")
    p.add_argument(
        "--storage",
        default=os.environ.get("OPTIMLAB_BENCH_STORAGE"),
        help="SQLAlchemy URL of the store (default sqlite:///<results>/optimlab-bench.sqlite3)",
    )


def _common(p: argparse.ArgumentParser) -> None:
    _storage_args(p)
    p.add_argument("--suite", default="core", help="core, or smoke (tiny configs, for tests)")
    p.add_argument(
        "--optimizers",
        "--opt",
        required=True,
        help="comma-separated ids: adamw,sgd,torch:AdamW,po:Lion; all: every registered optimizer",
    )
    p.add_argument("--workloads", default=None, help="comma-separated workload ids (default: the whole suite)")
    p.add_argument("--threads", type=int, default=DEFAULT_THREADS, help="torch threads (timing convention: 2)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
