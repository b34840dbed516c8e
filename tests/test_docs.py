"""The worked example in CONTRIBUTING.md must stay true: its module, reference and record pass the matrix."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_contributing_example_passes_the_matrix(tmp_path):
    text = (ROOT / "CONTRIBUTING.md").read_text()
    module_code, reference_code = re.findall(r"```python\n(.*?)```", text, re.S)[:2]
    (tmp_path / "example_module.py").write_text(module_code)
    (tmp_path / "example_reference.py").write_text(reference_code)
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
        from tests import test_matrix as M
        M.test_reference_parity("signum")
        M.test_exact_resume("signum")
        M.test_converges_on_rosenbrock("signum")
        print("example ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0 and "example ok" in out.stdout, out.stderr[-3000:]
