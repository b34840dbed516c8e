"""Results of a claims run: the JSON file and a self-contained HTML page (inline CSS and SVG, no scripts, no
external resources)."""

from __future__ import annotations

import datetime as _dt
import html
import json
import math
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._framework import ERROR, PENDING, ClaimResult, Figure
from ._stats import CONFIRMED, INCONCLUSIVE, NOT_CONFIRMED

FORMAT_VERSION = 1
STATUS_ORDER = (CONFIRMED, NOT_CONFIRMED, INCONCLUSIVE, PENDING, ERROR)
STATUS_COLORS = {
    CONFIRMED: "#1a7f37",
    NOT_CONFIRMED: "#cf222e",
    INCONCLUSIVE: "#9a6700",
    PENDING: "#6e7781",
    ERROR: "#82071e",
}
PALETTE = (
    "#0969da",
    "#cf222e",
    "#1a7f37",
    "#8250df",
    "#bc4c00",
    "#1b7c83",
    "#bf3989",
    "#57606a",
    "#953800",
    "#0550ae",
    "#4d2d00",
    "#116329",
)


# ----------------------------------------------------------------------------- JSON
def jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars and arrays become Python numbers and lists, tuples lists, non-finite
    floats the strings "inf", "-inf", "nan" (strict JSON has no such numbers)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy arrays and scalars, 0-d tensors
        return jsonable(obj.tolist())
    if isinstance(obj, bool) or obj is None or isinstance(obj, (int, str)):
        return obj
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        return "nan" if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return str(obj)


def environment() -> dict[str, Any]:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "torch_threads": torch.get_num_threads(),
    }


def results_document(results: Sequence[ClaimResult], meta: dict[str, Any] | None = None) -> dict[str, Any]:
    counts = {s: sum(r.status == s for r in results) for s in STATUS_ORDER}
    return jsonable(
        {
            "format": FORMAT_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "environment": environment(),
            "meta": meta or {},
            "summary": counts,
            "claims": [r.to_dict() for r in results],
        }
    )


def save_json(path: str | Path, results: Sequence[ClaimResult], meta: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(results_document(results, meta), indent=1, ensure_ascii=False), encoding="utf-8")
    tmp.replace(path)  # never leave a half-written results file behind
    return path


def load_json(path: str | Path) -> tuple[list[ClaimResult], dict[str, Any]]:
    doc = json.loads(Path(path).read_text(encoding="utf-8"))
    return [ClaimResult.from_dict(c) for c in doc["claims"]], doc


# ----------------------------------------------------------------------------- SVG plots
def _nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(count - 1, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    start = math.ceil(lo / step) * step
    ticks, v = [], start
    while v <= hi + 1e-9 * step:
        ticks.append(0.0 if abs(v) < 1e-12 * step else v)
        v += step
    return ticks


def _fmt_tick(v: float) -> str:
    if v == 0:
        return "0"
    if abs(v) >= 1e4 or abs(v) < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:.4g}"


