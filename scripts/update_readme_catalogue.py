"""Rewrite the catalogue table in README.md from the registry (`optimlab list --markdown`)."""

from pathlib import Path

from optimlab.cli import catalogue_rows, render_table

readme = Path(__file__).resolve().parents[1] / "README.md"
text = readme.read_text()
head, rest = text.split("<!-- catalogue:start -->\n")
_, tail = rest.split("<!-- catalogue:end -->")
readme.write_text(
    f"{head}<!-- catalogue:start -->\n{render_table(catalogue_rows(), markdown=True)}\n<!-- catalogue:end -->{tail}"
)
print("README catalogue updated")
