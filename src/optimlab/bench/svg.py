"""Tiny inline-SVG line plots for the report (no matplotlib, no CDN: the HTML stays self-contained)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#7f7f7f",
    "#bcbd22",
    "#17becf",
    "#393b79",
    "#ad494a",
)


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


@dataclass
class Series:
    name: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    color: str = "#1f77b4"
    lo: Sequence[float | None] | None = None
    hi: Sequence[float | None] | None = None
    step: bool = False
    dashed: bool = False
    #: draw points only (scatter)
    markers: bool = False
    #: a thin, faint line left out of the legend (one run beside its median)
    thin: bool = False


@dataclass
class HLine:
    y: float
    label: str = ""
    color: str = "#444"


@dataclass
class Plot:
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    xlog: bool = False
    ylog: bool = False
    width: int = 420
    height: int = 260
    series: list[Series] = field(default_factory=list)
    hlines: list[HLine] = field(default_factory=list)
    xlim: tuple[float, float] | None = None
    ylim: tuple[float, float] | None = None
    legend: bool = True
    css_class: str = "plot"

    def render(self) -> str:
        return _render(self)


def _ok(v: float | None, log: bool) -> bool:
    return v is not None and math.isfinite(v) and (not log or v > 0)


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=raw)
    start = math.ceil(lo / step) * step
    ticks = []
    t = start
    while t <= hi + 1e-12 * abs(hi):
        ticks.append(round(t, 12))
        t += step
    return ticks


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    if a >= 1e4 or a < 1e-3:
        return f"{v:.0e}".replace("e-0", "e-").replace("e+0", "e")
    return f"{v:g}"


def _data(p: Plot, axis: str, log: bool) -> list[float]:
    """Every plottable value of one axis (y includes bands and horizontal lines)."""
    vals = []
    for s in p.series:
        seqs = [s.xs] if axis == "x" else [s.ys, s.lo or [], s.hi or []]
        for seq in seqs:
            vals += [v for v in seq if _ok(v, log)]
    if axis == "y":
        vals += [hl.y for hl in p.hlines if _ok(hl.y, log)]
    return vals


def _limits(p: Plot, axis: str, log: bool, forced: tuple[float, float] | None) -> tuple[float, float]:
    """The axis range in plot units (log10 on a log axis), padded by 4% unless forced."""
    if forced:
        lo, hi = forced
    else:
        vals = _data(p, axis, log)
        if not vals:
            lo, hi = (1.0, 10.0) if log else (0.0, 1.0)
        else:
            lo, hi = min(vals), max(vals)
    if log:
        lo, hi = math.log10(max(lo, 1e-300)), math.log10(max(hi, 1e-300))
    if hi - lo < 1e-12:
        lo, hi = lo - 0.5, hi + 0.5
    if not forced:
        pad = 0.04 * (hi - lo)
        lo, hi = lo - pad, hi + pad
    return lo, hi


class _Frame:
    """The plot area (margins, size) and the data -> pixel maps of one plot."""

    def __init__(self, p: Plot) -> None:
        self.p = p
        self.ml, self.mr, self.mt, self.mb = 56, 12, 26 if p.title else 10, 40
        self.named = [s for s in p.series if not s.thin]
        legend_h = 16 * math.ceil(len(self.named) / 3) + 8 if p.legend and self.named else 0
        self.w, self.h = p.width, p.height + legend_h
        self.pw, self.ph = self.w - self.ml - self.mr, p.height - self.mt - self.mb
        self.x0, self.x1 = _limits(p, "x", p.xlog, p.xlim)
        self.y0, self.y1 = _limits(p, "y", p.ylog, p.ylim)

    def sx(self, v: float) -> float:
        v = math.log10(v) if self.p.xlog else v
        return self.ml + (v - self.x0) / (self.x1 - self.x0) * self.pw

    def sy(self, v: float) -> float:
        v = math.log10(v) if self.p.ylog else v
        return self.mt + self.ph - (v - self.y0) / (self.y1 - self.y0) * self.ph

    def pt(self, x: float, y: float) -> str:
        return f"{self.sx(x):.1f},{self.sy(y):.1f}"


def _ticks(log: bool, lo: float, hi: float) -> list[float]:
    if not log:
        return _nice_ticks(lo, hi)
    ticks = [10.0**k for k in range(math.ceil(lo), math.floor(hi) + 1)]
    if len(ticks) > 8:
        ticks = ticks[:: math.ceil(len(ticks) / 8)]
    return ticks


def _axes(f: _Frame) -> list[str]:
    """Grid lines, tick labels and axis labels."""
    p, ml, mt, pw, ph = f.p, f.ml, f.mt, f.pw, f.ph
    out = []
    for t in _ticks(p.xlog, f.x0, f.x1):
        x = f.sx(t)
        out.append(f'<line x1="{x:.1f}" y1="{mt}" x2="{x:.1f}" y2="{mt + ph}" stroke="#eee"/>')
        out.append(f'<text x="{x:.1f}" y="{mt + ph + 14}" text-anchor="middle" class="tk">{_fmt(t)}</text>')
    for t in _ticks(p.ylog, f.y0, f.y1):
        y = f.sy(t)
        out.append(f'<line x1="{ml}" y1="{y:.1f}" x2="{ml + pw}" y2="{y:.1f}" stroke="#eee"/>')
        out.append(f'<text x="{ml - 4}" y="{y + 4:.1f}" text-anchor="end" class="tk">{_fmt(t)}</text>')
    if p.xlabel:
        out.append(
            f'<text x="{ml + pw / 2:.1f}" y="{mt + ph + 32}" text-anchor="middle" class="al">{escape(p.xlabel)}</text>'
        )
    if p.ylabel:
        cy = mt + ph / 2
        out.append(
            f'<text x="12" y="{cy:.1f}" text-anchor="middle" class="al" transform="rotate(-90 12 {cy:.1f})">'
            f"{escape(p.ylabel)}</text>"
        )
    return out


def _band(f: _Frame, s: Series) -> list[str]:
    """The shaded lo–hi band of a series (empty without one)."""
    if s.lo is None or s.hi is None:
        return []
    pts_hi, pts_lo = [], []
    for x, lo, hi in zip(s.xs, s.lo, s.hi):
        if _ok(x, f.p.xlog) and _ok(lo, f.p.ylog) and _ok(hi, f.p.ylog):
            pts_hi.append(f.pt(x, hi))
            pts_lo.append(f.pt(x, lo))
    if len(pts_hi) <= 1:
        return []
    poly = " ".join(pts_hi + pts_lo[::-1])
    return [f'<polygon points="{poly}" fill="{s.color}" fill-opacity="0.15" stroke="none"/>']


def _markers(f: _Frame, s: Series) -> list[str]:
    return [
        f'<circle cx="{f.sx(x):.1f}" cy="{f.sy(y):.1f}" r="3" fill="{s.color}" fill-opacity="0.75">'
        f"<title>{escape(s.name)}: {_fmt(x)}, {_fmt(y)}</title></circle>"
        for x, y in zip(s.xs, s.ys)
        if _ok(x, f.p.xlog) and _ok(y, f.p.ylog)
    ]


def _segments(f: _Frame, s: Series) -> list[list[str]]:
    """The series' points as polyline segments, broken at missing values (with steps for ``s.step``)."""
    segments: list[list[str]] = [[]]
    prev_y = None
    for x, y in zip(s.xs, s.ys):
        if _ok(x, f.p.xlog) and _ok(y, f.p.ylog):
            if s.step and prev_y is not None and segments[-1]:
                segments[-1].append(f.pt(x, prev_y))
            segments[-1].append(f.pt(x, y))
            prev_y = y
        elif segments[-1]:
            segments.append([])
            prev_y = None
    return segments


