"""``optimlab bench``: what list, run, worker, step-cost, report, calibrate and export do (their flags:
:mod:`~optimlab.bench.cli_args`).

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

from . import cli_args

#: the defaults ruleset runs max_steps × 1.5 (benchmark.md §6.3: self-tuning optimizers get more steps)
DEFAULTS_BUDGET = 1.5


def mask_url(url: str) -> str:
    from .store import mask_url as mask

    return mask(url)


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``bench`` (with ``list``, ``run``, ``worker``, ``step-cost``, ``report``, ``calibrate``, ``export``) to
    ``subparsers``; the flags are defined in :mod:`~optimlab.bench.cli_args`."""
    commands = {
        "list": cmd_list,
        "run": cmd_run,
        "worker": cmd_worker,
        "step-cost": cmd_step_cost,
        "report": cmd_report,
        "calibrate": cmd_calibrate,
        "export": cmd_export,
    }
    return cli_args.add_bench(subparsers, commands)


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

    for message in _ineffective_flags(args, cli_args.RUN_DEFAULTS):
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
