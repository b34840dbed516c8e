"""The report: ONE self-contained HTML file (inline CSS, inline SVG plots, a few lines of vanilla JS for sortable
tables; no CDN, nothing fetched), a Markdown leaderboard and a JSON summary, all from the results store.

The HTML holds: the leaderboard per ruleset (AlgoPerf profile scores on the T, S and G clocks with bootstrap
95% CIs, speedup over the baseline, hit and failure rates), performance-profile plots, the win-rate matrix, the
per-workload time tables, per-workload metric curves (median and interquartile band over seeds, target line),
one-sided Mann–Whitney p-values against the baseline, the memory table, the workload definitions, and the
environment/provenance of the runs and of the step-cost table. ``export_long`` writes one row per evaluation
point (long format) as CSV or JSONL.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import math
from collections import defaultdict
from collections.abc import Mapping
from html import escape
from typing import IO, Any

import numpy as np

from . import scoring, store, svg
from . import workloads as W

RULESET_ORDER = ("tuned", "tuned-tpe", "defaults")
CLOCK_NAMES = {
    "T": "T — modelled time (S × step cost)",
    "S": "S — steps to target",
    "G": "G — gradient evaluations to target",
}


# ---------------------------------------------------------------------------------------------- data
def build(
    result_store: store.ResultStore,
    *,
    suite: str,
    baseline: str = "adamw",
    n_boot: int = 1000,
    machine: str | None = None,
) -> dict[str, Any]:
    """Collect, score and summarize everything the report shows (a JSON-able dict)."""
    records = [r for r in scoring.latest_per_key(result_store.records()) if r.get("suite") == suite]
    tables = result_store.step_costs(suite)
    if machine is None and tables:
        machine = max(tables, key=lambda m: (len(tables[m]), max(r.get("datetime") or "" for r in tables[m].values())))
    cost_table = tables.get(machine, {}) if machine else {}
    costs = {k: v["value"] for k, v in cost_table.items()}
    rulesets = [r for r in RULESET_ORDER if any(rec["ruleset"] == r for rec in records)]
    wl_ids = sorted({r["workload"] for r in records}, key=_workload_order)
    max_steps = {}
    for r in records:
        max_steps[r["workload"]] = max(max_steps.get(r["workload"], 0), r.get("max_steps") or 0)
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
        "costs": {f"{a}|{w}": c for (a, w), c in costs.items()},
        "cost_env": next(iter(cost_table.values()))["env"] if cost_table else None,
        "environments": _environments(records),
        "queue": result_store.queue_counts(prefix=f"{store.PREFIX}{suite}/"),
    }
    summary["incomplete"] = summary["queue"].get("UNFINISHED", 0)
    baseline_times = None
    for ruleset in rulesets:
        sc = scoring.score(
            records,
            ruleset=ruleset,
            suite=suite,
            costs=costs,
            baseline=baseline,
            baseline_times=baseline_times,
            n_boot=n_boot,
            max_steps=max_steps,
        )
        sc["outcomes"] = outcomes(records, ruleset)
        summary["rulesets"][ruleset] = sc
        if ruleset == "tuned" and baseline in sc["algorithms"]:
            # the defaults ruleset's speedups are relative to *tuned* baseline when it exists
            baseline_times = {
                clock: {w: (math.inf if v is None else v) for w, v in sc["clocks"][clock]["times"][baseline].items()}
                for clock in scoring.CLOCKS
            }
        summary["curves"][ruleset] = _curves(records, ruleset)
    return summary


def outcomes(records: list[dict[str, Any]], ruleset: str) -> dict[str, dict[str, dict[str, Any]]]:
    """Per algorithm and workload, over the ruleset's runs: how many ran, hit the target, diverged or failed, the
    median of each run's best metric (diverged and failed runs left out) and the median steps to target of the
    hits."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in records:
        if r["ruleset"] == ruleset:
            groups.setdefault((r["algorithm"], r["workload"]), []).append(r)
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


def _outcome_cell(o: Mapping[str, Any] | None) -> str:
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


