"""The report: ONE self-contained HTML file (inline CSS, inline SVG plots, a few lines of vanilla JS for sortable
tables; no CDN, nothing fetched), a Markdown leaderboard and a JSON summary, all from the results store.

:func:`build` collects and scores everything (a JSON-able summary); :mod:`~optimlab.bench.report_html` renders the
HTML (which optimizer for which problem: per-workload winners with statistical ties, the winning hyperparameters
with JSON/CSV downloads, the outcomes table, the leaderboard with rank intervals, profiles, win rates, per-seed
curves, tests, memory, workloads, provenance, and a banner when the sweep is unfinished),
:mod:`~optimlab.bench.report_md` the Markdown, :mod:`~optimlab.bench.export` the long-format export.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

import numpy as np

from . import scoring, store
from . import workloads as W
from .export import LONG_COLUMNS, export_long  # noqa: F401  (re-exported)

RULESET_ORDER = ("tuned", "tuned-tpe", "defaults")
CLOCK_NAMES = {
    "T": "T — modelled time (S × step cost)",
    "S": "S — steps to target",
    "G": "G — gradient evaluations to target",
}


# ---------------------------------------------------------------------------------------------- data
def _cost_table(result_store: store.ResultStore, suite: str, machine: str | None):
    """(machine, {(algorithm, workload, hparams key): seconds per step}, its environment) of the step-cost table
    with the most entries (or of ``machine``)."""
    tables = result_store.step_costs(suite)
    if machine is None and tables:
        machine = max(tables, key=lambda m: (len(tables[m]), max(r.get("datetime") or "" for r in tables[m].values())))
    table = tables.get(machine, {}) if machine else {}
    return machine, {k: v["value"] for k, v in table.items()}, (next(iter(table.values()))["env"] if table else None)


def build(
    result_store: store.ResultStore,
    *,
    suite: str,
    baseline: str = "adamw",
    n_boot: int = 1000,
    machine: str | None = None,
    rank_by: str = "T",
) -> dict[str, Any]:
    """Collect, score and summarize everything the report shows (a JSON-able dict). ``rank_by``: the clock the
    leaderboard is ordered and ranked on (T by default; G where step times are not comparable, e.g. runs timed on a
    shared machine without a step-cost table)."""
    if rank_by not in scoring.CLOCKS:
        raise ValueError(f"rank_by must be one of {', '.join(scoring.CLOCKS)}, got {rank_by!r}")
    records = [r for r in scoring.latest_per_key(result_store.records()) if r.get("suite") == suite]
    for r in records:
        r["variant"] = scoring.variant(r)
    machine, costs, cost_env = _cost_table(result_store, suite, machine)
    rulesets = [r for r in RULESET_ORDER if any(rec["ruleset"] == r for rec in records)]
    wl_ids = sorted({r["workload"] for r in records}, key=_workload_order)
    queue = result_store.queue_counts(prefix=f"{store.PREFIX}{suite}/")
    summary: dict[str, Any] = {
        "suite": suite,
        "generated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "store": result_store.display_url,
        "baseline": baseline,
        "n_runs": len(records),
        "workloads": [_workload_info(w, records) for w in wl_ids],
        "rulesets": {},
        "curves": {},
        "cost_machine": machine,
        "costs": {"|".join(k): c for k, c in costs.items()},
        "cost_env": cost_env,
        "environments": _environments(records),
        "queue": queue,
        "incomplete": queue.get("UNFINISHED", 0),
        "rank_by": rank_by,
    }
    for ruleset in rulesets:
        sc = scoring.score(records, ruleset=ruleset, suite=suite, costs=costs, baseline=baseline, n_boot=n_boot)
        sc["outcomes"] = outcomes(records, ruleset)
        sc["rank_by"] = rank_by
        summary["rulesets"][ruleset] = sc
        summary["curves"][ruleset] = _curves(records, ruleset)
    return summary


def leaderboard_rows(sc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per variant, best first: the profile score on the ranking clock (``sc["rank_by"]``, T by default),
    then the mean miss distance (so that optimizers that all miss are still ordered by how close they got)."""
    by = rank_clock(sc)
    rows = []
    for a in sc["algorithms"]:
        st = sc["stats"][a]
        mem = [m["state_bytes"] / m["param_bytes"] for m in sc["memory"][a].values() if m.get("param_bytes")]
        dist = [v if v is not None else math.inf for v in sc.get("distances", {}).get(a, {}).values()]
        detail = sc["clocks"]["G"].get("speedup_detail", {}).get(a, {})
        rows.append(
            {
                "algorithm": a,
                "library": sc["libraries"][a],
                **{clock: _score(sc, clock, a) for clock in scoring.CLOCKS},
                "rank_ci": sc["clocks"][by].get("rank_ci", {}).get(a),
                "speedup": sc["clocks"]["T"]["speedup"].get(a),
                "speedup_G": sc["clocks"]["G"]["speedup"].get(a),
                "both": detail.get("both"),
                "misses": detail.get("misses"),
                "distance": scoring._mean_capped(dist) if dist else None,
                "hit_rate": st["hit_rate"],
                "failure_rate": st["failure_rate"],
                "runs": st["runs"],
                "state_ratio": float(np.median(mem)) if mem else None,
            }
        )
    rows.sort(key=lambda r: (-r[by][0], r["distance"] if r["distance"] is not None else math.inf, r["algorithm"]))
    return rows


