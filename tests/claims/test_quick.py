"""Every claim's quick configuration runs in the test suite: the machinery works end to end, the measurements are
sane, and a fixed seed gives identical measurements. The verdict itself is not asserted (quick runs are small)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from optimlab import claims
from optimlab.claims import report
from optimlab.claims._stats import VERDICTS

READY = [c.id for c in claims.all_claims() if c.pending_reason() is None]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The experiments are made of small operations: one thread is fastest (and what the CLI uses)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("claim_id", READY)
def test_quick_run_is_sane_and_deterministic(claim_id):
    claim = claims.get(claim_id)
    first = claims.run_claim(claim, quick=True)
    assert first.status in VERDICTS, first.reason
    assert len(first.checks) == len(claim.checks)
    for check in first.checks:
        assert check.evaluation.verdict in VERDICTS
        assert all(isinstance(v, float) and not math.isnan(v) for v in check.values), check.name
    assert any(check.values for check in first.checks if check.role == "verdict")
    assert first.figure is not None and first.figure.series
    for s in first.figure.series:
        assert len(s.x) == len(s.y) > 0
    json.dumps(report.jsonable(first.to_dict()), allow_nan=False)  # strict JSON
    second = claims.run_claim(claim, quick=True)
    assert second.values == first.values  # bit-identical under the fixed seeds
    assert [c.evaluation.verdict for c in second.checks] == [c.evaluation.verdict for c in first.checks]
