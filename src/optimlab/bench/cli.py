"""``optimlab bench``: list, run, step-cost, report (and export).

``register(subparsers)`` adds the ``bench`` command to an argparse sub-parsers object (the ``optimlab`` CLI calls
it); every leaf parser sets ``func`` to a callable taking the parsed namespace and returning an exit code.
``python -m optimlab.bench.cli …`` runs the same commands stand-alone.

Examples::

    optimlab bench list workloads
    optimlab bench run --suite core --ruleset defaults --optimizers adamw,sgd,lion --seeds 3
    optimlab bench run --suite core --ruleset tuned --optimizers adamw --trials 5 --studies 3
    optimlab bench step-cost --suite core --optimizers adamw,sgd
    optimlab bench report --html report.html --md LEADERBOARD.md
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

DEFAULT_THREADS = 2
#: sweeps run this many worker processes by default, splitting the threads between them: on small CPU
#: workloads two 1-thread processes do about twice the work of one 2-thread process
DEFAULT_JOBS = min(2, os.cpu_count() or 1)
#: the defaults ruleset runs max_steps × 1.5 (benchmark.md §6.3: self-tuning optimizers get more steps)
DEFAULTS_BUDGET = 1.5
_RUN_DEFAULTS: dict[str, Any] = {}


def mask_url(url: str) -> str:
    from .store import mask_url as mask

    return mask(url)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` (with ``list``, ``run``, ``step-cost``, ``report``, ``export``) to ``subparsers``."""
    bench = subparsers.add_parser(
        "bench",
        help="benchmark optimizers on the workload suite",
        description="Benchmark optimizers: run sweeps into a results store, measure step costs, write reports.",
    )
    bench.set_defaults(func=lambda args: (bench.print_help(), 2)[1])
    sub = bench.add_subparsers(dest="bench_command", metavar="{list,run,step-cost,report,calibrate,export}")
    for add in (_add_list, _add_run, _add_worker, _add_step_cost, _add_report, _add_calibrate, _add_export):
        add(sub)
    return bench


def _add_list(sub: Any) -> None:
    p = sub.add_parser("list", help="list workloads, optimizers, suites or libraries")
    p.add_argument("what", nargs="?", default="workloads", choices=("workloads", "optimizers", "suites", "libraries"))
    p.set_defaults(func=cmd_list)


def _add_run(sub: Any) -> None:
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
    p.set_defaults(func=cmd_run)
    _RUN_DEFAULTS.update({a.dest: a.default for a in p._actions})


def _add_worker(sub: Any) -> None:
    p = sub.add_parser("worker", help="work through the runs queued in a shared store (any number, any machine)")
    _storage_args(p)
    p.add_argument("--suite", default=None, help="only runs of this suite (name or version)")
    p.add_argument("--threads", type=int, default=1, help="torch threads of this worker")
    p.add_argument("--max-runs", type=int, default=None, help="leave after this many runs")
    p.add_argument("--no-progress", action="store_true", help="no progress lines")
    _heartbeat_arg(p)
    p.set_defaults(func=cmd_worker)


def _add_step_cost(sub: Any) -> None:
    p = sub.add_parser("step-cost", help="measure the per-step cost table c(optimizer, workload)")
    _common(p)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--force", action="store_true", help="re-measure pairs already in the table")
    p.add_argument("--hparams", default="{}", help="JSON hyperparameters to measure at (default: paper defaults)")
    p.set_defaults(func=cmd_step_cost)


def _add_report(sub: Any) -> None:
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
    p.set_defaults(func=cmd_report)


def _add_calibrate(sub: Any) -> None:
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
    p.set_defaults(func=cmd_calibrate)


def _add_export(sub: Any) -> None:
    p = sub.add_parser("export", help="export every evaluation point in long format (CSV or JSONL)")
    _storage_args(p)
    p.add_argument("--suite", default=None)
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv")
    p.add_argument("--out", default="-", help="output file (default stdout)")
    p.set_defaults(func=cmd_export)


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


# ---------------------------------------------------------------------------------------------- helpers
def _url(args, create: bool = True) -> str:
    from . import store

    return args.storage or store.default_storage_url(args.results, create=create)


def _store(args):
    from . import store

    return store.ResultStore(_url(args), heartbeat=getattr(args, "heartbeat", store.HEARTBEAT_S))


def _existing_store(args):
    """The store if it exists (a dry run creates neither the results directory nor a database file)."""
    from pathlib import Path

    from . import store

    url = _url(args, create=False)
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        return None
    return store.ResultStore(url, create=False)


