"""The HTML report, section by section: it answers "which optimizer for which problem" first (per-workload winners
with statistical ties, the winning hyperparameters with JSON/CSV downloads, the outcomes), then the leaderboard
with rank intervals, performance profiles, win rates, times, per-seed curves, tuning, tests, memory, workloads and
provenance. One self-contained file: inline CSS and SVG, a few lines of JS, downloads as ``data:`` URIs."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from html import escape
from typing import Any

from . import scoring, svg
from .html_kit import CSS, JS, colors, download_link, fmt_bytes, fmt_time, fold, heat, opt_num, sortable, table
from .report import (
    CLOCK_NAMES,
    _workload_order,
    leaderboard_rows,
    outcome_cell,
    rank_clock,
    target_text,
    ties_text,
    winning_hparams,
)

_NO_TABLE = "none — T uses each run's own amortized step time"
#: a catalogue-sized ruleset (more than HIGHLIGHT + 1 optimizers): plots draw the leaderboard's first HIGHLIGHT (and
#: the baseline) in colour, the rest grey or not at all, and the optimizer × optimizer / × workload tables start
#: folded, as does a hyperparameter table of more than FOLD_ROWS rows
HIGHLIGHT = 8
FOLD_ROWS = 60
OTHERS = "#c7c7c7"


def _gave_up(summary: Mapping[str, Any]) -> int:
    q = summary.get("queue", {})
    return max(0, summary.get("incomplete", 0) - q.get("WAITING", 0) - q.get("RUNNING", 0))


def _head(summary: Mapping[str, Any]) -> list[str]:
    suite = summary["suite"]
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>optimlab bench — {escape(suite)}</title><style>{CSS}</style></head><body>",
        f"<h1>optimlab benchmark report — suite <code>{escape(suite)}</code></h1>",
    ]
    if summary.get("incomplete"):
        q = summary.get("queue", {})
        parts.append(
            f"<p class='banner' id='incomplete'>Unfinished sweep: {summary['incomplete']} planned runs have no result "
            f"({q.get('WAITING', 0)} waiting, {q.get('RUNNING', 0)} running, {_gave_up(summary)} failed after every "
            "retry). "
            "Everything below covers the finished runs only.</p>"
        )
    if "provisional" in suite:
        parts.append("<p class='prov'>Suite targets are PROVISIONAL; rankings are indicative only.</p>")
    parts.append(
        f"<p class='note'>Generated {escape(summary['generated'])} from {summary['n_runs']} runs in "
        f"<code>{escape(summary['store'])}</code>. Budgets in gradient-equivalent evaluations (equal compute) unless "
        f"a variant says otherwise. Clocks: T = steps-to-target × amortized step cost (step-cost table: "
        f"{escape(str(summary.get('cost_machine') or _NO_TABLE))}), S = steps, G = gradient evaluations. Scores: "
        f"AlgoPerf performance-profile integral over τ ∈ [1, {scoring.R_MAX:g}], 95% bootstrap CI over workloads "
        f"and seeds/studies; ranks (on score {rank_clock(summary)}) are 95% bootstrap intervals.</p>"
    )
    return parts


def _winners(summary: Mapping[str, Any], sc: Mapping[str, Any], ruleset: str) -> list[str]:
    parts = [
        f"<h2 id='winners-{escape(ruleset)}'>Which optimizer for which problem — <code>{escape(ruleset)}</code></h2>",
        f"<p class='note'>Winner: fewest gradient evaluations to the target ({scoring.RANK_CLOCK}; median over "
        "seeds, or over studies of the best trial); tied: not shown slower than the winner (one-sided Mann–Whitney "
        f"on per-seed / per-study values, Holm-corrected, α = {scoring.ALPHA}). Where nobody reaches the target, "
        "the closest optimizer (miss distance, decades) is named instead.</p>",
    ]
    best = sc.get("best_hparams", {})
    rows = []
    for w in summary["workloads"]:
        win = sc.get("winners", {}).get(w["id"])
        if not win:
            continue
        target = target_text(w)
        who = win["winner"] if win["reached"] else f"nobody; closest {win['winner']}"
        how = f"{win['time']:,.0f} gradients" if win["reached"] else f"{win['distance']:.2g} decades away"
        hp = best.get(win["winner"], {}).get(w["id"], {}).get("hparams", {})
        hp_text = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(hp.items()))
        rows.append([w["id"], target, who, how, ties_text(win), hp_text])  # whole: a cut value misleads
    parts.append(
        table(
            ["workload", "target", "winner", "how", "statistically tied", "winner's hyperparameters"],
            rows,
            left=6,
            tid=f"winners-table-{ruleset}",
        )
    )
    return parts


def _hparams(summary: Mapping[str, Any], ruleset: str) -> list[str]:
    rows = winning_hparams(summary, ruleset)
    if not rows:
        return []
    keys = sorted({k for r in rows for k in r} - {"optimizer", "workload", "status", "objective"})
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["optimizer", "workload", "status", "objective", *keys])
    writer.writeheader()
    for r in rows:
        writer.writerow({k: json.dumps(v) if isinstance(v, (list, tuple, dict)) else v for k, v in r.items()})
    links = [
        download_link(
            f"winning-hparams-{ruleset}.json", json.dumps(rows, indent=1, default=repr), "application/json", "JSON"
        ),
        download_link(f"winning-hparams-{ruleset}.csv", buf.getvalue(), "text/csv", "CSV"),
    ]
    body = [
        [r["optimizer"], r["workload"], r["status"], opt_num(r["objective"], "")]
        + [
            ("" if r.get(k) is None else (f"{r[k]:.3g}" if isinstance(r[k], float) else str(r[k])), str(r.get(k)))
            for k in keys
        ]
        for r in rows
    ]
    grid = table(["optimizer", "workload", "status", "objective", *keys], body, left=3, tid=f"hparams-table-{ruleset}")
    if len(rows) > FOLD_ROWS:  # a whole catalogue: folded, so the outcomes and the leaderboard stay in view
        grid = fold(grid, f"show all {len(rows)} optimizer × workload rows")
    return [
        "<h3>Winning hyperparameters per optimizer × workload</h3><p class='note'>The best run of each (objective: "
        "budget used to the target / max_steps on a hit, 1–2 by distance on a miss). "
        f"Download: {' · '.join(links)}</p>",
        grid,
    ]


def _outcomes(summary: Mapping[str, Any], sc: Mapping[str, Any], ruleset: str) -> list[str]:
    workloads = summary["workloads"]
    rows = []
    for row in leaderboard_rows(sc):
        mine = sc.get("outcomes", {}).get(row["algorithm"], {})
        cells = [(outcome_cell(o), o["hits"] if o else -1) for o in (mine.get(w["id"]) for w in workloads)]
        rows.append([row["algorithm"], *cells])
    headers = [f"{w['id']} {target_text(w)}" for w in workloads]
    return [
        "<h3>Outcomes</h3><p class='note'>One row per optimizer, in leaderboard order: runs that hit the target · "
        "median of the runs' best metric · median steps to target (diverged and failed runs counted). Click a "
        "workload to sort by its hits.</p>",
        table(["optimizer", *headers], rows, tid=f"outcomes-table-{ruleset}"),
    ]


def _leaderboard(summary: Mapping[str, Any], sc: Mapping[str, Any], ruleset: str) -> list[str]:
    base = sc["clocks"]["G"].get("speedup_baseline") or summary["baseline"]
    marks = sc.get("tuning_free", {})
    headers = ["rank [95%]", "optimizer", "library", "tuning-free"]
    headers += ["score T [95% CI]", "score S [95% CI]", "score G [95% CI]"]
    headers += [f"speedup G vs {base}", "both reach / misses", "miss distance", "hit rate", "failure rate", "runs"]
    headers.append("state/params")
    rows = []
    for r in leaderboard_rows(sc):
        rank = (f"{r['rank_ci'][0]}–{r['rank_ci'][1]}", r["rank_ci"][0]) if r["rank_ci"] else ("—", 1e9)
        both = (f"{r['both']} / {r['misses']}", r["both"] or 0) if r["both"] is not None else ("—", -1)
        rows.append(
            [rank, r["algorithm"], r["library"], marks.get(r["algorithm"], "")]
            + [(r["T"][1], r["T"][0]), (r["S"][1], r["S"][0]), (r["G"][1], r["G"][0])]
            + [opt_num(r["speedup_G"], "×"), both, opt_num(r["distance"], ""), (f"{r['hit_rate']:.0%}", r["hit_rate"])]
            + [
                (f"{r['failure_rate']:.0%}", r["failure_rate"]),
                (str(r["runs"]), r["runs"]),
                opt_num(r["state_ratio"], "×"),
            ]
        )
    agg = "median over seeds" if ruleset == "defaults" else "median over studies of the best trial per study"
    return [
        f"<h2 id='leaderboard-{escape(ruleset)}'>Leaderboard — ruleset <code>{escape(ruleset)}</code></h2>",
        table(headers, rows, left=4, tid=f"leaderboard-table-{ruleset}"),
        f"<p class='note'>Per-workload time = {agg}; a miss, divergence or error counts as ∞. Order and rank "
        f"intervals: score {rank_clock(sc)}, then "
        "the mean miss distance (decades from the target, capped at 10), which separates optimizers that all "
        "miss. Speedup: geometric mean of t_baseline / t over the workloads both reach (a miss never earns "
        "speedup), with the number of such workloads and of the workloads the baseline reaches and this one "
        "misses.</p>",
        *([f"<p class='note'>{escape(scoring.TUNING_FREE_NOTE)}</p>"] if marks else []),
    ]


def in_colour(summary: Mapping[str, Any], sc: Mapping[str, Any]) -> list[str]:
    """The optimizers the plots draw in colour: all of a small ruleset; of a catalogue, the leaderboard's first
    :data:`HIGHLIGHT` and the baseline."""
    ranked = [r["algorithm"] for r in leaderboard_rows(sc)]
    if len(ranked) <= HIGHLIGHT + 1:
        return ranked
    shown = ranked[:HIGHLIGHT]
    return shown + [summary["baseline"]] if summary["baseline"] in ranked[HIGHLIGHT:] else shown


def _profile(name: str, points: list[tuple[float, float]], colour: str, *, grey: bool) -> svg.Series:
    return svg.Series(name, [p[0] for p in points], [p[1] for p in points], colour, step=True, thin=grey)


def _profiles(sc: Mapping[str, Any], shown: list[str], cmap: Mapping[str, str]) -> list[str]:
    others = [a for a in sc["algorithms"] if a not in shown]
    note = f" Grey, without a legend entry: the other {len(others)} optimizers." if others else ""
    parts = [f"<h3>Performance profiles</h3><p class='note'>{note.strip()}</p><div class='grid'>"]
    for clock in ("T", "S", "G"):
        curves = sc["clocks"][clock]["curves"]
        plot = svg.Plot(
            title=CLOCK_NAMES[clock],
            xlabel="τ (ratio to the fastest)",
            ylabel="fraction of workloads",
            xlim=(1.0, scoring.R_MAX),
            ylim=(0.0, 1.02),
            css_class="plot profile",
            series=[_profile(a, curves[a], OTHERS, grey=True) for a in others]
            + [_profile(a, curves[a], cmap[a], grey=False) for a in shown],
        )
        parts.append(plot.render())
    parts.append("</div>")
    return parts


def _winrate_and_times(sc: Mapping[str, Any]) -> list[str]:
    by = rank_clock(sc)
    wr, algs = sc["clocks"][by]["winrate"], sc["algorithms"]
    rows = [[a] + [("—", "") if a == b else (f"{wr[a][b]:.2f}", wr[a][b], heat(wr[a][b])) for b in algs] for a in algs]
    catalogue = len(algs) > HIGHLIGHT + 1  # as in the plots: too many to read at a glance

    def maybe_fold(html: str, what: str) -> str:
        return fold(html, f"show {what} ({len(algs)} optimizers)") if catalogue else html

    parts = [
        f"<h3>Win-rate matrix ({by})</h3><p class='note'>Row beats column on this fraction of workloads (ties ½).</p>"
    ]
    parts.append(maybe_fold(table(["row vs column", *algs], rows, cls="winrate"), "the matrix"))
    parts.append("<h3>Per-workload times</h3>")
    for clock in ("G", "S", "T"):
        times = sc["clocks"][clock]["times"]
        rows = [
            [a] + [(fmt_time(times[a].get(w), clock), sortable(times[a].get(w))) for w in sc["workloads"]] for a in algs
        ]
        parts.append(f"<p class='note'>{escape(CLOCK_NAMES[clock])}</p>")
        parts.append(maybe_fold(table(["optimizer", *sc["workloads"]], rows), f"the times on {clock}"))
    return parts


def _curves(
    summary: Mapping[str, Any], sc: Mapping[str, Any], ruleset: str, shown: list[str], cmap: Mapping[str, str]
) -> list[str]:
    left_out = len(sc["algorithms"]) - len(shown)
    parts = [
        f"<h3>Per-workload curves — {escape(ruleset)}</h3><p class='note'>Thin lines: every run (each seed, or the "
        "best trial of each study); thick: their median, with the interquartile band; dashed: the target."
        + (f" The leaderboard's first {HIGHLIGHT} and the baseline ({left_out} others left out)." if left_out else "")
        + "</p><div class='grid'>"
    ]
    info = {w["id"]: w for w in summary["workloads"]}
    for w, per_alg in sorted(summary["curves"].get(ruleset, {}).items(), key=lambda kv: _workload_order(kv[0])):
        series = []
        for a in shown:
            c = per_alg.get(a)
            if c:
                series += [
                    svg.Series(f"{a} seed {r['seed']} ({r['status']})", r["step"], r["metric"], cmap[a], thin=True)
                    for r in c.get("runs", [])
                ]
                series.append(svg.Series(f"{a} (n={c['n']})", c["step"], c["median"], cmap[a], c["q25"], c["q75"]))
        target = info.get(w, {}).get("target")
        plot = svg.Plot(
            title=w,
            xlabel="step",
            ylabel=info.get(w, {}).get("metric", "metric")[:40],
            ylog=info.get(w, {}).get("metric_scale") == "log",
            series=series,
            css_class="plot curve",
            hlines=[svg.HLine(target, f"target {target}")] if target is not None else [],
        )
        parts.append(plot.render())
    parts.append("</div>")
    return parts


def _tuning(sc: Mapping[str, Any], shown: list[str], cmap: Mapping[str, str]) -> list[str]:
    if not sc.get("tuning_budget"):
        return []
    parts = [
        "<h3>Tuning budget and learning-rate sensitivity</h3><p class='note'>Left: expected fraction of workloads "
        "solved by the best of k random trials. Others: tuning objective per trial against its learning rate (≤ 1: "
        "hit; 1–2: miss, by distance to the target; 2: diverged; 3: error).</p><div class='grid'>"
    ]
    budget = sc["tuning_budget"]
    series = [svg.Series(a, list(range(1, len(budget[a]) + 1)), budget[a], cmap[a]) for a in shown if budget.get(a)]
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
        for a in shown:
            pts = sc["lr_sensitivity"].get(a, {}).get(w)
            if pts:
                series.append(svg.Series(a, [p[0] for p in pts], [p[1] for p in pts], cmap[a], markers=True))
        if series:
            parts.append(
                svg.Plot(
                    title=f"{w}: objective vs lr",
                    xlabel="learning rate",
                    ylabel="objective",
                    xlog=True,
                    series=series,
                    hlines=[svg.HLine(1.0, "hit / miss boundary")],
                    css_class="plot sensitivity",
                ).render()
            )
    parts.append("</div>")
    return parts


def _tests(summary: Mapping[str, Any], sc: Mapping[str, Any], ruleset: str) -> list[str]:
    tests = sc.get("tests_vs_baseline") or {}
    if not tests:
        return []
    unit = "S per seed" if ruleset == "defaults" else "best S of each study (one value per study, never pooled trials)"
    rows = [[a] + [opt_num((tests[a].get(w) or {}).get("p_holm"), "") for w in sc["workloads"]] for a in tests]
    return [
        f"<h3>One-sided Mann–Whitney tests vs {escape(summary['baseline'])} ({unit})</h3>"
        "<p class='note'>Holm-adjusted p-value of “needs fewer steps than the baseline” per workload, over all "
        "the tests in this table (normal approximation; small samples).</p>",
        table(["optimizer", *sc["workloads"]], rows),
    ]


def _memory(sc: Mapping[str, Any]) -> list[str]:
    rows = []
    for a in sc["algorithms"]:
        mem = sc["memory"][a]
        row = [a]
        for w in sc["workloads"]:
            m = mem.get(w)
            ratio = m["state_bytes"] / m["param_bytes"] if m and m["param_bytes"] else 0
            row.append((f"{fmt_bytes(m['state_bytes'])} ({ratio:.1f}×)", m["state_bytes"]) if m else ("", -1))
        inc = max((m.get("rss_increase_bytes", 0) for m in mem.values()), default=0)
        peak = max((m["peak_rss_bytes"] for m in mem.values()), default=0)
        rows.append(row + [(fmt_bytes(inc), inc), (fmt_bytes(peak), peak)])
    parts = [
        "<h3>Memory</h3><p class='note'>Optimizer-state bytes (from <code>state_dict</code>) and their multiple of "
        "the parameter bytes; the largest RSS increase during a run (median over runs); the peak RSS.</p>",
        table(["optimizer", *[f"{w} state" for w in sc["workloads"]], "max RSS increase", "max peak RSS"], rows),
    ]
    if sc.get("errors"):
        rows = [[e["algorithm"], e["workload"], str(e["seed"]), (e["error"] or "")[:300]] for e in sc["errors"]]
        parts += ["<h3>Errors</h3>", table(["optimizer", "workload", "seed", "error"], rows, left=4)]
    return parts


def _workloads(summary: Mapping[str, Any]) -> list[str]:
    rows = []
    for w in summary["workloads"]:
        target = target_text(w) + (" (provisional)" if w.get("provisional") else "")
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
    return [
        "<h2 id='workloads'>Workloads</h2>",
        table(headers, rows, left=3),
        "<p class='note'>logits: the loss is a cross-entropy of the model's logits. Optimizers whose closure must "
        "return (loss, logits) (Sophia-G) run only on these workloads; elsewhere they are not applicable.</p>",
    ]


def _environment(summary: Mapping[str, Any]) -> list[str]:
    keys = ["git", "python", "torch", "numpy", "optuna", "cpu", "cpu_count", "threads", "device", "machine", "host"]
    rows = [
        [str(e.get(k, "")) for k in keys] + [str(e["runs"]), f"{e['first']} → {e['last']}"]
        for e in summary["environments"]
    ]
    parts = [
        "<h2 id='environment'>Environment and provenance</h2><p class='note'>threads: the torch threads of the "
        "worker process that ran the runs (a sweep with --jobs N splits --threads between N workers).</p>",
        table([*keys, "runs", "dates"], rows, left=len(keys) + 2),
    ]
    if summary.get("cost_env"):
        ce = summary["cost_env"]
        parts.append(
            f"<p class='note'>Step-cost table measured on machine <code>{escape(str(summary['cost_machine']))}</code>: "
            f"{escape(str(ce.get('cpu')))}, {escape(str(ce.get('threads')))} threads, "
            f"torch {escape(str(ce.get('torch')))}, "
            f"git {escape(str(ce.get('git')))}, {escape(str(ce.get('date')))}.</p>"
        )
    return parts


def render_html(summary: Mapping[str, Any]) -> str:
    """The whole report (sections above, per ruleset), as one HTML string."""
    parts = _head(summary)
    everyone = sorted({a for sc in summary["rulesets"].values() for a in sc["algorithms"]})
    for ruleset, sc in summary["rulesets"].items():
        shown = in_colour(summary, sc)
        # one colour per optimizer across rulesets, unless there are more optimizers than colours
        cmap = colors(everyone) if len(everyone) <= len(svg.PALETTE) else colors(shown)
        parts += _winners(summary, sc, ruleset) + _hparams(summary, ruleset) + _outcomes(summary, sc, ruleset)
        parts += _leaderboard(summary, sc, ruleset) + _profiles(sc, shown, cmap) + _winrate_and_times(sc)
        parts += _curves(summary, sc, ruleset, shown, cmap) + _tuning(sc, shown, cmap)
        parts += _tests(summary, sc, ruleset) + _memory(sc)
    parts += _workloads(summary) + _environment(summary)
    parts.append(f"<script>{JS}</script></body></html>")
    return "".join(parts)
