"""The ``optimlab`` command: ``list`` (the catalogue), ``demo`` (a small comparison), ``bench`` (benchmark),
``claims`` (executable paper claims)."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Sequence

from . import registry, routing
from .training import capabilities


def _fmt_value(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, tuple):
        return "(" + ", ".join(_fmt_value(x) for x in v) + ")"
    return str(v)


def catalogue_rows(family: str | None = None) -> list[dict[str, str]]:
    """One row per registered algorithm: the fields `optimlab list` prints."""
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
    print(render_table(catalogue_rows(args.family), markdown=args.markdown))
    if not args.markdown:
        print(f"\n{len(registry.available(args.family))} algorithms; `optimlab list --markdown` for a Markdown table")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    """Train the same small MLP on a generated regression task with several optimizers; print a comparison."""
    import torch

    names = args.optimizers.split(",")
    for name in names:
        registry.spec(name)  # fail early on unknown names
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 16, generator=g)
    w_true = torch.randn(16, 1, generator=g)
    y = torch.tanh(x @ w_true) + 0.05 * torch.randn(512, 1, generator=g)
    print(f"demo: 2-layer MLP on a generated regression task, {args.steps} full-batch steps, paper defaults\n")
    rows = []
    for name in names:
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.Tanh(), torch.nn.Linear(64, 1))
        spec = registry.spec(name)
        opt = registry.create(name, routing.param_groups(model, weight_decay=spec.defaults.get("weight_decay", 0.0)))
        start = time.perf_counter()
        loss = torch.tensor(float("nan"))
        for _ in range(args.steps):

            def closure(opt=opt, model=model):
                opt.zero_grad()
                out = torch.nn.functional.mse_loss(model(x), y)
                out.backward()
                return out

            loss = opt.step(closure)
        elapsed = time.perf_counter() - start
        rows.append({"optimizer": name, "final loss": f"{loss.item():.5f}", "seconds": f"{elapsed:.2f}"})
    print(render_table(rows))
    return 0


def _register_missing_extra(sub, command: str, missing: str) -> None:
    def fail(args: argparse.Namespace) -> int:
        print(f"optimlab {command} needs the '{missing}' package: pip install 'optimlab[bench]'", file=sys.stderr)
        return 2

    p = sub.add_parser(command, help=f"(unavailable: needs {missing})")
    p.add_argument("rest", nargs=argparse.REMAINDER)
    p.set_defaults(func=fail)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="optimlab", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_list = sub.add_parser("list", help="print the algorithm catalogue")
    p_list.add_argument("--family", default=None, help=f"one of: {', '.join(registry.families())}")
    p_list.add_argument("--markdown", action="store_true", help="print a Markdown table")
    p_list.set_defaults(func=_cmd_list)
    p_demo = sub.add_parser("demo", help="train a small model with several optimizers and compare")
    p_demo.add_argument("--optimizers", default="sgd,adamw,lion,ademamix,grams,adabelief")
    p_demo.add_argument("--steps", type=int, default=300)
    p_demo.set_defaults(func=_cmd_demo)
    for module in ("bench", "claims"):  # sub-packages add their own sub-commands
        try:
            sub_cli = importlib.import_module(f"optimlab.{module}.cli")
        except ModuleNotFoundError as e:
            if e.name in (f"optimlab.{module}", f"optimlab.{module}.cli"):
                continue
            _register_missing_extra(sub, module, e.name)  # e.g. optuna without the [bench] extra
            continue
        sub_cli.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyError as e:  # unknown algorithm names
        print(f"optimlab: {e.args[0]}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