def _warn(message: str) -> None:
    print(f"optimlab bench: warning: {message}", file=sys.stderr)


def _ineffective_flags(args, parser_defaults: dict[str, Any]) -> list[str]:
    """Warnings for flags that were given but have no effect with the other flags."""
    given = {k for k, v in vars(args).items() if k in parser_defaults and v != parser_defaults[k]}
    out = []
    if args.ruleset == "defaults":
        for flag in ("trials", "studies", "sampler", "tune_schedule"):
            if flag in given:
                out.append(f"--{flag.replace('_', '-')} has no effect with --ruleset defaults (it tunes nothing)")
    else:
        if "seeds" in given:
            out.append("--seeds has no effect with --ruleset tuned (study k runs seed k)")
    if args.ruleset == "tuned" and args.sampler == "tpe" and "jobs" in given and args.jobs > 1:
        out.append(
            "--jobs with --sampler tpe runs that many local workers on one global trial budget per study; "
            "TPE then proposes points before the previous ones are told"
        )
    if "jobs" in given and args.jobs > args.threads:
        out.append(f"--jobs {args.jobs} is capped at --threads {args.threads} (one thread per worker at least)")
    return out


def _suite(args):
    from . import workloads as W

    version, smoke, wls = W.suite(args.suite)
    if getattr(args, "workloads", None):
        ids = [s.strip() for s in args.workloads.split(",") if s.strip()]
        wls = [W.get(i) for i in ids]
    return version, smoke, wls


def _print_left_out(wls, handles) -> None:
    """Say which (optimizer, workload) pairs the plan leaves out because the optimizer is not applicable."""
    from . import tuning

    for line in tuning.left_out_lines(wls, handles):
        print(line, file=sys.stderr)


def _fail(message: str) -> int:
    print(f"optimlab bench: error: {message}", file=sys.stderr)
    return 2


# ---------------------------------------------------------------------------------------------- commands
def cmd_list(args) -> int:
    from . import adapters
    from . import workloads as W

    if args.what == "workloads":
        rows = [w.describe() for w in W.all_workloads()]
        print(f"{'id':18} {'metric':38} {'target':>8} {'batch':>6} {'hint':>6} {'max':>6} {'logits':>6}  stresses")
        for r in rows:
            target = f"{'≥' if r['direction'] == 'max' else '≤'}{r['target']:g}" + ("*" if r["provisional"] else "")
            print(
                f"{r['id']:18} {r['metric'][:38]:38} {target:>8} {r['batch_size']!s:>6} {r['step_hint']:>6} "
                f"{r['max_steps']:>6} {'yes' if r['logits'] else '-':>6}  {r['stresses']}"
            )
        if any(r["provisional"] for r in rows):
            print("* provisional target (not yet calibrated, benchmark.md §6.4)")
        print("logits: the loss is a cross-entropy of logits; optimizers flagged 'logits' run only on these")
    elif args.what == "optimizers":
        from .. import registry as R
        from ..training import capabilities

        for s in R.specs():
            caps = capabilities(s)
            flags = ",".join(
                f
                for f, on in (
                    ("closure", caps.closure),
                    ("hvp", caps.hvp),
                    ("logits", caps.logits),
                    ("head/tail", caps.head_tail),
                )
                if on
            )
            print(f"{s.name:16} {s.family:12} {flags:18} {s.summary}")
        print(
            "\nflags: closure/hvp/logits: what the harness feeds the step (logits: only on workloads whose loss is a "
            "cross-entropy of logits); head/tail: needs class-split losses of an imbalanced workload (none in the "
            "suite: not applicable)"
        )
        libs = adapters.available_libraries()
        others = ", ".join(f"{k}:" for k, v in libs.items() if v and k != "optimlab")
        print(f"\nother installed libraries (use prefix:ClassName): {others or 'none'}")
    elif args.what == "suites":
        for name, (version, smoke) in W.SUITES.items():
            print(f"{name:9} {version}{'  (smoke configs)' if smoke else ''}  {len(W.suite(name)[2])} workloads")
    else:
        for k, v in adapters.available_libraries().items():
            print(f"{k:14} {v or 'not installed'}")
    return 0


def _parse_hparams(args) -> dict[str, Any]:
    hp = json.loads(args.hparams) if args.hparams else {}
    if not isinstance(hp, dict):
        raise ValueError("--hparams must be a JSON object")
    if args.schedule:
        hp["sched_kind"] = args.schedule
    return hp