def svg_plot(fig: Figure, width: int = 360, height: int = 210) -> str:
    """An inline SVG line plot of ``fig`` (log axes drop non-positive values)."""
    left, right, top, bottom = 52, 10, 20, 34
    pw, ph = width - left - right, height - top - bottom

    def tx(v: float) -> float | None:
        if not math.isfinite(v) or (fig.logx and v <= 0):
            return None
        return math.log10(v) if fig.logx else v

    def ty(v: float) -> float | None:
        if v is None or not math.isfinite(v) or (fig.logy and v <= 0):
            return None
        return math.log10(v) if fig.logy else v

    pts = []
    for s in fig.series:
        line = [(tx(x), ty(y)) for x, y in zip(s.x, s.y)]
        pts.append([(a, b) for a, b in line if a is not None and b is not None])
    xs = [p[0] for line in pts for p in line]
    ys = [p[1] for line in pts for p in line] + [t for t in (ty(h) for h, _ in fig.hlines) if t is not None]
    out = [
        f'<svg width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{html.escape(fig.title)}">'
    ]
    out.append(f'<rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fff" stroke="#d0d7de"/>')
    if not xs or not ys:
        out.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" font-size="11">no data</text></svg>')
        return "".join(out)
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        pad = abs(y0) * 0.1 or 1.0
        y0, y1 = y0 - pad, y1 + pad
    pad = (y1 - y0) * 0.05
    y0, y1 = y0 - pad, y1 + pad

    def px(v: float) -> float:
        return left + (v - x0) / (x1 - x0) * pw

    def py(v: float) -> float:
        return top + ph - (v - y0) / (y1 - y0) * ph

    def ticks(lo: float, hi: float, log: bool) -> list[tuple[float, str]]:
        if log:
            decades = list(range(math.ceil(lo), math.floor(hi) + 1))
            if len(decades) >= 2:
                stride = max(1, math.ceil(len(decades) / 6))
                return [(float(d), _fmt_tick(10.0**d)) for d in decades[::stride]]
            return [(t, _fmt_tick(10**t)) for t in (lo, hi)]
        return [(t, _fmt_tick(t)) for t in _nice_ticks(lo, hi)]

    for t, label in ticks(y0, y1, fig.logy):
        y = py(t)
        out.append(f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eaeef2"/>')
        out.append(f'<text x="{left - 4}" y="{y + 3:.1f}" text-anchor="end" font-size="9">{label}</text>')
    for t, label in ticks(x0, x1, fig.logx):
        x = px(t)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + ph}" stroke="#eaeef2"/>')
        out.append(f'<text x="{x:.1f}" y="{top + ph + 11}" text-anchor="middle" font-size="9">{label}</text>')
    for value, label in fig.hlines:
        t = ty(value)
        if t is None or not (y0 <= t <= y1):
            continue
        y = py(t)
        out.append(
            f'<line x1="{left}" x2="{left + pw}" y1="{y:.1f}" y2="{y:.1f}" stroke="#57606a" stroke-dasharray="4 3"/>'
        )
        out.append(
            f'<text x="{left + pw - 2}" y="{y - 2:.1f}" text-anchor="end" font-size="8" fill="#57606a">'
            f"{html.escape(label)}</text>"
        )
    for i, line in enumerate(pts):
        color = PALETTE[i % len(PALETTE)]
        if len(line) == 1:
            out.append(f'<circle cx="{px(line[0][0]):.1f}" cy="{py(line[0][1]):.1f}" r="2.5" fill="{color}"/>')
        elif line:
            d = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in line)
            out.append(f'<polyline points="{d}" fill="none" stroke="{color}" stroke-width="1.4"/>')
            if len(line) <= 12:
                out += [f'<circle cx="{px(a):.1f}" cy="{py(b):.1f}" r="2" fill="{color}"/>' for a, b in line]
    out.append(
        f'<text x="{left + pw / 2}" y="{height - 4}" text-anchor="middle" font-size="10">'
        f"{html.escape(fig.xlabel)}{' (log)' if fig.logx else ''}</text>"
    )
    out.append(
        f'<text x="10" y="{top + ph / 2}" text-anchor="middle" font-size="10" '
        f'transform="rotate(-90 10 {top + ph / 2})">{html.escape(fig.ylabel)}{" (log)" if fig.logy else ""}'
        "</text>"
    )
    # a title wider than the panel (~5.6 px per bold 10 px glyph) is compressed to fit rather than cut off
    avail = width - left - 4
    fit = f' textLength="{avail}" lengthAdjust="spacingAndGlyphs"' if 5.6 * len(fig.title) > avail else ""
    out.append(f'<text x="{left}" y="12" font-size="10" font-weight="600"{fit}>{html.escape(fig.title)}</text>')
    out.append("</svg>")
    return "".join(out)


def _legend(fig: Figure) -> str:
    items = [
        f'<span class="lg"><i style="background:{PALETTE[i % len(PALETTE)]}"></i>{html.escape(s.label)}</span>'
        for i, s in enumerate(fig.series)
    ]
    return '<div class="legend">' + "".join(items) + "</div>"


# ----------------------------------------------------------------------------- HTML
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        if not math.isfinite(v):
            return "∞" if v > 0 else ("−∞" if v < 0 else "nan")
        return f"{v:.4g}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def effect_text(r: ClaimResult) -> str:
    """The headline effect: the primary check's estimate with its interval."""
    c = r.primary
    if c is None:
        return ""
    ev = c.evaluation
    if "replicates" in ev.detail and ev.detail[:1].isdigit():  # AllPass: "k/n replicates ≤ t (worst w)"
        return ev.detail
    if not math.isfinite(ev.estimate):
        return ev.detail
    ci = f" [{ev.lo:.3g}, {ev.hi:.3g}]" if math.isfinite(ev.lo) and math.isfinite(ev.hi) else ""
    return f"{ev.estimate:.3g}{ci}"


