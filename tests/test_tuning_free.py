"""The registry's tuning-free flag (``AlgorithmSpec.tuning_free``): stated once on the records, validated, shown by
``optimlab list`` (and so in the README catalogue)."""

from __future__ import annotations

import pytest

import optimlab
from optimlab import registry as R
from optimlab.cli import catalogue_rows


def test_the_flagged_records_are_the_parameter_free_and_schedule_free_ones():
    flagged = {s.name: s.tuning_free for s in R.specs() if s.tuning_free}
    assert flagged == {
        **dict.fromkeys(("dog", "ldog", "dowg", "prodigy", "dadapt_adam"), "lr"),
        **dict.fromkeys(("sf_sgd", "sf_adamw", "schedule_free"), "schedule"),
    }
    assert [s.name for s in R.specs() if s.schedule_free] == ["schedule_free", "sf_adamw", "sf_sgd"]
    assert set(R.TUNING_FREE) == {"lr", "schedule"}


def test_an_unknown_kind_raises_naming_the_field():
    base = R.spec("dog")
    with pytest.raises(ValueError, match="dog: tuning_free must be one of"):
        R.AlgorithmSpec(name="dog", cls=base.cls, family=base.family, paper=base.paper, summary="", tuning_free="yes")


def test_list_shows_the_flag():
    rows = {r["name"]: r for r in catalogue_rows()}
    assert rows["prodigy"]["tuning-free"] == "lr" and rows["sf_adamw"]["tuning-free"] == "schedule"
    assert rows["adamw"]["tuning-free"] == ""
    assert optimlab.spec("dowg").tuning_free == "lr"
