"""The migration guide's tables, read from the installed libraries: for every optimlab class that another library
ships under the same class name, the constructor arguments only one side has and the defaults that differ.
Read at build time with ``inspect.signature`` (a library that is not installed is named as such), so the table
follows both libraries' versions."""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import inspect
import io
import warnings

from optimlab import registry as R
from optimlab.conventions import fmt

#: (import name, distribution) of the libraries compared; torch.optim is the first
LIBRARIES = (
    ("torch.optim", "torch"),
    ("pytorch_optimizer", "pytorch-optimizer"),
    ("schedulefree", "schedulefree"),
    ("heavyball", "heavyball"),
)
#: arguments that are not hyperparameters (ours: pipeline options; theirs: execution switches)
IGNORED = {"self", "params", "maximize", "options", "kwargs", "foreach", "fused", "differentiable", "capturable"}


def _arguments(cls: type) -> dict[str, object]:
    try:
        sig = inspect.signature(cls.__init__)
    except (TypeError, ValueError):
        return {}
    return {
        n: p.default
        for n, p in sig.parameters.items()
        if n not in IGNORED and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
    }


def _load(module: str):
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            return importlib.import_module(module)
        except Exception:  # noqa: BLE001 - any import failure means "not available here"
            return None


def _same(a: object, b: object) -> bool:
    try:
        return bool(a == b)
    except Exception:  # noqa: BLE001 - tensors, odd defaults
        return False


def _shown(default: object) -> bool:
    """A default worth comparing (not a sentinel such as Muon's ``<from preset>``)."""
    return default is not inspect.Parameter.empty and not repr(default).startswith("<")


def _names(names: list[str], most: int = 8) -> str:
    if not names:
        return "—"
    shown = ", ".join(f"`{k}`" for k in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def rows(module_name: str) -> list[list[str]] | None:
    """One row per shared class name: class, registry names, only-theirs, only-ours, differing defaults."""
    module = _load(module_name)
    if module is None:
        return None
    by_class: dict[str, list[str]] = {}
    for spec in R.specs():
        by_class.setdefault(spec.cls.__name__, []).append(spec.name)
    out = []
    for cls_name, names in sorted(by_class.items()):
        theirs_cls = getattr(module, cls_name, None)
        if not isinstance(theirs_cls, type):
            continue
        ours, theirs = _arguments(R.spec(names[0]).cls), _arguments(theirs_cls)
        differ = [
            f"`{k}`: {fmt(theirs[k])} → {fmt(ours[k])}"
            for k in ours
            if k in theirs and _shown(ours[k]) and _shown(theirs[k]) and not _same(ours[k], theirs[k])
        ]
        out.append(
            [
                f"`{cls_name}`",
                ", ".join(f"[`{n}`](../algorithms/{n}.md)" for n in names),
                _names([k for k in theirs if k not in ours]),
                _names([k for k in ours if k not in theirs]),
                "; ".join(differ) or "—",
            ]
        )
    return out


def version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def tables() -> str:
    """Markdown: one table per library."""
    from .pages import _table

    parts = []
    for module, dist in LIBRARIES:
        found = rows(module)
        parts.append(f"### `{module}` ({dist} {version(dist)})")
        if found is None:
            parts.append(f"Not installed where this site was built (`pip install {dist}` to compare).")
        elif not found:
            parts.append("No class of the same name.")
        else:
            header = ["class", "optimlab names", "only theirs", "only optimlab", "defaults: theirs → optimlab class"]
            parts.append(_table(header, found))
    return "\n\n".join(parts)