def _line(f: _Frame, s: Series) -> list[str]:
    """A polyline per segment; a lone point as a dot."""
    dash = ' stroke-dasharray="4,2"' if s.dashed else ""
    width = ' stroke-width="0.8" stroke-opacity="0.45"' if s.thin else ' stroke-width="1.8"'
    out = []
    for seg in _segments(f, s):
        if len(seg) > 1:
            out.append(
                f'<polyline points="{" ".join(seg)}" fill="none" stroke="{s.color}"{width}{dash}>'
                f"<title>{escape(s.name)}</title></polyline>"
            )
        elif len(seg) == 1:
            cx, cy = seg[0].split(",")
            out.append(f'<circle cx="{cx}" cy="{cy}" r="2.5" fill="{s.color}"><title>{escape(s.name)}</title></circle>')
    return out


def _plot_area(f: _Frame) -> list[str]:
    """The clipped content: target lines, then each series (band, then markers or line)."""
    p, ml, mt, pw, ph = f.p, f.ml, f.mt, f.pw, f.ph
    out = [
        f'<clipPath id="c{id(p)}"><rect x="{ml}" y="{mt}" width="{pw}" height="{ph}"/></clipPath>',
        f'<g clip-path="url(#c{id(p)})">',
    ]
    for hl in p.hlines:
        if _ok(hl.y, p.ylog):
            y = f.sy(hl.y)
            out.append(
                f'<line x1="{ml}" y1="{y:.1f}" x2="{ml + pw}" y2="{y:.1f}" stroke="{hl.color}" '
                f'stroke-dasharray="5,3" class="target"><title>{escape(hl.label)}</title></line>'
            )
    for s in p.series:
        out += _band(f, s)
        out += _markers(f, s) if s.markers else _line(f, s)
    out.append("</g>")
    return out


def _legend(f: _Frame) -> list[str]:
    """Three named series per row under the plot (thin per-run lines are left out)."""
    if not (f.p.legend and f.named):
        return []
    out = []
    for i, s in enumerate(f.named):
        col, row = i % 3, i // 3
        lx = f.ml + col * (f.pw / 3)
        ly = f.p.height + 12 + row * 16
        out.append(f'<rect x="{lx:.1f}" y="{ly - 8:.1f}" width="12" height="3" fill="{s.color}"/>')
        out.append(f'<text x="{lx + 16:.1f}" y="{ly - 3:.1f}" class="lg">{escape(s.name[:28])}</text>')
    return out


def _render(p: Plot) -> str:
    f = _Frame(p)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{escape(p.css_class)}" width="{f.w}" height="{f.h}" '
        f'viewBox="0 0 {f.w} {f.h}" role="img" aria-label="{escape(p.title or p.ylabel)}">',
        f'<rect x="{f.ml}" y="{f.mt}" width="{f.pw}" height="{f.ph}" fill="#fff" stroke="#bbb"/>',
    ]
    if p.title:
        out.append(f'<text x="{f.ml + f.pw / 2:.1f}" y="16" text-anchor="middle" class="pt">{escape(p.title)}</text>')
    out += _axes(f)
    out += _plot_area(f)
    out += _legend(f)
    out.append("</svg>")
    return "".join(out)
