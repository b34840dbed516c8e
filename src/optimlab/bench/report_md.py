"""The Markdown leaderboard (for the README and docs): per ruleset, the per-workload winners with their statistical
ties, the leaderboard with rank intervals and honest speedups, and the outcomes per workload."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from . import scoring
from .report import leaderboard_rows, outcome_cell, rank_clock, target_text, ties_text


def _header(summary: Mapping[str, Any]) -> list[str]:
    lines = [f"# optimlab benchmark — suite `{summary['suite']}`", ""]
    if "provisional" in summary["suite"]:
        lines += ["> Targets are provisional (not yet calibrated); rankings are indicative only.", ""]
    if summary.get("incomplete"):
        q = summary.get("queue", {})
        lines += [
            f"> **Unfinished sweep:** {summary['incomplete']} planned runs have no result "
            f"({q.get('WAITING', 0)} waiting, {q.get('RUNNING', 0)} running, "
            f"{summary['incomplete'] - q.get('WAITING', 0) - q.get('RUNNING', 0)} failed after every retry). "
            "Rankings cover the finished runs only.",
            "",
        ]
    lines.append(
        f"{summary['n_runs']} runs; generated {summary['generated']}. Scores: AlgoPerf performance-profile integral "
        f"(τ ≤ {scoring.R_MAX:g}) on T = steps × step cost, S = steps, G = gradient evaluations; 95% bootstrap CI; "
        f"rank: 95% bootstrap interval of the rank on score {rank_clock(summary)} (ties in score broken by "
        "the miss distance)."
    )
    return lines


def _winners(sc: Mapping[str, Any], workloads: list[Mapping[str, Any]]) -> list[str]:
    lines = [
        "",
        f"Per-workload winner on {scoring.RANK_CLOCK} (gradient evaluations to target); tied: not shown slower "
        f"(one-sided Mann–Whitney, Holm, α = {scoring.ALPHA}). When nobody reaches the target, the closest (miss "
        "distance in decades) is named.",
        "",
        "| workload | target | winner | statistically tied |",
        "|---|---|---|---|",
    ]
    for w in workloads:
        win = sc.get("winners", {}).get(w["id"])
        if not win:
            continue
        target = target_text(w)
        if win["reached"]:
            who = f"**{win['winner']}** ({win['time']:,.0f})"
        else:
            who = f"nobody reached it; closest {win['winner']} ({win['distance']:.2g} decades)"
        lines.append(f"| {w['id']} | {target} | {who} | {ties_text(win)} |")
    return lines


def _board(sc: Mapping[str, Any], baseline: str) -> list[str]:
    lines = [
        "",
        "| rank [95%] | optimizer | library | tuning-free | score T | score S | score G | "
        f"speedup G vs {baseline} (both reach / misses) | hit rate | failure rate |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    marks = sc.get("tuning_free", {})
    for r in leaderboard_rows(sc):
        rank = f"{r['rank_ci'][0]}–{r['rank_ci'][1]}" if r["rank_ci"] else "—"
        sp = r["speedup_G"]
        sp = "—" if sp is None or not math.isfinite(sp) else f"{sp:.2f}×"
        if r["both"] is not None:
            sp += f" ({r['both']} / {r['misses']})"
        lines.append(
            f"| {rank} | {r['algorithm']} | {r['library']} | {marks.get(r['algorithm'], '')} | {r['T'][1]} | "
            f"{r['S'][1]} | {r['G'][1]} | {sp} | "
            f"{r['hit_rate']:.0%} | {r['failure_rate']:.0%} |"
        )
    if marks:
        lines += ["", scoring.TUNING_FREE_NOTE]
    return lines


def _outcomes(sc: Mapping[str, Any], workloads: list[Mapping[str, Any]]) -> list[str]:
    """One row per optimizer (leaderboard order), one column per workload: the catalogue grows, the suite does not."""
    lines = [
        "",
        "Outcomes: runs that hit the target · median of the runs' best metric · median steps to target.",
        "",
        "| optimizer | " + " | ".join(f"{w['id']} {target_text(w)}" for w in workloads) + " |",
        "|---|" + "---|" * len(workloads),
    ]
    for row in leaderboard_rows(sc):
        mine = sc.get("outcomes", {}).get(row["algorithm"], {})
        lines.append(f"| {row['algorithm']} | " + " | ".join(outcome_cell(mine.get(w["id"])) for w in workloads) + " |")
    return lines


def render_markdown(summary: Mapping[str, Any]) -> str:
    lines = _header(summary)
    for ruleset, sc in summary["rulesets"].items():
        lines += ["", f"## Ruleset `{ruleset}`"]
        lines += _winners(sc, summary["workloads"])
        lines += _board(sc, sc["clocks"]["G"].get("speedup_baseline") or summary["baseline"])
        lines += _outcomes(sc, summary["workloads"])
    lines.append("")
    return "\n".join(lines)
