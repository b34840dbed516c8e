"""The MeZO example: ZOSGD inside ``transformers.Trainer`` on a tiny GPT-2 built from its config (no download)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the MeZO Trainer example needs transformers (pip install optimlab[hf])")
pytest.importorskip("accelerate", reason="transformers.Trainer needs accelerate (pip install optimlab[hf])")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "mezo_trainer.py"


def test_mezo_inside_trainer_lowers_the_loss_without_gradients() -> None:
    spec = importlib.util.spec_from_file_location("mezo_trainer", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = module.main(steps=20, lr=3e-3, n=2, seed=0)
    assert out["zo_steps"] == 20  # the Trainer's optimizer.step() applied every estimate
    assert out["params_with_grad"] == 0  # no gradient was ever allocated
    assert out["loss_after"] < out["loss_before"] - 1e-3, out
