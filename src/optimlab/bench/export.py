"""Long-format export: one row per evaluation point of every stored run (CSV or JSONL), hyperparameters as
``p_*`` columns."""

from __future__ import annotations

import csv
import json
from typing import IO

from . import scoring, store

LONG_COLUMNS = (
    "suite",
    "ruleset",
    "workload",
    "workload_hash",
    "data_hash",
    "algorithm",
    "library",
    "algorithm_hash",
    "study",
    "trial",
    "seed",
    "step",
    "grad_evals",
    "hvp_evals",
    "train_time",
    "metric",
    "train_loss",
    "status",
    "git",
    "torch",
    "numpy",
    "cpu",
    "threads",
    "host",
    "date",
)


def export_long(result_store: store.ResultStore, out: IO[str], *, fmt: str = "csv", suite: str | None = None) -> int:
    """One row per evaluation point of every stored run (hyperparameters as ``p_*`` columns)."""
    rows = []
    pkeys: set[str] = set()
    for r in scoring.latest_per_key(result_store.records()):
        if suite and r["suite"] != suite:
            continue
        env = r.get("env") or {}
        hp = {f"p_{k}": v for k, v in (r.get("hparams") or {}).items()}
        pkeys |= set(hp)
        c = r.get("curve") or {}
        for i, step in enumerate(c.get("step", [])):
            row = {k: r.get(k) for k in LONG_COLUMNS[:11]}
            row.update(
                step=step,
                grad_evals=c["grad_evals"][i],
                hvp_evals=c["hvp_evals"][i],
                train_time=c["train_time"][i],
                metric=c["metric"][i],
                train_loss=c["train_loss"][i],
                status=r["status"],
                git=env.get("git"),
                torch=env.get("torch"),
                numpy=env.get("numpy"),
                cpu=env.get("cpu"),
                threads=env.get("threads"),
                host=env.get("host"),
                date=env.get("date"),
            )
            row.update(hp)
            rows.append(row)
    columns = [*LONG_COLUMNS, *sorted(pkeys)]
    if fmt == "jsonl":
        for row in rows:
            out.write(json.dumps({k: row.get(k) for k in columns}, default=repr) + "\n")
    else:
        writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: (json.dumps(v) if isinstance(v, (list, tuple, dict)) else v) for k, v in row.items()})
    return len(rows)