def _plan(args, version, smoke, wls, handles, hparams):
    """The cells of a defaults or quasi-random tuned sweep."""
    from . import tuning

    if args.ruleset == "defaults":
        return tuning.plan_defaults(
            version,
            wls,
            handles,
            seeds=args.seeds,
            smoke=smoke,
            hparams=hparams,
            budget_factor=args.budget,
            budget_unit=args.budget_unit,
        )
    return tuning.plan_quasirandom(
        version,
        wls,
        handles,
        trials=args.trials,
        studies=args.studies,
        smoke=smoke,
        fixed=hparams,
        extra_space=tuning.SCHEDULE_SPACE if args.tune_schedule else None,
        budget_factor=args.budget,
        budget_unit=args.budget_unit,
    )


def _dry_run(args, version, cells, jobs: int) -> int:
    """Print the plan and its time estimate (:mod:`~optimlab.bench.estimate`); create no directory or file."""
    from . import estimate, sweep

    result_store = _existing_store(args)
    pending = list(cells) if result_store is None else sweep.pending_cells(result_store, cells, args.retry_errors)
    where = mask_url(_url(args, create=False))
    print(f"{len(cells)} runs planned, {len(cells) - len(pending)} already in {where}; {len(pending)} to run")
    for line in estimate.estimate_lines(result_store, version, estimate.pending_pairs(pending), jobs):
        print(line)
    return 0


def cmd_run(args) -> int:
    if not args.dry_run:
        return _cmd_run(args)
    from . import datacache

    saved, datacache.WRITE = datacache.WRITE, False  # a dry run writes no file (the data-hash cache included)
    try:
        return _cmd_run(args)
    finally:
        datacache.WRITE = saved


def _cmd_run(args) -> int:
    from . import adapters, sweep

    for message in _ineffective_flags(args, _RUN_DEFAULTS):
        _warn(message)
    try:
        handles = adapters.resolve_many(args.optimizers)
        version, smoke, wls = _suite(args)
        hparams = _parse_hparams(args)
    except (ValueError, KeyError) as exc:
        return _fail(str(exc.args[0]) if exc.args else str(exc))
    _print_left_out(wls, handles)
    if args.budget is None:
        args.budget = DEFAULTS_BUDGET if args.ruleset == "defaults" else 1.0
    if args.ruleset == "tuned":
        n = args.studies * args.trials
        print(
            f"tuned: {args.studies} studies × {args.trials} trials = {n} runs per (optimizer, workload)",
            file=sys.stderr,
        )
    jobs = max(1, min(args.jobs, args.threads))
    if args.ruleset == "tuned" and args.sampler == "tpe":
        return _run_tpe(args, version, smoke, wls, handles, hparams, jobs)
    try:
        cells = _plan(args, version, smoke, wls, handles, hparams)
    except ValueError as exc:
        return _fail(str(exc))
    if args.dry_run:
        return _dry_run(args, version, cells, jobs)
    result_store = _store(args)
    print(f"store: {result_store.display_url}", file=sys.stderr)
    if args.enqueue_only:
        from . import workqueue

        todo = sweep.pending_cells(result_store, cells, args.retry_errors)
        n = workqueue.enqueue(result_store, [sweep.job_of(c) for c in todo])
        print(f"{len(cells)} runs planned, {len(cells) - len(todo)} already in the store, {n} enqueued")
        return 0
    summary = sweep.run_cells(
        result_store,
        cells,
        threads=args.threads,
        jobs=jobs,
        progress=not args.no_progress,
        retry_errors=args.retry_errors,
    )
    print(summary.line())
    return 0


def _run_tpe(args, version, smoke, wls, handles, hparams, jobs: int) -> int:
    """``bench run --ruleset tuned --sampler tpe``: the dry run's bound, or enqueue / run the TPE slots."""
    from . import sweep

    if args.dry_run:
        n = len(wls) * len(handles) * args.studies * args.trials
        shape = f"{len(wls)} workloads × {len(handles)} optimizers × {args.studies} × {args.trials}"
        print(f"tpe: {n} runs at most ({shape})")
        return 0
    result_store = _store(args)
    print(f"store: {result_store.display_url}", file=sys.stderr)
    plan = {
        "trials": args.trials,
        "studies": args.studies,
        "smoke": smoke,
        "fixed": hparams,
        "tune_schedule": args.tune_schedule,
        "budget_factor": args.budget,
        "budget_unit": args.budget_unit,
    }
    if args.enqueue_only:
        from . import workqueue

        entries = sweep.tpe_slots(version, wls, handles, **plan)
        print(f"{len(entries)} TPE slots, {workqueue.enqueue(result_store, entries)} enqueued")
        return 0
    summary = sweep.run_tpe(
        result_store,
        version,
        wls,
        handles,
        **plan,
        threads=args.threads,
        jobs=jobs,
        progress=not args.no_progress,
    )
    print(summary.line())
    return 0


