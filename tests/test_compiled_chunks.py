"""compile=True calls its compiled loop once per chunk of same-shape tensors (optim/_compiled.py): every tensor is
updated once, in any order of shapes, and the non-finite codes of each chunk reach the right tensor."""

from __future__ import annotations

import math

import pytest
import torch

import optimlab
from optimlab.optim import _compiled


def test_chunks_group_by_shape_and_dtype_and_cover_every_tensor_once(monkeypatch):
    monkeypatch.setattr(_compiled, "CHUNK", 2)
    shapes = [(3, 2), (4,), (3, 2), (3, 2), (4,), (2, 3), (3, 2)]
    params = [torch.zeros(s) for s in shapes] + [torch.zeros(3, 2, dtype=torch.float64)]
    pieces = _compiled.chunks(params)
    assert sorted(i for piece in pieces for i in piece) == list(range(len(params)))
    for piece in pieces:
        assert 1 <= len(piece) <= 2
        assert len({(params[i].shape, params[i].dtype) for i in piece}) == 1
    assert pieces == [[0, 2], [3, 6], [1, 4], [5], [7]]
    monkeypatch.setattr(_compiled, "CHUNK", 0)
    assert _compiled.chunks(params) == [list(range(len(params)))]


def _run(name, compiled, shapes, bad, steps=3, **options):
    """Params of ``shapes``; at step 1 the gradients of ``bad`` (index -> value) are poisoned or huge."""
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen).requires_grad_(True) for s in shapes]
    opt = optimlab.create(name, params, compile=compiled, **options)
    for t in range(steps):
        for i, p in enumerate(params):
            p.grad = torch.randn(p.shape, generator=gen)
            if t == 1 and i in bad:
                p.grad.view(-1)[0] = bad[i]
        opt.step()
    return params, opt


@pytest.mark.compile
@pytest.mark.parametrize("name", ["adamw", "muon"])
def test_chunked_compiled_steps_match_eager_with_skips_in_any_chunk(name, monkeypatch):
    """Interleaved shapes, more same-shape tensors than a chunk holds, NaN/Inf gradients and an overflowing one at
    positions that are not chunk-aligned: compile=True gives eager's values, step counters and skip count (Muon:
    one batched Newton-Schulz per chunk)."""
    import torch._dynamo

    torch._dynamo.reset()
    monkeypatch.setattr(_compiled, "CHUNK", 3)
    monkeypatch.setattr(_compiled, "BATCH_ON_CPU", True)  # Muon: a batched Newton-Schulz holding a NaN matrix
    shapes = [(6, 4), (5, 3)] * 4 + [(6, 4)]
    bad = {2: math.nan, 5: math.inf, 8: 1e30}  # the third (6, 4) matrix, the third (5, 3) one, the last
    options = dict(ns_dtype="float32") if name == "muon" else {}
    eager_params, eager = _run(name, False, shapes, bad, **options)
    comp_params, comp = _run(name, True, shapes, bad, **options)
    skips = eager.param_groups[0]["nonfinite_skips"]
    assert skips == comp.param_groups[0]["nonfinite_skips"] == (3 if name == "adamw" else 2)  # Muon absorbs 1e30
    for i, (e, c) in enumerate(zip(eager_params, comp_params)):
        torch.testing.assert_close(c, e, rtol=1e-5, atol=1e-6, msg=f"tensor {i}")
        assert comp.state[c]["step"].item() == eager.state[e]["step"].item()
        assert eager.state[e]["step"].item() == (2 if i in (2, 5) or (i == 8 and name == "adamw") else 3)
        for key, value in eager.state[e].items():
            torch.testing.assert_close(comp.state[c][key], value, rtol=1e-5, atol=1e-6)