def _redact(url: str) -> str:
    """Hide a password in a SQLAlchemy URL."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def _curves(records: list[dict[str, Any]], ruleset: str) -> dict[str, dict[str, Any]]:
    """workload -> algorithm -> {step, median, q25, q75, n}: the metric over evaluation steps, aggregated over
    seeds (defaults) or over the best trial of each study (tuned). Runs that stopped at the target carry their last
    value forward; diverged runs contribute nothing after they diverged."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in records:
        if r["ruleset"] == ruleset and r.get("curve"):
            groups[(r["workload"], r["algorithm"])].append(r)
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
        }
    return dict(out)


def _nan_to_none(a: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in a]


# ---------------------------------------------------------------------------------------------- formatting
def _fmt_time(v: float | None, clock: str) -> str:
    if v is None or (isinstance(v, float) and math.isinf(v)):
        return "∞"
    if clock == "T":
        return f"{v:.3g} s"
    return f"{v:,.0f}"


def _fmt_bytes(n: float | None) -> str:
    if not n:
        return "0"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return str(n)


def _score_cell(sc: Mapping[str, Any], clock: str, a: str) -> tuple[float, str]:
    c = sc["clocks"][clock]
    s = c["scores"].get(a, 0.0)
    ci = c["ci"].get(a)
    text = f"{s:.3f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
    return s, text


