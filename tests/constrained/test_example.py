"""The recall-floor example runs with a tiny budget and writes its figure (PNG through matplotlib, and the
self-contained SVG fallback). Run in-process (importing the script) to spare a fresh interpreter's torch import."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _example():
    path = ROOT / "examples" / "constrained_recall_floor.py"
    spec = importlib.util.spec_from_file_location("constrained_recall_floor", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("fmt", ["svg", "png"])
def test_recall_floor_example_runs(tmp_path, capsys, fmt):
    if fmt == "png":
        pytest.importorskip("matplotlib")
    out = tmp_path / "recall"
    _example().main(["--steps", "8", "--out", str(out), "--format", fmt])
    printed = capsys.readouterr().out
    figure = out.with_suffix("." + fmt)
    assert figure.exists() and figure.stat().st_size > 1000
    assert "min train recall" in printed and "final multipliers" in printed
    if fmt == "svg":
        text = figure.read_text()
        assert text.startswith("<svg") and text.count("<polyline") == 20  # 10 classes × (multipliers, slack)
