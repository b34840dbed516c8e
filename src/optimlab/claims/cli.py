"""``optimlab claims`` — list, run and report the executable claims.

    optimlab claims list
    optimlab claims run [--quick] [--seeds N] [--jobs N] [--out DIR] [ids …]
    optimlab claims report results.json [-o report.html] [--md verdicts.md]

``run`` writes ``DIR/results.json`` (rewritten after every finished claim, so an interrupted run keeps what it has)
and ``DIR/report.html`` and ``DIR/verdicts.md`` (the verdict table in Markdown), and prints the verdict table.
Each claim runs with ``--threads`` torch threads (default 1: these experiments are made of small operations, for
which one thread per process is fastest) and ``--jobs`` claims run in parallel processes (default: up to 2). Not
confirmed claims are results, not failures: the exit status is 1 only when a claim's experiment raised an error.

Also usable as ``python -m optimlab.claims.cli …``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from . import _framework as F
from . import report as R


def _claim_rows() -> list[dict[str, str]]:
    rows = []
    for c in F.all_claims():
        reason = c.pending_reason()
        rows.append(
            {
                "id": c.id,
                "status": "pending: " + reason if reason else "ready",
                "seeds": str(c.seeds) if not reason else "",
                "~minutes": f"{c.expected_minutes:g}" if not reason else "",
                "title": c.title + (" (weak)" if c.weak else ""),
            }
        )
    return rows


def _cmd_list(args: argparse.Namespace) -> int:
    rows = _claim_rows()
    cols = list(rows[0])
    if args.markdown:
        print("| " + " | ".join(cols) + " |")
        print("|" + "|".join("---" for _ in cols) + "|")
        for r in rows:
            print("| " + " | ".join(r[c] for c in cols) + " |")
        return 0
    widths = {c: min(max(len(c), *(len(r[c]) for r in rows)), 60) for c in cols[:-1]}
    print("  ".join(c.ljust(widths[c]) for c in cols[:-1]) + "  " + cols[-1])
    for r in rows:
        print("  ".join(r[c][:60].ljust(widths[c]) for c in cols[:-1]) + "  " + r[cols[-1]])
    ready = sum(r["status"] == "ready" for r in rows)
    print(f"\n{len(rows)} claims, {ready} ready; `optimlab claims run --quick` runs each in seconds")
    return 0


def _set_threads(threads: int | None) -> None:
    import torch

    if threads:
        torch.set_num_threads(int(threads))


def _worker(claim_id: str, quick: bool, seeds: int | None, threads: int | None) -> dict:
    """Run one claim in a worker process; returns the result as a plain dict (picklable, JSON-shaped)."""
    _set_threads(threads)
    return F.run_claim(F.get(claim_id), quick=quick, seeds=seeds, progress=False).to_dict()


def run_claims(
    claims: Sequence[F.Claim],
    *,
    quick: bool = False,
    seeds: int | None = None,
    jobs: int = 1,
    threads: int | None = 1,
    progress: bool = True,
    on_result=None,
) -> list[F.ClaimResult]:
    """Run ``claims`` (in ``jobs`` processes when > 1); results in catalogue order. ``on_result(results_so_far)``
    is called after each finished claim."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - optional dependency
        tqdm = None
    bar = tqdm(total=len(claims), desc="claims", unit="claim", dynamic_ncols=True) if (progress and tqdm) else None
    done: dict[str, F.ClaimResult] = {}
    order = {c.id: i for i, c in enumerate(claims)}

    def finish(result: F.ClaimResult) -> None:
        done[result.id] = result
        if bar is not None:
            bar.set_postfix_str(f"{result.id}: {result.status}")
            bar.update(1)
        if on_result is not None:
            on_result(sorted(done.values(), key=lambda r: order[r.id]))

    runnable = [c for c in claims if c.pending_reason() is None]
    for c in claims:
        if c.pending_reason() is not None:
            finish(F.run_claim(c, quick=quick, seeds=seeds))
    if jobs <= 1 or len(runnable) <= 1:
        _set_threads(threads)
        for c in runnable:
            if bar is not None:
                bar.set_postfix_str(f"running {c.id}")
            finish(F.run_claim(c, quick=quick, seeds=seeds, progress=progress))
    else:
        import multiprocessing as mp

        # longest first, so that the parallel jobs finish together
        runnable = sorted(runnable, key=lambda c: -c.expected_minutes)
        ctx = mp.get_context("spawn")
        with ctx.Pool(processes=jobs, maxtasksperchild=1) as pool:
            pending = [pool.apply_async(_worker, (c.id, quick, seeds, threads)) for c in runnable]
            for claim, handle in zip(runnable, pending):
                try:
                    finish(F.ClaimResult.from_dict(handle.get()))
                except Exception as e:  # the worker itself died (run_claim catches the experiment's errors)
                    finish(
                        F.ClaimResult(
                            id=claim.id,
                            title=claim.title,
                            paper=claim.paper,
                            statement=claim.statement,
                            setting=claim.setting,
                            status=F.ERROR,
                            quick=quick,
                            seeds=[],
                            runtime_s=0.0,
                            reason=f"worker process failed: {type(e).__name__}: {e}",
                        )
                    )
    if bar is not None:
        bar.close()
    return sorted(done.values(), key=lambda r: order[r.id])