def rank_clock(scores: Mapping[str, Any]) -> str:
    """The clock the leaderboard is ordered and ranked on (of the report's summary or of one ruleset's scores)."""
    return scores.get("rank_by", "T")


def _score(sc: Mapping[str, Any], clock: str, a: str) -> tuple[float, str]:
    c = sc["clocks"][clock]
    s = c["scores"].get(a, 0.0)
    ci = c["ci"].get(a)
    return s, f"{s:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def winning_hparams(summary: Mapping[str, Any], ruleset: str) -> list[dict[str, Any]]:
    """Rows (variant, workload, status, objective, hyperparameters) of each variant's best run per workload."""
    sc = summary["rulesets"][ruleset]
    rows = []
    for a, per in sorted(sc.get("best_hparams", {}).items()):
        for w, b in sorted(per.items(), key=lambda kv: _workload_order(kv[0])):
            rows.append(
                {"optimizer": a, "workload": w, "status": b["status"], "objective": b["objective"], **b["hparams"]}
            )
    return rows


def outcomes(records: list[dict[str, Any]], ruleset: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Per algorithm and workload, over the ruleset's runs: how many ran, hit the target, diverged or failed, the
    median of each run's best metric (diverged and failed runs left out) and the median steps to target of the
    hits."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r["ruleset"] == ruleset:
            groups.setdefault((r.get("variant", r["algorithm"]), r["workload"]), []).append(r)
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for (algorithm, workload), runs in groups.items():
        best = [r["best_metric"] for r in runs if r["status"] in ("hit", "miss") and r.get("best_metric") is not None]
        steps = [r["steps_to_target"] for r in runs if r["status"] == "hit"]
        out.setdefault(algorithm, {})[workload] = {
            "runs": len(runs),
            "hits": sum(r["status"] == "hit" for r in runs),
            "diverged": sum(r["status"] == "diverged" for r in runs),
            "errors": sum(r["status"] == "error" for r in runs),
            "median_best": float(np.median(best)) if best else None,
            "median_steps_to_target": float(np.median(steps)) if steps else None,
        }
    return out


def target_text(w: Mapping[str, Any]) -> str:
    """A workload's target as it reads in every table: ``≥0.871``, ``≤1e-06``."""
    if w.get("target") is None:
        return "—"
    return f"{'≥' if w.get('direction') == 'max' else '≤'}{w['target']:g}"


def ties_text(win: Mapping[str, Any]) -> str:
    """A winners row's ties: the variants not shown slower, marked when the number of runs made every comparison
    unprovable (they are then simply all that reached the target)."""
    names = ", ".join(win["ties"]) or "—"
    if win["ties"] and not win.get("separable", True):
        return f"{names} (too few runs to separate any: everyone who reached it)"
    return names


def outcome_cell(o: Mapping[str, Any] | None) -> str:
    if not o:
        return "—"
    text = f"{o['hits']}/{o['runs']} hit"
    if o["median_best"] is not None:
        text += f" · best {o['median_best']:.3g}"
    if o["median_steps_to_target"] is not None:
        text += f" · {o['median_steps_to_target']:.0f} steps"
    for key in ("diverged", "errors"):
        if o[key]:
            text += f" · {o[key]} {key}"
    return text


def _workload_order(wid: str) -> int:
    ids = [w.id for w in W.all_workloads()]
    return ids.index(wid) if wid in ids else len(ids)


def _workload_info(wid: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    try:
        info = W.get(wid).describe()
    except KeyError:
        info = {"id": wid}
    recs = [r for r in records if r["workload"] == wid]
    info["code_hash"] = sorted({r.get("workload_hash") for r in recs if r.get("workload_hash")})
    info["data_hash"] = sorted({r.get("data_hash") for r in recs if r.get("data_hash")})
    info["max_steps_run"] = max((r.get("max_steps") or 0) for r in recs) if recs else None
    known = {w.id for w in W.all_workloads()}
    info["metric_scale"] = W.get(wid).metric_scale if wid in known else "linear"
    return info


def _environments(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[tuple, dict[str, Any]] = {}
    for r in records:
        env = r.get("env") or {}
        k = tuple(env.get(x) for x in ("git", "torch", "numpy", "python", "cpu", "threads", "machine", "device"))
        fresh = {**{x: env.get(x) for x in env if x != "date"}, "runs": 0, "first": None, "last": None}
        entry = seen.setdefault(k, fresh)
        entry["runs"] += 1
        d = env.get("date")
        if d:
            entry["first"] = min(filter(None, [entry["first"], d]))
            entry["last"] = max(filter(None, [entry["last"], d]))
    return list(seen.values())


def _curves(records: list[dict[str, Any]], ruleset: str) -> dict[str, dict[str, Any]]:
    """workload -> variant -> {step, median, q25, q75, n, runs}: the metric over evaluation steps, aggregated over
    seeds (defaults) or over the best trial of each study (tuned), and each of those runs' own curve (``runs``:
    the median hides the run that hit the target). Runs that stopped at the target carry their last
    value forward; diverged runs contribute nothing after they diverged."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["ruleset"] == ruleset and r.get("curve"):
            groups[(r["workload"], r.get("variant", r["algorithm"]))].append(r)
    out: dict[str, dict[str, Any]] = defaultdict(dict)
    for (w, a), rs in groups.items():
        if ruleset != "defaults":
            best: dict[Any, dict[str, Any]] = {}
            for r in rs:
                k = r.get("study")
                if k not in best or (r.get("value") or math.inf) < (best[k].get("value") or math.inf):
                    best[k] = r
            rs = list(best.values())
        steps = sorted({s for r in rs for s in r["curve"]["step"]})
        if not steps:
            continue
        index = {s: i for i, s in enumerate(steps)}
        mat = np.full((len(rs), len(steps)), np.nan)
        for j, r in enumerate(rs):
            c = r["curve"]
            last = None
            last_i = -1
            for s, m in zip(c["step"], c["metric"]):
                i = index[s]
                if m is not None:
                    mat[j, i] = m
                    last, last_i = m, i
            if r["status"] == "hit" and last is not None:
                mat[j, last_i + 1 :] = last
            # fill gaps between a run's own evaluation steps
            row = mat[j]
            for i in range(1, last_i + 1):
                if np.isnan(row[i]) and not np.isnan(row[i - 1]) and steps[i] <= c["step"][-1]:
                    row[i] = row[i - 1]
        with np.errstate(all="ignore"):
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                med = np.nanmedian(mat, axis=0)
                q25 = np.nanpercentile(mat, 25, axis=0)
                q75 = np.nanpercentile(mat, 75, axis=0)
        out[w][a] = {
            "step": steps,
            "median": _nan_to_none(med),
            "q25": _nan_to_none(q25),
            "q75": _nan_to_none(q75),
            "n": len(rs),
            "runs": [
                {
                    "step": r["curve"]["step"],
                    "metric": r["curve"]["metric"],
                    "status": r["status"],
                    "seed": r.get("seed"),
                }
                for r in rs
            ],
        }
    return dict(out)


def _nan_to_none(a: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in a]


def write_html(summary: Mapping[str, Any], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_html(summary))


def write_markdown(summary: Mapping[str, Any], path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(render_markdown(summary))


def write_json(summary: Mapping[str, Any], path: str) -> None:
    slim = _clean({k: v for k, v in summary.items() if k != "curves"})
    with open(path, "w", encoding="utf-8") as f:
        json.dump(slim, f, indent=1, default=repr, allow_nan=False)


def _clean(obj: Any) -> Any:
    """Non-finite floats → None, tuples → lists, keys → strings (strict JSON)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def render_html(summary: Mapping[str, Any]) -> str:
    from .report_html import render_html as render

    return render(summary)


def render_markdown(summary: Mapping[str, Any]) -> str:
    from .report_md import render_markdown as render

    return render(summary)
