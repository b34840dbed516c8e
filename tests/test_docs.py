"""The docs must stay true: CONTRIBUTING.md's worked example (module, reference, test record) passes the matrix,
and docs/conventions.md is the table the registry generates, with every switch it names accepted by its class."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

import optimlab
from optimlab import conventions as CV

ROOT = Path(__file__).resolve().parents[1]


def test_contributing_example_passes_the_matrix(tmp_path):
    text = (ROOT / "CONTRIBUTING.md").read_text()
    module_code, reference_code, test_record_code = re.findall(r"```python\n(.*?)```", text, re.S)[:3]
    (tmp_path / "example_module.py").write_text(module_code)
    (tmp_path / "example_reference.py").write_text(reference_code)
    (tmp_path / "example_test_record.py").write_text(test_record_code)
    script = textwrap.dedent(
        f"""
        import sys, types
        sys.path.insert(0, {str(ROOT)!r})
        import optimlab.optim, tests.reference
        def load(name, path, package):
            mod = types.ModuleType(name)
            mod.__package__ = package
            sys.modules[name] = mod
            exec(compile(open(path).read(), path, "exec"), mod.__dict__)
        load("tests.reference.signum", {str(tmp_path / "example_reference.py")!r}, "tests.reference")
        load("optimlab.optim.signum", {str(tmp_path / "example_module.py")!r}, "optimlab.optim")
        import optimlab
        assert "signum" in optimlab.available()
        from tests import optim_db
        path = {str(tmp_path / "example_test_record.py")!r}
        exec(compile(open(path).read(), path, "exec"), vars(optim_db))
        from tests import test_matrix as M
        M.test_reference_parity("signum")
        M.test_exact_resume("signum")
        M.test_converges_on_rosenbrock("signum")
        print("example ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0 and "example ok" in out.stdout, out.stderr[-3000:]


# ----------------------------------------------------------------------------- docs/conventions.md
SWITCHES = [(spec.name, conv.switch, value) for spec, conv, value in CV.switch_values()]


def test_conventions_doc_is_up_to_date():
    """docs/conventions.md is generated from the records' `conventions`; after editing one, run
    `PYTHONPATH=src python scripts/update_conventions.py`."""
    assert (ROOT / "docs" / "conventions.md").read_text() == CV.render()


def _named_argument(cls: type, name: str) -> bool:
    """``name`` is a named parameter of ``cls.__init__``, or of a base's that a ``**kwargs`` passes it on to."""
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters
        if name in params:
            return True
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
            return False
    return False


@pytest.mark.parametrize("name,switch,value", SWITCHES, ids=[f"{n}-{s}={CV.fmt(v)}" for n, s, v in SWITCHES])
def test_convention_switch_is_a_constructor_argument_accepting_the_listed_value(name, switch, value):
    spec = optimlab.spec(name)
    assert _named_argument(spec.cls, switch), f"{switch!r} is not an argument of {spec.cls.__name__}"
    for build in (spec.cls, spec.create):
        opt = build([torch.nn.Parameter(torch.zeros(2, 2))], **{switch: value})
        assert opt.defaults[switch] == value


def test_readme_links_the_conventions_table():
    assert "(docs/conventions.md)" in (ROOT / "README.md").read_text()
