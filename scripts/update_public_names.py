"""Rewrite the two generated blocks of ``src/optimlab/__init__.py``: the optimizer classes, and the static imports.

``optimlab`` resolves its names lazily (PEP 562) from two tables: ``_NAMES`` (written by hand: functions and base
classes) and ``_CLASSES`` (generated here from the registry: class -> defining module, so ``optimlab.AdamW`` imports
one module, not the whole registry). The ``if TYPE_CHECKING:`` block, also generated here, imports every name of
both tables, so IDEs and type checkers see them. tests/test_core.py checks that both blocks are up to date.
"""

from __future__ import annotations

from pathlib import Path

INIT = Path(__file__).resolve().parents[1] / "src" / "optimlab" / "__init__.py"
#: (start marker, end marker, line format, whether the hand-written ``_NAMES`` are included) of each block
BLOCKS = (
    ("    # class-modules:start\n", "    # class-modules:end\n", '    "{name}": "{module}",\n', False),
    ("    # public-names:start\n", "\n    # public-names:end\n", "    from {module} import {name} as {name}\n", True),
)


def names(with_hand_written: bool) -> list[tuple[str, str]]:
    """``(relative module, name)`` of every registered class (and of ``optimlab._NAMES``), in the order ruff's
    import sorting keeps."""
    import optimlab
    from optimlab import registry

    by_module: dict[str, set[str]] = {}
    for s in registry.specs():
        by_module.setdefault(s.cls.__module__.replace("optimlab", "", 1), set()).add(s.cls.__name__)
    for name, module in optimlab._NAMES.items() if with_hand_written else ():
        by_module.setdefault(module, set()).add(name)
    return [(module, name) for module in sorted(by_module) for name in sorted(by_module[module], key=str.lower)]


def updated(text: str) -> str:
    for start, end, line, with_hand_written in BLOCKS:
        head, rest = text.split(start)
        _, tail = rest.split(end)
        lines = "".join(line.format(module=module, name=name) for module, name in names(with_hand_written))
        text = f"{head}{start}{lines}{end}{tail}"
    return text


if __name__ == "__main__":
    INIT.write_text(updated(INIT.read_text()))
    print(f"{INIT} updated")
