"""What each registered algorithm is tested against, read from the test sources without running them.

* the matrix's facts come from ``tests/optim_db.py`` (imported: a plain record module beside the tests, as torch
  keeps ``OptimizerInfo``): the reference implementation under tests/reference and the torch.optim equivalent;
* the tolerances are the ``rtol``/``atol`` of the ``assert_close`` calls of the test functions that compare them
  (read from the test module's syntax tree, so a changed tolerance shows on the next build);
* the authors' packages are found by parsing every test module: a test function that imports (``import``,
  ``from … import`` or ``pytest.importorskip``) a package of the ``parity`` extra in pyproject.toml is an oracle
  test, and the algorithms it checks are the registered names it mentions as strings (in the function, its
  decorators and the module constants it uses) or, failing that, the registered classes it imports.
"""

from __future__ import annotations

import ast
import re
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Oracle:
    """One test that compares an algorithm with another implementation."""

    against: str  # "the authors' prodigyopt", "tests/reference/lion.py", "torch.optim.AdamW"
    test: str  # "tests/test_prodigy.py::test_prodigy_float64_parity_with_prodigyopt"
    tolerances: tuple[str, ...]  # ("rtol=1e-10, atol=1e-12",)


def _optim_db():
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests import optim_db

    return optim_db


@cache
def parity_packages() -> dict[str, str]:
    """Import name → distribution of the ``parity`` extra (``dog`` → ``dog-optimizer``)."""
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    out = {}
    for requirement in extras["parity"]:
        dist = re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0]
        for name in {dist.replace("-", "_").lower(), dist.split("-")[0].lower()}:
            out[name] = dist
    return out


def _literal(node: ast.AST) -> str:
    try:
        return repr(ast.literal_eval(node))
    except ValueError:
        return ast.unparse(node)


def _tol_text(keywords: list[ast.keyword], local: dict[str, ast.AST]) -> str:
    """``rtol=…, atol=…`` of keyword arguments; a ``**tol`` names a local dict (or a conditional pair of them)."""
    parts = []
    for k in keywords:
        if k.arg in ("rtol", "atol"):
            parts.append(f"{k.arg}={_literal(k.value)}")
        elif k.arg is None and isinstance(k.value, ast.Name) and k.value.id in local:
            parts.append(_dict_text(local[k.value.id]))
    return ", ".join(parts) or "torch's defaults for the dtype"


def _dict_text(node: ast.AST) -> str:
    if isinstance(node, ast.IfExp):
        return f"{_dict_text(node.body)} if {ast.unparse(node.test)}, else {_dict_text(node.orelse)}"
    if isinstance(node, ast.Call) and ast.unparse(node.func) == "dict":
        return ", ".join(f"{k.arg}={_literal(k.value)}" for k in node.keywords)
    return ast.unparse(node)