def _cmd_run(args: argparse.Namespace) -> int:
    claims = F.select(args.ids)
    out = Path(args.out)
    jobs = args.jobs if args.jobs is not None else max(1, min(2, os.cpu_count() or 1))
    meta = {
        "quick": args.quick,
        "jobs": jobs,
        "threads": args.threads,
        "ids": [c.id for c in claims],
        "seeds": args.seeds,
    }
    start = time.perf_counter()

    def save(results: list[F.ClaimResult]) -> None:
        R.save_json(out / "results.json", results, {**meta, "wall_s": time.perf_counter() - start})

    results = run_claims(
        claims,
        quick=args.quick,
        seeds=args.seeds,
        jobs=jobs,
        threads=args.threads,
        progress=not args.no_progress,
        on_result=save,
    )
    meta["wall_s"] = time.perf_counter() - start
    R.save_json(out / "results.json", results, meta)
    R.save_html(out / "report.html", results, meta)
    R.save_markdown(out / "verdicts.md", results, meta)
    print(R.verdict_table(results))
    print(
        f"\n{meta['wall_s']:.0f} s wall; results: {out / 'results.json'}, report: {out / 'report.html'}, "
        f"{out / 'verdicts.md'}"
    )
    return 1 if any(r.status == F.ERROR for r in results) else 0


def _cmd_report(args: argparse.Namespace) -> int:
    results, doc = R.load_json(args.results)
    target = Path(args.output) if args.output else Path(args.results).with_name("report.html")
    meta = {**doc.get("meta", {}), "created": doc.get("created")}
    R.save_html(target, results, meta)
    print(R.verdict_table(results))
    print(f"\nreport: {target}")
    if args.md:
        print(f"verdicts: {R.save_markdown(args.md, results, meta)}")
    return 0


def add_commands(parser: argparse.ArgumentParser) -> None:
    """Add the ``list`` / ``run`` / ``report`` sub-commands to ``parser``."""
    sub = parser.add_subparsers(dest="claims_command", required=True)
    p_list = sub.add_parser("list", help="list the claims and whether they can run")
    p_list.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p_list.set_defaults(func=_cmd_list)
    p_run = sub.add_parser("run", help="run claims and write results.json and report.html")
    p_run.add_argument("ids", nargs="*", help="claim ids (default: all), e.g. C16 C14")
    p_run.add_argument("--quick", action="store_true", help="the seconds-long configuration of each claim")
    p_run.add_argument("--seeds", type=int, default=None, help="replicates per claim (default: each claim's own)")
    p_run.add_argument("--jobs", type=int, default=None, help="claims run in parallel processes (default: ≤ 2)")
    p_run.add_argument("--threads", type=int, default=1, help="torch threads per claim (default 1)")
    p_run.add_argument("--out", default="claims-results", help="output directory (default: claims-results)")
    p_run.add_argument("--no-progress", action="store_true", help="no progress bars")
    p_run.set_defaults(func=_cmd_run)
    p_rep = sub.add_parser("report", help="render report.html from a results.json")
    p_rep.add_argument("results", help="path of a results.json")
    p_rep.add_argument("-o", "--output", default=None, help="HTML path (default: next to the JSON)")
    p_rep.add_argument("--md", default=None, help="also write the verdict table as a Markdown page here")
    p_rep.set_defaults(func=_cmd_report)


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``claims`` command to the ``optimlab`` CLI's subparsers."""
    parser = subparsers.add_parser(
        "claims",
        help="run the executable claims of the seed papers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_commands(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optimlab claims", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_commands(parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyError as e:  # unknown claim ids
        print(f"optimlab claims: {e.args[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