def _badge(status: str) -> str:
    return f'<span class="badge" style="background:{STATUS_COLORS.get(status, "#6e7781")}">{html.escape(status)}</span>'


def _table(rows: list[dict[str, Any]]) -> str:
    if not rows:
        return ""
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(row.get(c, '')))}</td>" for c in cols) + "</tr>" for row in rows
    )
    return f'<table class="inner"><tr>{head}</tr>{body}</table>'


def _details(r: ClaimResult) -> str:
    parts = []
    if r.setting:
        parts.append(f"<p><b>Setting.</b> {html.escape(r.setting)}</p>")
    if r.checks:
        rows = [
            {
                "check": c.name + (" (reported)" if c.role == "report" else ""),
                "statement": c.statement,
                "verdict": c.evaluation.verdict,
                "numbers": c.evaluation.detail,
                "rule": c.rule,
            }
            for c in r.checks
        ]
        parts.append(
            "<p><b>Checks</b> (the claim's verdict combines the non-reported ones: all confirmed → "
            "confirmed, any not confirmed → not confirmed).</p>" + _table(rows)
        )
    if r.table:
        parts.append("<p><b>Measurements.</b></p>" + _table(r.table))
    if r.info:
        parts.append(
            "<p><b>Details.</b> " + html.escape("; ".join(f"{k}: {_fmt(v)}" for k, v in r.info.items())) + "</p>"
        )
    if r.notes:
        parts.append(f"<p><b>Notes.</b> {html.escape(r.notes)}</p>")
    if r.reason:
        parts.append(f"<pre>{html.escape(r.reason)}</pre>")
    return "".join(parts)


CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1f2328}
h1{font-size:22px;margin:0 0 4px}.meta{color:#57606a;margin-bottom:14px}
table.main{border-collapse:collapse;width:100%}table.main>tbody>tr>td,table.main>thead>tr>th{border-top:1px solid
#d0d7de;padding:8px 6px;vertical-align:top;text-align:left}table.main th{background:#f6f8fa}
.badge{color:#fff;border-radius:10px;padding:2px 8px;font-size:12px;white-space:nowrap}
.small{font-size:12px;color:#57606a}.legend{font-size:11px;max-width:360px}.lg{margin-right:8px;white-space:nowrap}
.lg i{display:inline-block;width:9px;height:9px;margin-right:3px;border-radius:2px}
details summary{cursor:pointer;color:#0969da}table.inner{border-collapse:collapse;font-size:12px;margin:4px 0}
table.inner td,table.inner th{border:1px solid #d0d7de;padding:2px 5px;text-align:left;vertical-align:top}
pre{white-space:pre-wrap;font-size:11px;background:#f6f8fa;padding:6px}.summary span{margin-right:12px}
"""


def render_html(results: Sequence[ClaimResult], meta: dict[str, Any] | None = None) -> str:
    meta = meta or {}
    env = environment()
    counts = {s: sum(r.status == s for r in results) for s in STATUS_ORDER}
    total = sum(r.runtime_s for r in results)
    mode = "quick" if results and all(r.quick for r in results) else "full"
    rows = []
    for r in results:
        plot = (svg_plot(r.figure) + _legend(r.figure)) if r.figure is not None else ""
        weak = ' <span class="small">(weak at toy scale)</span>' if r.weak else ""
        rows.append(
            "<tr>"
            f"<td><b>{html.escape(r.id)}</b><br>{html.escape(r.title)}{weak}</td>"
            f'<td class="small">{html.escape(r.paper)}</td>'
            f"<td>{html.escape(r.statement)}<details><summary>details</summary>{_details(r)}</details></td>"
            f"<td>{_badge(r.status)}"
            + (f'<div class="small">{html.escape(r.reason.splitlines()[0])}</div>' if r.reason else "")
            + "</td>"
            f"<td>{html.escape(effect_text(r))}"
            + (f'<div class="small">{html.escape(r.primary.name)}</div>' if r.primary else "")
            + "</td>"
            f"<td>{len(r.seeds) if r.status not in (PENDING,) else ''}</td>"
            f"<td>{r.runtime_s:.1f} s</td>"
            f"<td>{plot}</td>"
            "</tr>"
        )
    summary = "".join(f"<span>{_badge(s)} {counts[s]}</span>" for s in STATUS_ORDER if counts[s])
    created = meta.get("created") or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>optimlab claims</title>"
        f"<style>{CSS}</style></head><body>"
        "<h1>optimlab — executable claims of the seed papers</h1>"
        f'<div class="meta">{html.escape(mode)} run, {len(results)} claims, {total:.0f} s of claim time; '
        f"created {html.escape(str(created))}; torch {html.escape(env['torch'])}, Python "
        f"{html.escape(env['python'])}, {html.escape(str(meta.get('threads', env['torch_threads'])))} thread(s) per "
        f"claim, {html.escape(str(meta.get('jobs', 1)))} job(s)</div>"
        f'<div class="summary">{summary}</div>'
        '<p class="small">A verdict comes from each check\'s stated rule applied to per-seed measurements '
        "(Student-t or bootstrap CI of the mean effect against a margin; or a property that must hold in every "
        "replicate). Not confirmed is a valid outcome: see each claim's details for the numbers and the setting.</p>"
        '<table class="main"><thead><tr><th>claim</th><th>paper</th><th>statement</th><th>verdict</th>'
        "<th>effect [95% CI]</th><th>seeds</th><th>runtime</th><th>plot</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></body></html>"
    )


def save_html(path: str | Path, results: Sequence[ClaimResult], meta: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(results, meta), encoding="utf-8")
    return path


def render_markdown(results: Sequence[ClaimResult], meta: dict[str, Any] | None = None) -> str:
    """The verdict table as a Markdown page: one row per claim with its deciding check, then each claim's numbers
    behind the verdict (every verdict check's one-line detail)."""
    meta = meta or {}
    mode = "quick" if meta.get("quick") else "full"
    wall = meta.get("wall_s")
    created = meta.get("created") or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    counts = {s: sum(r.status == s for r in results) for s in STATUS_COLORS if any(r.status == s for r in results)}
    lines = [
        "# Executable claims: verdicts",
        "",
        f"{len(results)} claims, {mode} configuration, generated {created}"
        + (f", {wall:.0f} s wall" if isinstance(wall, (int, float)) else "")
        + ": "
        + ", ".join(f"{n} {s}" for s, n in counts.items())
        + ". Effect = the estimate of the check that decided the verdict, with its 95% interval (or the replicates "
        "passing a property check); `optimlab claims run` reproduces it.",
        "",
        "| claim | verdict | deciding check | effect [95% CI] | seeds | time | title |",
        "|---|---|---|---|---|---|---|",
    ]

    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    for r in results:
        done = r.status not in (PENDING, ERROR)
        effect = effect_text(r) if done else (r.reason.splitlines()[0] if r.reason else "")
        check = r.primary.name if done and r.primary else ""
        seeds = str(len(r.seeds)) if done else ""
        row = (r.id, r.status, cell(check), cell(effect), seeds, f"{r.runtime_s:.0f} s", cell(r.title))
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## The numbers behind each verdict", ""]
    for r in results:
        if r.status in (PENDING, ERROR):
            continue
        lines.append(f"**{r.id} — {r.status}.** {r.statement}")
        lines.append("")
        for c in r.checks:
            if c.role == "verdict":
                lines.append(f"- {c.name} ({c.evaluation.verdict}): {cell(c.evaluation.detail)}")
        lines.append("")
    return "\n".join(lines)


def save_markdown(path: str | Path, results: Sequence[ClaimResult], meta: dict[str, Any] | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(results, meta), encoding="utf-8")
    return path


def verdict_table(results: Sequence[ClaimResult]) -> str:
    """A plain-text table for the terminal: id, verdict, headline effect, seeds, runtime, title."""
    rows = [("claim", "verdict", "effect [95% CI]", "seeds", "time", "title")]
    for r in results:
        effect = effect_text(r) if r.status not in (PENDING, ERROR) else (r.reason.splitlines()[0] if r.reason else "")
        rows.append(
            (r.id, r.status, effect, str(len(r.seeds)) if r.status != PENDING else "", f"{r.runtime_s:.0f}s", r.title)
        )
    widths = [min(max(len(row[i]) for row in rows), 48) for i in range(len(rows[0]) - 1)]
    lines = []
    for row in rows:
        cells = [row[i][:48].ljust(widths[i]) for i in range(len(widths))] + [row[-1]]
        lines.append("  ".join(cells))
    return "\n".join(lines)
