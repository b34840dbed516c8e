"""The measured results an algorithm page quotes, read from the pages that publish them: its rows of the
benchmark's leaderboard and per-workload winners (docs/benchmark.md) and the verdicts of the claims that use it
(the claims registry's ``requires``, verdicts from docs/claims.md). Nothing here is measured again."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def markdown_tables(text: str) -> list[list[dict[str, str]]]:
    """Every pipe table of a Markdown text, as rows keyed by the header cells."""
    tables, lines = [], text.splitlines()
    i = 0
    while i + 1 < len(lines):
        if lines[i].startswith("|") and re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", lines[i + 1].strip()):
            header = _cells(lines[i])
            rows = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(dict(zip(header, _cells(lines[i]))))
                i += 1
            tables.append(rows)
        else:
            i += 1
    return tables


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


@dataclass(frozen=True)
class BenchmarkRows:
    leaderboard: dict[str, str] | None  # the leaderboard row of the algorithm
    columns: tuple[str, ...]  # the leaderboard's columns, in order
    wins: tuple[dict[str, str], ...]  # per-workload winner rows where it wins or ties


@cache
def _benchmark_tables() -> list[list[dict[str, str]]]:
    path = DOCS / "benchmark.md"
    return markdown_tables(path.read_text()) if path.exists() else []


def benchmark_rows(name: str) -> BenchmarkRows:
    """The algorithm's rows in docs/benchmark.md (the published run; empty where it was not in it)."""
    leaderboard, columns, wins = None, (), []
    for table in _benchmark_tables():
        if table and "optimizer" in table[0] and "rank [95%]" in table[0]:
            columns = tuple(table[0])
            leaderboard = next((r for r in table if r["optimizer"] == name), None)
        if table and "winner" in table[0]:
            for row in table:
                names = re.sub(r"\s*\(.*\)\s*$", "", row.get("statistically tied", ""))  # drop "(too few runs …)"
                tied = [t.strip() for t in names.split(",")]
                if f"**{name}**" in row["winner"] or name in tied:
                    wins.append(row)
    return BenchmarkRows(leaderboard, columns, tuple(wins))


def winners_table() -> list[dict[str, str]]:
    """The per-workload winners table of docs/benchmark.md (empty if it has none)."""
    return next((t for t in _benchmark_tables() if t and "winner" in t[0] and "workload" in t[0]), [])


@cache
def claim_verdicts() -> dict[str, dict[str, str]]:
    """Claim id → its row of a verdict table of docs/claims.md."""
    path = DOCS / "claims.md"
    out: dict[str, dict[str, str]] = {}
    for table in markdown_tables(path.read_text()) if path.exists() else []:
        for row in table:
            if "claim" in row and "verdict" in row:
                out[row["claim"]] = row
    return out


def claims_of(name: str) -> list[tuple[str, str, str]]:
    """(claim id, title, published verdict) of every registered claim whose experiment runs ``name``."""
    from optimlab import claims

    verdicts = claim_verdicts()
    return [
        (c.id, c.title, verdicts.get(c.id, {}).get("verdict", "not yet run in full"))
        for c in claims.all_claims()
        if name in c.requires
    ]


def claims_using_package(pkg: str) -> list[tuple[str, str, str]]:
    """(claim id, title, published verdict) of the claims whose experiment module imports ``optimlab.<pkg>``."""
    import inspect
    import sys

    from optimlab import claims

    pattern = re.compile(rf"(from\s+(optimlab|\.\.)\.?{pkg}\b|from\s+(optimlab|\.\.)\s+import\s+[^\n]*\b{pkg}\b)")
    verdicts = claim_verdicts()
    out = []
    for c in claims.all_claims():
        module = sys.modules.get(getattr(c.experiment, "__module__", ""), None)
        if module is not None and pattern.search(inspect.getsource(module)):
            out.append((c.id, c.title, verdicts.get(c.id, {}).get("verdict", "not yet run in full")))
    return out
