"""Rewrite the block of ``src/optimlab/__init__.py`` that imports every optimizer class for IDEs and type checkers.

At run time ``optimlab.AdamW`` resolves lazily through the registry; the ``if TYPE_CHECKING:`` block lets static
tools see the same names. tests/test_core.py checks that the block is up to date.
"""

from __future__ import annotations

from pathlib import Path

START, END = "    # public-classes:start\n", "\n    # public-classes:end\n"
INIT = Path(__file__).resolve().parents[1] / "src" / "optimlab" / "__init__.py"


def render() -> str:
    """The import lines: one per class, in the order ruff's import sorting keeps."""
    import optimlab

    by_module: dict[str, set[str]] = {}
    for s in optimlab.specs():
        by_module.setdefault(s.cls.__module__, set()).add(s.cls.__name__)
    lines = []
    for module in sorted(by_module):
        for name in sorted(by_module[module], key=str.lower):
            lines.append(f"    from {module.replace('optimlab', '', 1)} import {name} as {name}\n")
    return "".join(lines)


def updated(text: str) -> str:
    head, rest = text.split(START)
    _, tail = rest.split(END)
    return f"{head}{START}{render()}{END}{tail}"


if __name__ == "__main__":
    INIT.write_text(updated(INIT.read_text()))
    print(f"{INIT} updated")