def leaderboard_rows(sc: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for a in sc["algorithms"]:
        st = sc["stats"][a]
        mem = [m["state_bytes"] / m["param_bytes"] for m in sc["memory"][a].values() if m.get("param_bytes")]
        rows.append(
            {
                "algorithm": a,
                "library": sc["libraries"][a],
                "T": _score_cell(sc, "T", a),
                "S": _score_cell(sc, "S", a),
                "G": _score_cell(sc, "G", a),
                "speedup": sc["clocks"]["T"]["speedup"].get(a),
                "speedup_S": sc["clocks"]["S"]["speedup"].get(a),
                "hit_rate": st["hit_rate"],
                "failure_rate": st["failure_rate"],
                "runs": st["runs"],
                "state_ratio": float(np.median(mem)) if mem else None,
            }
        )
    rows.sort(key=lambda r: (-r["T"][0], -r["S"][0], r["algorithm"]))
    return rows


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1280px;padding:16px;
color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ddd}h3{font-size:15px}
table{border-collapse:collapse;margin:8px 0;font-size:13px}th,td{border:1px solid #ddd;padding:3px 7px;text-align:right}
th{background:#f4f4f4;cursor:pointer;user-select:none}td.l,th.l{text-align:left}
.note{color:#666;font-size:12px}.grid{display:flex;flex-wrap:wrap;gap:8px}
svg text.pt{font-size:12px;font-weight:600}svg text.tk{font-size:10px;fill:#555}svg text.al{font-size:11px}
svg text.lg{font-size:10px}.prov{color:#a50}code{font-size:12px}.tw{overflow-x:auto;max-width:100%}
"""

_JS = """
(function(){
  function key(td){var v=td.getAttribute('data-v');if(v===null)v=td.textContent.trim();
    var n=parseFloat(v);return isNaN(n)?v.toLowerCase():n;}
  var tables=document.querySelectorAll('table.sortable');
  for(var t=0;t<tables.length;t++){(function(table){
    var ths=table.querySelectorAll('thead th');
    for(var i=0;i<ths.length;i++){(function(th,idx){
      th.addEventListener('click',function(){
        var body=table.tBodies[0];var rows=Array.prototype.slice.call(body.rows);
        var asc=th.getAttribute('data-dir')!=='asc';th.setAttribute('data-dir',asc?'asc':'desc');
        rows.sort(function(a,b){var x=key(a.cells[idx]),y=key(b.cells[idx]);
          if(x===y)return 0;if(typeof x!==typeof y)return (typeof x==='number'?-1:1)*(asc?1:-1);
          return (x<y?-1:1)*(asc?1:-1);});
        for(var r=0;r<rows.length;r++)body.appendChild(rows[r]);});
    })(ths[i],i);}
  })(tables[t]);}
  document.body.setAttribute('data-ready','1');
})();
"""


def _table(headers: list[str], rows: list[list[Any]], *, cls: str = "sortable", left: int = 1, tid: str = "") -> str:
    """An HTML table; cells are (text, sort_value) tuples or plain text; the first ``left`` columns left-aligned."""
    out = ['<div class="tw">', f'<table class="{cls}"' + (f' id="{tid}"' if tid else "") + "><thead><tr>"]
    for i, h in enumerate(headers):
        out.append(f'<th class="{"l" if i < left else ""}">{escape(h)}</th>')
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for i, cell in enumerate(row):
            style = ""
            if isinstance(cell, tuple):
                text, sort = cell[0], cell[1]
                if len(cell) > 2 and cell[2]:
                    style = f' style="background:{cell[2]}"'
                attr = f' data-v="{escape(str(sort))}"'
            else:
                text, attr = cell, ""
            out.append(f'<td class="{"l" if i < left else ""}"{attr}{style}>{escape(str(text))}</td>')
        out.append("</tr>")
    out.append("</tbody></table></div>")
    return "".join(out)


def _heat(v: float) -> str:
    """Background colour for a win rate in [0, 1] (red < 0.5 < green)."""
    v = min(1.0, max(0.0, v))
    if v >= 0.5:
        t = (v - 0.5) * 2
        r, g, b = int(255 - 120 * t), int(255 - 40 * t), int(255 - 120 * t)
    else:
        t = (0.5 - v) * 2
        r, g, b = int(255 - 20 * t), int(255 - 120 * t), int(255 - 120 * t)
    return f"#{r:02x}{g:02x}{b:02x}"


def _colors(algorithms: list[str]) -> dict[str, str]:
    return {a: svg.color(i) for i, a in enumerate(algorithms)}


_NO_TABLE = "none — T falls back to the runs’ own timing"


def render_html(summary: Mapping[str, Any]) -> str:
    suite = summary["suite"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>optimlab bench — {escape(suite)}</title><style>{_CSS}</style></head><body>",
        f"<h1>optimlab benchmark report — suite <code>{escape(suite)}</code></h1>",
        f"<p class='note'>Generated {escape(summary['generated'])} from {summary['n_runs']} runs in "
        f"<code>{escape(summary['store'])}</code>. Headline clock: T = steps-to-target × per-step cost "
        f"(step-cost table: {escape(str(summary.get('cost_machine') or _NO_TABLE))}). "
        f"Scores: AlgoPerf performance-profile integral over τ ∈ [1, {scoring.R_MAX:g}] (1 = fastest on every "
        "workload), 95% bootstrap CI over workloads and seeds/studies.</p>",
    ]
    if "provisional" in suite:
        parts.append(
            "<p class='prov'>Suite targets are PROVISIONAL (not yet calibrated by the target-setting procedure); "
            "rankings are indicative only.</p>"
        )
    all_algs = sorted({a for sc in summary["rulesets"].values() for a in sc["algorithms"]})
    colors = _colors(all_algs)
    wl_info = {w["id"]: w for w in summary["workloads"]}
    for ruleset, sc in summary["rulesets"].items():
        parts.append(
            f"<h2 id='leaderboard-{escape(ruleset)}'>Leaderboard — ruleset <code>{escape(ruleset)}</code></h2>"
        )
        base = sc["clocks"]["T"].get("speedup_baseline")
        headers = [
            "#",
            "optimizer",
            "library",
            "score T [95% CI]",
            "score S [95% CI]",
            "score G [95% CI]",
            f"speedup T vs {base or summary['baseline']}",
            "speedup S",
            "hit rate",
            "failure rate",
            "runs",
            "state/params",
        ]
        rows = []
        for i, r in enumerate(leaderboard_rows(sc), 1):
            rows.append(
                [
                    (str(i), i),
                    r["algorithm"],
                    r["library"],
                    (r["T"][1], r["T"][0]),
                    (r["S"][1], r["S"][0]),
                    (r["G"][1], r["G"][0]),
                    _opt_num(r["speedup"], "×"),
                    _opt_num(r["speedup_S"], "×"),
                    (f"{r['hit_rate']:.0%}", r["hit_rate"]),
                    (f"{r['failure_rate']:.0%}", r["failure_rate"]),
                    (str(r["runs"]), r["runs"]),
                    _opt_num(r["state_ratio"], "×"),
                ]
            )
        parts.append(_table(headers, rows, left=3, tid=f"leaderboard-table-{ruleset}"))
        agg = "median over seeds" if ruleset == "defaults" else "median over studies of the best trial per study"
        parts.append(
            f"<p class='note'>Per-workload time = {agg}; a miss, divergence or error counts as ∞. "
            "Speedup: geometric mean over workloads of t_baseline / t (a miss counts as max_steps + 1).</p>"
        )
        # performance profiles
        parts.append("<h3>Performance profiles</h3><div class='grid'>")
        for clock in ("T", "S", "G"):
            curves = sc["clocks"][clock]["curves"]
            plot = svg.Plot(
                title=CLOCK_NAMES[clock],
                xlabel="τ (ratio to the fastest)",
                ylabel="fraction of workloads",
                xlim=(1.0, scoring.R_MAX),
                ylim=(0.0, 1.02),
                css_class="plot profile",
                series=[
                    svg.Series(a, [p[0] for p in curves[a]], [p[1] for p in curves[a]], colors[a], step=True)
                    for a in sc["algorithms"]
                ],
            )
            parts.append(plot.render())
        parts.append("</div>")
        # win rates
        parts.append(
            "<h3>Win-rate matrix (T)</h3><p class='note'>Row beats column on this fraction of workloads (ties ½).</p>"
        )
        wr = sc["clocks"]["T"]["winrate"]
        algs = sc["algorithms"]
        rows = []
        for a in algs:
            row = [a]
            for b in algs:
                if a == b:
                    row.append(("—", ""))
                else:
                    v = wr[a][b]
                    row.append((f"{v:.2f}", v, _heat(v)))
            rows.append(row)
        parts.append(_table(["row vs column", *algs], rows, cls="winrate"))
        # per-workload times
        parts.append("<h3>Per-workload times</h3>")
        for clock in ("S", "T"):
            times = sc["clocks"][clock]["times"]
            headers = ["optimizer", *sc["workloads"]]
            rows = [
                [a] + [(_fmt_time(times[a].get(w), clock), _sortable(times[a].get(w))) for w in sc["workloads"]]
                for a in algs
            ]
            parts.append(f"<p class='note'>{escape(CLOCK_NAMES[clock])}</p>")
            parts.append(_table(headers, rows))
        # curves
        parts.append(
            f"<h3>Per-workload curves — {escape(ruleset)}</h3><p class='note'>Median and interquartile "
            "band over seeds (defaults) or over the best trial of each study (tuned); dashed line: target."
            "</p><div class='grid'>"
        )
        for w, per_alg in sorted(summary["curves"].get(ruleset, {}).items(), key=lambda kv: _workload_order(kv[0])):
            info = wl_info.get(w, {})
            ylog = info.get("metric_scale") == "log"
            series = []
            for a in algs:
                if a in per_alg:
                    c = per_alg[a]
                    label = f"{a} (n={c['n']})"
                    series.append(svg.Series(label, c["step"], c["median"], colors[a], c["q25"], c["q75"]))
            target = info.get("target")
            plot = svg.Plot(
                title=w,
                xlabel="step",
                ylabel=info.get("metric", "metric")[:40],
                ylog=ylog,
                series=series,
                hlines=[svg.HLine(target, f"target {target}")] if target is not None else [],
                css_class="plot curve",
            )
            parts.append(plot.render())
        parts.append("</div>")
        # tuning-budget curves and LR sensitivity (tuned ruleset)
        if sc.get("tuning_budget"):
            parts.append(
                "<h3>Tuning budget and learning-rate sensitivity</h3><p class='note'>Left: expected fraction of "
                "workloads solved by the best of k random trials (drawn without replacement from the trial pool). "
                "Others: tuning objective per trial against its learning rate (≤ 1: hit, the value is S/max_steps; "
                "1–2: miss, by distance to the target; 2: diverged; 3: error).</p><div class='grid'>"
            )
            series = [
                svg.Series(a, list(range(1, len(c) + 1)), c, colors[a]) for a, c in sc["tuning_budget"].items() if c
            ]
            parts.append(
                svg.Plot(
                    title="tuning budget",
                    xlabel="trials k",
                    ylabel="fraction solved",
                    ylim=(0.0, 1.02),
                    series=series,
                    css_class="plot budget",
                ).render()
            )
            for w in sc["workloads"]:
                series = []
                for a in algs:
                    pts = sc["lr_sensitivity"].get(a, {}).get(w)
                    if pts:
                        series.append(svg.Series(a, [p[0] for p in pts], [p[1] for p in pts], colors[a], markers=True))
                if series:
                    plot = svg.Plot(
                        title=f"{w}: objective vs lr",
                        xlabel="learning rate",
                        ylabel="objective",
                        xlog=True,
                        series=series,
                        hlines=[svg.HLine(1.0, "hit / miss boundary")],
                        css_class="plot sensitivity",
                    )
                    parts.append(plot.render())
            parts.append("</div>")
        # tests
        tests = sc.get("tests_vs_baseline") or {}
        if tests:
            parts.append(
                f"<h3>One-sided Mann–Whitney tests vs {escape(summary['baseline'])} (S per seed)</h3>"
                "<p class='note'>p-value of “optimizer needs fewer steps than the baseline” per workload "
                "(normal approximation; small samples — read as indicative).</p>"
            )
            headers = ["optimizer", *sc["workloads"]]
            rows = [[a] + [_opt_num(tests[a].get(w), "") for w in sc["workloads"]] for a in tests]
            parts.append(_table(headers, rows))
        # memory
        parts.append(
            "<h3>Memory</h3><p class='note'>Optimizer-state bytes (from <code>state_dict</code>), as a multiple of "
            "the parameter bytes; the largest increase of the process's resident set during a run (peak minus "
            "the RSS at the start of the run, median over runs); and the process's peak RSS.</p>"
        )
        headers = ["optimizer", *[f"{w} state" for w in sc["workloads"]], "max RSS increase", "max peak RSS"]
        rows = []
        for a in algs:
            mem = sc["memory"][a]
            row = [a]
            for w in sc["workloads"]:
                m = mem.get(w)
                if m:
                    ratio = m["state_bytes"] / m["param_bytes"] if m["param_bytes"] else 0
                    row.append((f"{_fmt_bytes(m['state_bytes'])} ({ratio:.1f}×)", m["state_bytes"]))
                else:
                    row.append(("", -1))
            inc = max((m.get("rss_increase_bytes", 0) for m in mem.values()), default=0)
            peak = max((m["peak_rss_bytes"] for m in mem.values()), default=0)
            row.append((_fmt_bytes(inc), inc))
            row.append((_fmt_bytes(peak), peak))
            rows.append(row)
        parts.append(_table(headers, rows))
        if sc.get("errors"):
            parts.append("<h3>Errors</h3>")
            rows = [[e["algorithm"], e["workload"], str(e["seed"]), (e["error"] or "")[:300]] for e in sc["errors"]]
            parts.append(_table(["optimizer", "workload", "seed", "error"], rows, left=4))
    # workloads
    parts.append("<h2 id='workloads'>Workloads</h2>")
    headers = [
        "id",
        "metric",
        "target",
        "batch",
        "step hint",
        "max steps",
        "logits",
        "code hash",
        "data hash",
        "stresses",
    ]
    rows = []
    for w in summary["workloads"]:
        direction = "≥" if w.get("direction") == "max" else "≤"
        target = f"{direction} {w.get('target')}" + (" (provisional)" if w.get("provisional") else "")
        rows.append(
            [
                w["id"],
                w.get("metric", ""),
                target,
                str(w.get("batch_size", "")),
                (str(w.get("step_hint", "")), w.get("step_hint", 0)),
                (str(w.get("max_steps_run") or w.get("max_steps", "")), w.get("max_steps_run") or 0),
                "yes" if w.get("logits") else "—",
                ", ".join(w.get("code_hash", [])),
                ", ".join(w.get("data_hash", [])),
                w.get("stresses", ""),
            ]
        )
    parts.append(_table(headers, rows, left=3))
    parts.append(
        "<p class='note'>logits: the loss is a cross-entropy of the model's logits. Optimizers whose closure must "
        "return (loss, logits) (Sophia-G) run only on these workloads; elsewhere they are not applicable, are not "
        "run, and count as a miss in the profiles.</p>"
    )
    # environment
    parts.append("<h2 id='environment'>Environment and provenance</h2>")
    keys = ["git", "python", "torch", "numpy", "optuna", "cpu", "cpu_count", "threads", "device", "machine", "host"]
    rows = [
        [str(e.get(k, "")) for k in keys] + [str(e["runs"]), f"{e['first']} → {e['last']}"]
        for e in summary["environments"]
    ]
    parts.append(_table([*keys, "runs", "dates"], rows, left=len(keys) + 2))
    if summary.get("cost_env"):
        ce = summary["cost_env"]
        parts.append(
            "<p class='note'>Step-cost table measured on machine "
            f"<code>{escape(str(summary['cost_machine']))}</code>: {escape(str(ce.get('cpu')))}, "
            f"{escape(str(ce.get('threads')))} threads, torch {escape(str(ce.get('torch')))}, "
            f"git {escape(str(ce.get('git')))}, {escape(str(ce.get('date')))}.</p>"
        )
    parts.append(f"<script>{_JS}</script></body></html>")
    return "".join(parts)


def _opt_num(v: float | None, suffix: str) -> tuple[str, Any]:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return ("—", "")
    return (f"{v:.3g}{suffix}", v)


def _sortable(v: float | None) -> float:
    return 1e300 if v is None else v


def render_markdown(summary: Mapping[str, Any]) -> str:
    lines = [f"# optimlab benchmark — suite `{summary['suite']}`", ""]
    if "provisional" in summary["suite"]:
        lines += ["> Targets are provisional (not yet calibrated); rankings are indicative only.", ""]
    lines.append(
        f"{summary['n_runs']} runs; generated {summary['generated']}. Scores: AlgoPerf performance-profile integral "
        f"(τ ≤ {scoring.R_MAX:g}) on T = steps × step cost, S = steps, G = gradient evaluations; 95% bootstrap CI."
    )
    for ruleset, sc in summary["rulesets"].items():
        base = sc["clocks"]["T"].get("speedup_baseline") or summary["baseline"]
        lines += [
            "",
            f"## Ruleset `{ruleset}`",
            "",
            "| # | optimizer | library | score T | score S | score G | "
            f"speedup T vs {base} | hit rate | failure rate |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for i, r in enumerate(leaderboard_rows(sc), 1):
            sp = "—" if r["speedup"] is None or not math.isfinite(r["speedup"]) else f"{r['speedup']:.2f}×"
            lines.append(
                f"| {i} | {r['algorithm']} | {r['library']} | {r['T'][1]} | {r['S'][1]} | {r['G'][1]} | {sp} | "
                f"{r['hit_rate']:.0%} | {r['failure_rate']:.0%} |"
            )
        algorithms = [r["algorithm"] for r in leaderboard_rows(sc)]
        lines += [
            "",
            "Per workload: runs that hit the target · median of the runs' best metric · median steps to target.",
            "",
            "| workload | target | " + " | ".join(algorithms) + " |",
            "|---|---|" + "---|" * len(algorithms),
        ]
        for w in summary["workloads"]:
            target = f"{'≥' if w['direction'] == 'max' else '≤'}{w['target']:g}"
            cells = [_outcome_cell(sc.get("outcomes", {}).get(a, {}).get(w["id"])) for a in algorithms]
            lines.append(f"| {w['id']} | {target} | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


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


# ---------------------------------------------------------------------------------------------- long export
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