def cmd_worker(args) -> int:
    from . import store, worker
    from . import workloads as W

    result_store = _store(args)
    prefix = store.PREFIX
    if args.suite:
        prefix += (W.SUITES[args.suite][0] if args.suite in W.SUITES else args.suite) + "/"
    print(f"worker on {result_store.display_url} ({prefix}*), {args.threads} thread(s)", file=sys.stderr)

    def started(meta) -> None:
        if not args.no_progress:
            print(f"run: {meta.get('workload')} · {meta.get('algorithm')} · seed {meta.get('seed')}", file=sys.stderr)

    summary = worker.work(result_store, prefix=prefix, threads=args.threads, max_runs=args.max_runs, on_start=started)
    print(f"worker: {summary.ran} runs, {summary.reaped} stale runs requeued, {summary.lost} results refused (reaped)")
    return 0


def cmd_step_cost(args) -> int:
    from . import adapters, stepcost

    try:
        handles = adapters.resolve_many(args.optimizers)
        version, smoke, wls = _suite(args)
    except (ValueError, KeyError) as exc:
        return _fail(str(exc.args[0]) if exc.args else str(exc))
    result_store = _store(args)
    _print_left_out(wls, handles)
    table = stepcost.run_step_costs(
        result_store,
        version,
        wls,
        handles,
        warmup=args.warmup,
        steps=args.steps,
        repeats=args.repeats,
        smoke=smoke,
        threads=args.threads,
        force=args.force,
        progress=not args.no_progress,
        hparams=json.loads(args.hparams or "{}"),
    )
    print(f"{'workload':18} {'optimizer':16} {'ms/step':>9}")
    for (a, w), c in sorted(table.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        print(f"{w:18} {a:16} {1000 * c:9.3f}")
    return 0


def cmd_report(args) -> int:
    from . import report
    from . import workloads as W

    result_store = _store(args)
    suite = W.SUITES[args.suite][0] if args.suite in W.SUITES else args.suite
    results_dir = args.results
    os.makedirs(results_dir, exist_ok=True)
    html = args.html or os.path.join(results_dir, "report.html")
    md = args.md or os.path.join(results_dir, "LEADERBOARD.md")
    js = args.json or os.path.join(results_dir, "summary.json")
    summary = report.build(
        result_store,
        suite=suite,
        baseline=args.baseline,
        n_boot=args.bootstrap,
        machine=args.machine,
        rank_by=args.rank_by,
    )
    if not summary["rulesets"]:
        return _fail(f"no results for suite {suite!r} in {result_store.display_url}")
    report.write_html(summary, html)
    report.write_markdown(summary, md)
    report.write_json(summary, js)
    print(f"wrote {html}, {md}, {js}")
    return 0


def cmd_calibrate(args) -> int:
    from . import adapters, calibration

    try:
        handles = adapters.resolve_many(args.optimizers)
        version, smoke, wls = _suite(args)
    except (ValueError, KeyError) as exc:
        return _fail(str(exc.args[0]) if exc.args else str(exc))
    _print_left_out(wls, handles)
    proposals = calibration.calibrate(
        _store(args),
        version,
        wls,
        handles,
        trials=args.trials,
        seeds=args.seeds,
        budget_factor=args.budget,
        smoke=smoke,
        threads=args.threads,
        jobs=max(1, min(args.jobs, args.threads)),
        progress=not args.no_progress,
    )
    print(calibration.format_proposals(proposals))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(proposals, f, indent=1, default=repr)
    return 0


def cmd_export(args) -> int:
    from . import report

    result_store = _store(args)
    out = sys.stdout if args.out == "-" else open(args.out, "w", newline="")
    try:
        n = report.export_long(result_store, out, fmt=args.format, suite=args.suite)
    finally:
        if out is not sys.stdout:
            out.close()
    print(f"{n} rows", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="optimlab", description="optimlab benchmark")
    register(parser.add_subparsers(dest="command", required=True))
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "bench":
        argv = ["bench", *argv]  # `python -m optimlab.bench.cli run …` works too
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
