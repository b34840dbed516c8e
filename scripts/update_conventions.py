"""Rewrite docs/conventions.md from the registry records' `conventions` field (see optimlab.conventions)."""

from pathlib import Path

from optimlab.conventions import render

target = Path(__file__).resolve().parents[1] / "docs" / "conventions.md"
target.write_text(render())
print(f"{target.relative_to(target.parents[1])} updated")
