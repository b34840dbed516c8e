"""The per-feature-penalty example runs end to end with a tiny budget and writes its plot."""

from __future__ import annotations

import importlib.util
import math
import xml.etree.ElementTree as ET
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bilevel_feature_penalties.py"


def _load():
    spec = importlib.util.spec_from_file_location("bilevel_feature_penalties", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_example_runs_with_a_tiny_budget(tmp_path):
    example = _load()
    results = example.main(["--outer-steps", "2", "--out", str(tmp_path / "curves.png")])
    assert len(results["methods"]) == 6
    for name, r in results["methods"].items():
        assert len(r["curve"]) == 3 and all(math.isfinite(v) for v in r["curve"]), name
        assert r["curve"][-1] != r["curve"][0], name  # the penalties moved
    # the gradient-based methods lower the validation loss from the common start
    for name in ("IFT + CG (AID)", "HOAG", "F2SA"):
        assert results["methods"][name]["curve"][-1] < results["methods"][name]["curve"][0], name
    plot = Path(results["plot"])
    assert plot.exists() and plot.stat().st_size > 1000
    # the dependency-free SVG fallback is well-formed XML with one polyline per method
    root = ET.fromstring(example.svg(results))
    assert len(root.findall("{http://www.w3.org/2000/svg}polyline")) == 6
