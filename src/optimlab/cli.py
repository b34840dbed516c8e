"""The ``optimlab`` command: ``list`` (the catalogue), ``demo`` (a small comparison), ``bench`` (benchmark),
``claims`` (executable paper claims)."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

#: sub-packages that add their own sub-commands (``register(subparsers)`` in ``optimlab.<name>.cli``), with the
#: line ``optimlab --help`` shows for them: a sub-package's CLI module is imported only when its command runs
SUBPACKAGE_COMMANDS = {
    "bench": "benchmark optimizers on the workload suite",
    "claims": "run the executable claims of the seed papers",
}


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt_value(x) for x in v) + ")"
    return str(v)


def catalogue_rows(family: str | None = None) -> list[dict[str, str]]:
    """One row per registered algorithm: the fields `optimlab list` prints."""
    from . import registry
    from .training import capabilities

    rows = []
    for s in registry.specs(family):
        paper = s.paper
        rows.append(
            {
                "name": s.name,
                "class": s.cls.__name__,
                "family": s.family,
                "paper": f"{paper.authors} {paper.year}" + (f" (arXiv:{paper.arxiv})" if paper.arxiv else ""),
                "defaults": ", ".join(f"{k}={_fmt_value(v)}" for k, v in s.defaults.items()),
                "state/param": f"{s.state_tensors:g}",
                "closure": "yes" if capabilities(s).closure else "",
                "tuning-free": s.tuning_free or "",
            }
        )
    return rows


def render_table(rows: list[dict[str, str]], markdown: bool = False) -> str:
    if not rows:
        return "(no algorithms)"
    cols = list(rows[0])
    if markdown:
        lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
        lines += ["| " + " | ".join(r[c] for c in cols) + " |" for r in rows]
        return "\n".join(lines)
    widths = {c: max(len(c), *(len(r[c]) for r in rows)) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols), "  ".join("-" * widths[c] for c in cols)]
    lines += ["  ".join(r[c].ljust(widths[c]) for c in cols) for r in rows]
    return "\n".join(lines)


def _cmd_list(args: argparse.Namespace) -> int:
    from . import registry

    if args.family is not None and args.family not in registry.families():
        print(f"optimlab: unknown family {args.family!r}; known: {', '.join(registry.families())}", file=sys.stderr)
        return 2
    print(render_table(catalogue_rows(args.family), markdown=args.markdown))
    if not args.markdown:
        print(f"\n{len(registry.available(args.family))} algorithms; `optimlab list --markdown` for a Markdown table")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """Train a small MLP with several optimizers, print the final losses and write the loss curves."""
    from pathlib import Path

    from . import demo

    print(f"demo: 2-layer MLP on a generated 4-class task, {args.steps} full-batch steps, paper defaults\n")
    try:
        runs, plot = demo.run(args.optimizers.split(","), args.steps, Path(args.out))
    except ValueError as e:
        print(f"optimlab demo: {e}", file=sys.stderr)
        return 2
    rows = [{"optimizer": r.name, "final loss": f"{r.losses[-1]:.5f}", "seconds": f"{r.seconds:.2f}"} for r in runs]
    print(render_table(rows))
    print(f"\nloss curves: {plot.resolve()}")
    return 0


def _register_missing_extra(sub, command: str, missing: str) -> None:
    def fail(args: argparse.Namespace) -> int:
        print(f"optimlab {command} needs the '{missing}' package: pip install 'optimlab[bench]'", file=sys.stderr)
        return 2

    p = sub.add_parser(command, help=f"(unavailable: needs {missing})")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=fail)


def _add_list(sub) -> None:
    p = sub.add_parser("list", help="print the algorithm catalogue")
    p.add_argument("--family", default=None, help="only this family (e.g. adam, sharpness; see the family column)")
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p.set_defaults(func=_cmd_list)


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="train a small model with several optimizers and compare")
    p.add_argument("--optimizers", default="sgd,adamw,lion,ademamix,grams,adabelief")
    p.add_argument("--out", default="runs/demo/losses", help="plot path; .png with matplotlib, else .svg")
    p.add_argument("--steps", type=int, default=300)
    p.set_defaults(func=_cmd_demo)


def _add_subpackage(sub, module: str) -> None:
    """The sub-commands of ``optimlab.<module>.cli``, or a stub that says which extra is missing."""
    try:
        sub_cli = importlib.import_module(f"optimlab.{module}.cli")
    except ModuleNotFoundError as e:
        if e.name in (f"optimlab.{module}", f"optimlab.{module}.cli"):
            return
        _register_missing_extra(sub, module, e.name)  # e.g. optuna without the [bench] extra
        return
    sub_cli.register(sub)


def build_parser(load: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``optimlab`` parser. ``load``: the sub-packages whose CLI modules are imported (default: all); the
    others get a one-line entry, enough for ``optimlab --help`` (which then imports nothing heavy)."""
    parser = argparse.ArgumentParser(prog="optimlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_list(sub)
    _add_demo(sub)
    for module, line in SUBPACKAGE_COMMANDS.items():
        if load is None or module in load:
            _add_subpackage(sub, module)
        else:
            sub.add_parser(module, help=line, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(load=[a for a in argv[:1] if a in SUBPACKAGE_COMMANDS]).parse_args(argv)
    try:
        return args.func(args)
    except KeyError as e:  # unknown algorithm names
        print(f"optimlab: {e.args[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