def tolerances(fn: ast.FunctionDef) -> tuple[str, ...]:
    """The distinct ``rtol=…, atol=…`` of the ``assert_close`` calls in ``fn`` (expressions kept as written)."""
    local = {
        t.id: node.value
        for node in ast.walk(fn)
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    found: list[str] = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("assert_close"):
            text = _tol_text(node.keywords, local)
            if text not in found:
                found.append(text)
    return tuple(found)


def _imported(fn: ast.FunctionDef) -> tuple[set[str], set[str]]:
    """(top-level modules ``fn`` imports, the names it imports from any module)."""
    modules, names = set(), set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("importorskip") and node.args:
            if isinstance(node.args[0], ast.Constant):
                modules.add(str(node.args[0].value).split(".")[0])
    return modules, names


def _strings(nodes: list[ast.AST], constants: dict[str, ast.AST]) -> set[str]:
    out: set[str] = set()
    seen: set[str] = set()
    todo = list(nodes)
    while todo:
        for node in ast.walk(todo.pop()):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                out.add(node.value)
            elif isinstance(node, ast.Name) and node.id in constants and node.id not in seen:
                seen.add(node.id)
                todo.append(constants[node.id])
    return out


def _test_functions(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    constants = {
        t.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test_"):
            yield node, constants


@cache
def authors_oracles() -> dict[str, tuple[Oracle, ...]]:
    """Registered name → the tests comparing it with an authors' package of the ``parity`` extra."""
    import optimlab

    names = set(optimlab.available())
    classes = {optimlab.spec(n).cls.__name__: n for n in names}
    packages = parity_packages()
    found: dict[str, list[Oracle]] = {}
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        for fn, constants in _test_functions(path):
            modules, imported = _imported(fn)
            oracle = sorted(packages[m] for m in modules if m in packages)
            if not oracle:
                continue
            algos = _strings([fn, *fn.decorator_list], constants) & names
            algos = algos or {classes[c] for c in imported if c in classes}
            where = f"{path.relative_to(ROOT).as_posix()}::{fn.name}"
            for name in algos:
                found.setdefault(name, []).append(Oracle(f"the authors' {', '.join(oracle)}", where, tolerances(fn)))
    return {k: tuple(v) for k, v in found.items()}


@cache
def _matrix_tolerances() -> dict[str, tuple[str, ...]]:
    path = ROOT / "tests" / "test_matrix.py"
    return {fn.name: tolerances(fn) for fn, _ in _test_functions(path)}


def oracles(name: str) -> list[Oracle]:
    """Every implementation ``name`` is tested against: its reference, torch.optim, the authors' packages."""
    db = _optim_db()
    record = db.info(name)
    tol = _matrix_tolerances()
    module = record.reference.split(":")[0].replace(".", "/") + ".py"
    out = [
        Oracle(
            f"`{module}` (`{record.reference}`)",
            "tests/test_matrix.py::test_reference_parity",
            tol.get("test_reference_parity", ()),
        )
    ]
    if record.torch_equivalent is not None:
        out.append(
            Oracle(
                f"`{record.torch_equivalent.path}`",
                "tests/test_matrix.py::test_torch_parity",
                tol.get("test_torch_parity", ()),
            )
        )
    return out + list(authors_oracles().get(name, ()))


def convergence_skip(name: str, problem: str) -> str | None:
    """Why the matrix opts ``name`` out of ``problem`` (None where it does not)."""
    return _optim_db().info(name).convergence_hparams.get(problem, {}).get("skip")


def convergence_settings(name: str, problem: str) -> dict | None:
    """The matrix's convergence hyperparameters of ``name`` on ``problem`` ("quadratic" / "rosenbrock"); None where
    the record opts out."""
    extra = dict(_optim_db().info(name).convergence_hparams.get(problem, {}))
    return None if "skip" in extra else extra


def _module_imports(tree: ast.Module) -> set[str]:
    """Top-level modules a test module imports at module level (``import``, ``from``, ``importorskip``)."""
    shell = ast.FunctionDef(
        name="_", args=ast.arguments([], [], None, [], [], None, []), body=tree.body, decorator_list=[]
    )
    return _imported(shell)[0] - {
        m for node in tree.body if isinstance(node, ast.FunctionDef) for m in _imported(node)[0]
    }


def package_oracles(pkg: str) -> list[Oracle]:
    """The tests of a component package (tests/<pkg>/) that compare it with a package of the ``parity`` extra."""
    packages = parity_packages()
    out = []
    for path in sorted((ROOT / "tests" / pkg).glob("test_*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        at_top = _module_imports(tree)
        for fn, _ in _test_functions(path):
            oracle = sorted({packages[m] for m in at_top | _imported(fn)[0] if m in packages})
            if oracle:
                where = f"{path.relative_to(ROOT).as_posix()}::{fn.name}"
                tol = tolerances(fn) or ("the test's own assertions",)
                out.append(Oracle(f"the authors' {', '.join(oracle)}", where, tol))
    return out
