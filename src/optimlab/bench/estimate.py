"""How long a planned sweep will take: the time estimate of ``optimlab bench run --dry-run``.

Every pending run is charged its whole budget (runs stop at the target, so with costs measured on this machine
the estimate is an upper bound, ``≤``; otherwise it is an estimate, ``≈``) at a per-step cost taken, in order, from

1. the store's step-cost table (``optimlab bench step-cost``): this optimizer on this workload, at the defaults;
2. the median of the table's other optimizers on this workload;
3. the AdamW step costs shipped with the suite (``data/step_costs.json``, written by :data:`SHIPPED_COMMAND`):
   CPU seconds per step with one torch thread, as each worker of a default ``bench run`` (2 jobs of 1 thread)
   runs, so on a quiet machine of that kind wall time ≈ CPU time. With the equal-compute budget
   (``--budget-unit grads``, the default) a run makes about ``max_steps`` gradient evaluations whatever the
   optimizer, so AdamW's cost per step is a fair per-run figure; optimizers with expensive steps (Shampoo, SOAP,
   second-order) take longer;

and a pair with none of these is shown as ``?``. The estimate reads the store and writes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

SHIPPED = Path(__file__).resolve().parent / "data" / "step_costs.json"
#: the command that measures and writes the shipped table
SHIPPED_COMMAND = "python scripts/ship_step_costs.py"

Pairs = Mapping[tuple[str, str], tuple[int, int]]


@cache
def shipped_costs() -> dict[str, Any]:
    """The shipped table: ``{"suites": {suite version: {workload: seconds per step}}, "machine": ..., ...}``."""
    return json.loads(SHIPPED.read_text())


def pending_pairs(cells: Iterable[Any]) -> dict[tuple[str, str], tuple[int, int]]:
    """(workload, algorithm) -> (number of runs, max_steps of one run) of the planned cells."""
    from . import workloads as W

    pairs: dict[tuple[str, str], tuple[int, int]] = {}
    for c in cells:
        k = (c.meta["workload"], c.meta["algorithm"])
        max_steps = W.get(c.spec.workload).budget_for(c.spec.smoke).scaled(c.spec.budget_factor).max_steps
        pairs[k] = (pairs.get(k, (0, 0))[0] + 1, max_steps)
    return pairs


def _table(result_store: Any, version: str) -> dict[tuple[str, str], float]:
    """(algorithm, workload) -> seconds per step at the defaults, from the store's step-cost tables."""
    tables = result_store.step_costs(version) if result_store is not None else {}
    costs: dict[tuple[str, str], float] = {}
    for table in tables.values():
        for (a, w, hk), rec in table.items():
            if hk == "":
                costs.setdefault((a, w), rec["value"])
    return costs


def _cost(table: Mapping[tuple[str, str], float], shipped: Mapping[str, float], a: str, w: str):
    """(seconds per step, where it came from) of one pair; (None, "?") when nothing says."""
    if (a, w) in table:
        return table[(a, w)], "table"
    others = sorted(v for (_, w2), v in table.items() if w2 == w)
    if others:
        return others[len(others) // 2], "workload median"
    if w in shipped:
        return shipped[w], "shipped adamw"
    return None, "?"


def estimate_lines(result_store: Any, version: str, pairs: Pairs, jobs: int) -> list[str]:
    """The estimate's head line, a line saying where the costs came from, and one line per pending pair."""
    table = _table(result_store, version)
    info = shipped_costs()
    shipped = info["suites"].get(version, {})
    lines, total, sources = [], 0.0, {}
    for (w, a), (n, max_steps) in sorted(pairs.items()):
        c, source = _cost(table, shipped, a, w)
        sources[source] = sources.get(source, 0) + 1
        t = None if c is None else n * max_steps * c
        total += t or 0.0
        sign = "≤" if source == "table" else "≈"
        lines.append(f"  {w:18} {a:18} {n:4d} runs  {'?' if t is None else f'{sign} {t / 60:6.1f} min'}  ({source})")
    sign = "≤" if set(sources) == {"table"} else "≈"
    head = f"estimate: {sign} {total / 60 / max(1, jobs):.1f} min with {jobs} worker(s) (every run to its budget)"
    notes = [f"{k}: {sources[k]}" for k in ("table", "workload median", "shipped adamw", "?") if k in sources]
    why = [f"cost per step of the {len(pairs)} pairs from: {', '.join(notes)}"]
    if "shipped adamw" in sources:
        why.append(
            f"shipped adamw: AdamW's {info['clock']} on {version}, measured on {info['machine']} ({info['date']}); "
            "a loaded machine takes longer; `optimlab bench step-cost --optimizers …` measures this one"
        )
    if "?" in sources:
        why.append(f"?: no step cost for {version} here; `optimlab bench step-cost --suite … --optimizers …` adds it")
    return [head, *["  " + x for x in why], *lines]
