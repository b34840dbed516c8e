"""The statistics and the table of ``step_time.py``: paired ratios over interleaved rounds, the roofline, the
rows (plain text or Markdown) and the summary lines below them."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


def paired_ratio(a, b) -> float | None:
    """Median over rounds of a's step time over b's (the two measured in the same rounds)."""
    if not a.samples or not b.samples:
        return None
    return statistics.median(x / y for x, y in zip(a.samples, b.samples))


def bandwidths(probes) -> list[float]:
    """Bytes per second in each round: the fastest probe of that round."""
    live = [p for p in probes if p.samples]
    return [max(rates) for rates in zip(*[[p.bytes_per_step / t for t in p.samples] for p in live])]


def roofline_ratio(c, bandwidth: Sequence[float]) -> float | None:
    """Median over rounds of step time over (bytes / the bandwidth measured in that round)."""
    if not c.samples or not bandwidth or not c.bytes_per_step:
        return None
    return statistics.median(t / (c.bytes_per_step / bw) for t, bw in zip(c.samples, bandwidth))


def spread(samples: Sequence[float]) -> float | None:
    if len(samples) < 2:
        return None
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return (q[2] - q[0]) / statistics.median(samples)


@dataclass
class Row:
    algorithm: str
    label: str
    ms: float | None = None
    vs_fused: float | None = None
    vs_loop: float | None = None
    vs_roof: float | None = None
    bytes_per_param: float | None = None
    compile_s: float | None = None
    spread: float | None = None
    error: str | None = None
    vs_peer: float | None = None
    peer: str | None = None  # the fastest peer implementation, the reference of ``vs_peer``


COLUMNS = (
    "optimizer",
    "implementation",
    "ms/step",
    "/ fused",
    "/ loop",
    "/ roof",
    "B/param",
    "compile s",
    "spread",
    "/ peer",
)


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def row_cells(row: Row) -> list[str]:
    if row.error:  # the message goes below the table
        return [row.algorithm, row.label, "error", *["-"] * (len(COLUMNS) - 3)]
    return [
        row.algorithm,
        row.label,
        _fmt(row.ms, ".2f"),
        _fmt(row.vs_fused, ".2f"),
        _fmt(row.vs_loop, ".2f"),
        _fmt(row.vs_roof, ".2f"),
        _fmt(row.bytes_per_param, "g"),
        _fmt(row.compile_s, ".1f"),
        "-" if row.spread is None else f"{100 * row.spread:.0f}%",
        _fmt(row.vs_peer, ".2f"),
    ]


def format_table(rows: Sequence[Row], markdown: bool) -> str:
    cells = [list(COLUMNS)] + [row_cells(r) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
        lines += ["| " + " | ".join(c) + " |" for c in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    right = set(range(2, len(COLUMNS)))

    def line(c):
        return "  ".join(c[i].rjust(widths[i]) if i in right else c[i].ljust(widths[i]) for i in range(len(c)))

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(c) for c in cells[1:]])


def fastest(cands):
    """The candidate with the smallest median step time (None when none has samples)."""
    timed = [c for c in cands if c.samples]
    return min(timed, key=lambda c: statistics.median(c.samples)) if timed else None


def summarise(rows: Sequence[Row]) -> list[str]:
    """The project's speed goals for AdamW, the cost of the NaN/Inf check and each algorithm's fastest peer,
    where those rows were run."""
    by = {(r.algorithm, r.label): r for r in rows if not r.error}
    lines = []
    eager, comp = by.get(("adamw", "optimlab eager")), by.get(("adamw", "optimlab compiled"))
    if eager and eager.vs_loop is not None:
        verdict = "met" if eager.vs_loop <= 1.2 else "MISSED"
        lines.append(f"goal eager optimlab AdamW <= 1.2x torch for-loop AdamW: {eager.vs_loop:.2f}x ({verdict})")
    if comp and comp.vs_fused is not None:
        verdict = "met" if comp.vs_fused <= 1.3 else "MISSED"
        lines.append(f"goal compiled optimlab AdamW <= 1.3x torch fused AdamW: {comp.vs_fused:.2f}x ({verdict})")
    for r in rows:
        if r.error or not r.label.endswith("nonfinite=propagate"):
            continue
        base = by.get((r.algorithm, r.label.replace(", nonfinite=propagate", "")))
        if base and base.vs_loop and r.vs_loop:
            cost = base.vs_loop / r.vs_loop - 1
            mode = r.label.split(",")[0].removeprefix("optimlab ")
            lines.append(f"NaN/Inf check (nonfinite='skip' vs 'propagate'), {r.algorithm} {mode}: {100 * cost:+.1f}%")
    versus: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        if r.vs_peer is not None:
            versus.setdefault((r.algorithm, r.peer), []).append(f"{r.label.removeprefix('optimlab ')} {r.vs_peer:.2f}x")
    for (algorithm, peer), figures in versus.items():
        lines.append(f"{algorithm} / fastest peer ({peer}): {', '.join(figures)}")
    return lines
