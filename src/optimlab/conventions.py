"""The conventions table (docs/conventions.md), generated from the registry records' ``conventions`` field.

Each :class:`optimlab.registry.Convention` of a record is one row: the point where implementations disagree, what
the paper and the others do (text written next to the code, in the record), and two columns read from the code
itself: optimlab's default (the value in the optimizer that ``optimlab.create`` builds, and the bare class's when it
differs) and the switch with its accepted values. A second table lists every hyperparameter whose ``create``
default (the paper's) differs from the class constructor's (torch.optim's where torch has the algorithm).

``python scripts/update_conventions.py`` rewrites docs/conventions.md; tests/test_docs.py checks that the file is
up to date and that every listed switch value is accepted by its class.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import torch

from . import registry as R

COLUMNS = ("algorithm", "point of disagreement", "paper", "elsewhere", "optimlab default", "switch")


def fmt(value: Any) -> str:
    """A hyperparameter value as Python source: ``0.001``, ``"kj"``, ``(0.9, 0.95)``, ``{"eps": 1e-10}``."""
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, float):
        return re.sub(r"e([+-])0+(\d)", r"e\1\2", f"{value:g}")  # 1e-08 -> 1e-8
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, tuple):
        return "(" + ", ".join(fmt(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{fmt(k)}: {fmt(v)}" for k, v in value.items()) + "}"
    return str(value)


def _tiny() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(2, 2))]


def built_defaults(spec: R.AlgorithmSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """The hyperparameters of ``optimlab.create(spec.name, …)`` and of ``spec.cls(…)``, on a tiny parameter."""
    return dict(spec.create(_tiny()).defaults), dict(spec.cls(_tiny()).defaults)


def switch_values() -> Iterator[tuple[R.AlgorithmSpec, R.Convention, Any]]:
    """Every (record, convention, value) that the table says a switch accepts."""
    for spec in R.specs():
        for conv in spec.conventions:
            for value, _ in conv.choices:
                yield spec, conv, value


def _code(text: str) -> str:
    return f"`{text}`"


def _default_cell(spec: R.AlgorithmSpec, conv: R.Convention, made: dict, bare: dict) -> str:
    if conv.switch is None:
        return conv.fixed
    values = [v for v, _ in conv.choices]
    if made[conv.switch] not in values:
        raise ValueError(
            f"{spec.name}: the default {conv.switch}={made[conv.switch]!r} is not among the choices listed for "
            f"{conv.point!r}; list it (and say whose convention it is)"
        )
    cell = _code(f"{conv.switch}={fmt(made[conv.switch])}")
    if bare[conv.switch] != made[conv.switch]:
        cell = f"`create`: {cell}<br>class: {_code(f'{conv.switch}={fmt(bare[conv.switch])}')}"
    return cell


def _switch_cell(conv: R.Convention) -> str:
    if conv.switch is None:
        return "none (fixed)"
    return "<br>".join([_code(conv.switch)] + [f"{_code(fmt(v))}: {label}" for v, label in conv.choices])


def convention_rows() -> list[dict[str, str]]:
    """One row per distinct convention, in catalogue order; records sharing an identical row are merged."""
    rows: dict[tuple[str, ...], dict[str, str]] = {}
    for spec in R.specs():
        if not spec.conventions:
            continue
        made, bare = built_defaults(spec)
        for conv in spec.conventions:
            row = {
                "family": spec.family,
                "point of disagreement": conv.point,
                "paper": conv.paper,
                "elsewhere": conv.elsewhere,
                "optimlab default": _default_cell(spec, conv, made, bare),
                "switch": _switch_cell(conv),
            }
            key = tuple(row.values())
            if key in rows:
                rows[key]["algorithm"] += f", {spec.name}"
            else:
                rows[key] = {"algorithm": spec.name, **row}
    return list(rows.values())


def default_difference_rows() -> list[dict[str, str]]:
    """Records whose ``create`` defaults differ from their class constructor's: name and the differing values."""
    rows = []
    for spec in R.specs():
        made, bare = built_defaults(spec)
        keys = [k for k in made if k in bare and made[k] != bare[k]]
        if keys:
            rows.append(
                {
                    "algorithm": spec.name,
                    "`optimlab.create(name, …)`": ", ".join(_code(f"{k}={fmt(made[k])}") for k in keys),
                    "class constructor": f"`{spec.cls.__name__}(…)`: "
                    + ", ".join(_code(f"{k}={fmt(bare[k])}") for k in keys),
                }
            )
    return rows


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _table(rows: list[dict[str, str]], columns: tuple[str, ...], header: dict[str, str] | None = None) -> str:
    header = header or {}
    lines = ["| " + " | ".join(header.get(c, c) for c in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(r[c]) for c in columns) + " |" for r in rows]
    return "\n".join(lines)


INTRO = """\
# Conventions: where implementations of the same algorithm disagree

Two libraries can ship an optimizer under the same name and still run different algorithms: eps inside or outside
the square root, weight decay scaled by the learning rate or not, another default for the one hyperparameter that
matters. This page lists the points of that kind found so far in optimlab's catalogue: what the paper says, what
torch.optim, the authors' code or other libraries do, what optimlab does by default and which constructor argument
selects each convention.

*Generated* by `python scripts/update_conventions.py` from the `conventions` field of the registry records (next
to each algorithm's code in `src/optimlab/optim/` and `src/optimlab/wrappers/`); do not edit by hand.
tests/test_docs.py checks that this file is up to date and builds every optimizer with every switch value listed.
The *optimlab default* column is read from the optimizer that `optimlab.create` builds (the paper's defaults,
see the README's catalogue); where the bare class (torch.optim's defaults where torch has the algorithm) differs,
both are shown. "none (fixed)" means optimlab implements one convention only, named in the default column. A "—"
means the point was not checked in that source. Claims about other code cite the source they were checked
against; the registry records' `notes` and the module docstrings give more detail.
"""

DIFF_INTRO = """\
## Constructor defaults vs `optimlab.create`

A class's constructor takes torch.optim's defaults where torch has the algorithm (a drop-in replacement);
`optimlab.create`, the benchmark and `optimlab list` use the record's defaults (the paper's). They differ here:
"""


def render() -> str:
    """The whole of docs/conventions.md."""
    rows = convention_rows()
    parts = [INTRO, f"{len(rows)} conventions, by family.\n"]
    header = {"elsewhere": "torch.optim, authors' code, other libraries", "switch": "switch: value → convention"}
    for family in sorted({r["family"] for r in rows}):
        parts.append(f"## Family `{family}`\n")
        parts.append(_table([r for r in rows if r["family"] == family], COLUMNS, header) + "\n")
    diff = default_difference_rows()
    parts.append(DIFF_INTRO)
    parts.append(_table(diff, tuple(diff[0])) + "\n")
    return "\n".join(parts)
