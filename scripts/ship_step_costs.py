"""Measure and write ``src/optimlab/bench/data/step_costs.json``: the AdamW step costs that the time estimate of
``optimlab bench run --dry-run`` falls back on where the store has no step-cost table (optimlab.bench.estimate).

The cost is CPU seconds per training step (``stepcost.measure`` with ``time.process_time``) of AdamW at its
defaults with one torch thread — what each worker of a default ``bench run`` uses (2 jobs of 1 thread) — on every
workload of the core suite. CPU time, unlike wall time, stays near a quiet machine's figure on a loaded one::

    python scripts/ship_step_costs.py [--steps 100] [--repeats 2]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time


def main() -> None:
    from optimlab.bench import adapters, estimate, provenance, runner, stepcost
    from optimlab.bench import workloads as W

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    runner.set_threads(1)
    version, smoke, workloads = W.suite("core")
    adamw = adapters.resolve("adamw")
    costs = {}
    for w in workloads:
        m = stepcost.measure(
            adamw, w, warmup=args.warmup, steps=args.steps, repeats=args.repeats, smoke=smoke, clock=time.process_time
        )
        costs[w.id] = round(m["seconds_per_step"], 6)
        print(f"{w.id:18} {1000 * costs[w.id]:8.3f} ms/step (CPU)", flush=True)
    out = {
        "command": estimate.SHIPPED_COMMAND,
        "algorithm": "adamw",
        "clock": "CPU seconds per step, 1 torch thread",
        "machine": f"{provenance.cpu_model()}, {os.cpu_count()} cores",
        "date": datetime.date.today().isoformat(),
        "settings": vars(args),
        "suites": {version: dict(sorted(costs.items()))},
    }
    estimate.SHIPPED.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {estimate.SHIPPED}")


if __name__ == "__main__":
    main()
