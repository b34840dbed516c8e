"""``optimlab`` resolves its names lazily (PEP 562): the command line starts without importing torch, and every
name static tools see (the ``TYPE_CHECKING`` imports of optimlab/__init__.py) is the object the run time gives."""

from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import optimlab

INIT = Path(optimlab.__file__)

#: imports optimlab, probes it, then runs ``python -m optimlab ARGS`` for each ARGS in argv[1] (a JSON list) in one
#: process and prints, per command, its exit code, whether its output is the command's usage, and the heavy modules
#: imported so far
_PROBE = """
import contextlib, io, json, runpy, sys
heavy = ("torch", "numpy", "optuna", "sqlalchemy", "optimlab.registry", "optimlab.bench.workloads")
import optimlab
assert not hasattr(optimlab, "__wrapped__")  # a tool's probe: answered without loading the registry
out = []
for args in json.loads(sys.argv[1]):
    sys.argv = ["optimlab", *args]
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        try:
            runpy.run_module("optimlab", run_name="__main__", alter_sys=True)
            code = 0
        except SystemExit as e:
            code = e.code
    out.append({"code": code, "usage": buf.getvalue().startswith("usage: optimlab " + " ".join(args[:-1])),
                "heavy": [m for m in heavy if m in sys.modules]})
print(json.dumps(out))
"""


def test_help_of_the_command_and_of_bench_run_imports_nothing_heavy():
    """`optimlab --help` and `optimlab bench run --help` (through ``python -m optimlab``) parse their arguments
    without importing torch, numpy, optuna or the registry: these load when a command needs them."""
    commands = [["--help"], ["bench", "--help"], ["bench", "run", "--help"]]
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(commands)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    for args, result in zip(commands, json.loads(done.stdout)):
        assert result["code"] == 0 and result["usage"], (args, result)
        assert result["heavy"] == [], f"optimlab {' '.join(args)} imported {result['heavy']}"


def _static_imports() -> list[tuple[str, str]]:
    """``(module, name)`` of every import in the ``if TYPE_CHECKING:`` block of optimlab/__init__.py."""
    tree = ast.parse(INIT.read_text())
    block = next(n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING")
    out = []
    for node in block.body:
        assert isinstance(node, ast.ImportFrom) and node.level == 1, ast.unparse(node)
        out += [(f"optimlab.{node.module}", alias.name) for alias in node.names if alias.asname == alias.name]
    return out


def test_the_static_imports_are_what_the_run_time_gives():
    """Each name of the ``TYPE_CHECKING`` block is importable from its module and ``optimlab.<name>`` is that same
    object; ``__all__`` and the run-time tables name the same things as the static block."""
    static = _static_imports()
    for module, name in static:
        assert getattr(optimlab, name) is getattr(importlib.import_module(module), name), name
    names = {name for _, name in static}
    assert names == set(optimlab._NAMES) | set(optimlab._CLASSES)
    assert set(optimlab.__all__) == set(optimlab._NAMES)
    assert {s.cls.__name__ for s in optimlab.specs()} == set(optimlab._CLASSES)
    assert names <= set(dir(optimlab))


def test_submodules_and_unknown_names():
    from optimlab import curvature

    assert curvature is importlib.import_module("optimlab.curvature")
    try:
        optimlab.NoSuchOptimizer  # noqa: B018
    except AttributeError as e:
        assert "NoSuchOptimizer" in str(e)
    else:
        raise AssertionError("an unknown name must raise AttributeError")
