"""Smoke tests of benchmarks/step_time.py: its code path on a tiny model, 1-2 rounds, table shape only (no timing
assertions: speed goals are checked by running the script, never in unit tests)."""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import pytest
import torch

import optimlab

SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "step_time.py"
TINY = ["--params", "3000", "--tensors", "6", "--rounds", "2", "--steps", "1", "--warmup", "1", "--quiet"]


@pytest.fixture(scope="module")
def st():
    spec = importlib.util.spec_from_file_location("step_time_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def _table(text: str, columns) -> list[list[str]]:
    """Rows of the plain-text table (split on runs of 2+ spaces), header and rule excluded."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["optimizer", "implementation"])
    assert lines[start + 1].replace(" ", "").strip("-") == ""
    rows = []
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        rows.append([cell for cell in line.split("  ") if cell.strip()])
    return rows


def _labels(rows) -> list[tuple[str, str]]:
    return [(r[0].strip(), r[1].strip()) for r in rows]


def test_model_has_the_requested_size(st):
    shapes = st.model_shapes(10_000_000, 100)
    assert len(shapes) == 100
    total = sum(torch.Size(s).numel() for s in shapes)
    assert abs(total - 10_000_000) / 10_000_000 < 0.01
    assert len(st.model_shapes(3000, 6)) == 6 and len(st.model_shapes(50, 3)) == 3
    params = st.make_params(3000, 6)
    assert all(p.grad is not None and p.grad.shape == p.shape for p in params)


def test_eager_table_rows_and_columns(st, capsys):
    threads = torch.get_num_threads()
    assert st.main([*TINY, "--only", "adamw,sgd", "--no-compile", "--peers", "none"]) == 0
    assert torch.get_num_threads() == threads  # restored
    out = capsys.readouterr().out
    rows = _table(out, st.COLUMNS)
    assert _labels(rows) == [
        ("adamw", "torch AdamW fused"),
        ("adamw", "torch AdamW for-loop"),
        ("adamw", "optimlab eager"),
        ("adamw", "optimlab eager, nonfinite=propagate"),
        ("sgd", "optimlab eager"),
    ]
    header = next(line for line in out.splitlines() if line.split()[:2] == ["optimizer", "implementation"])
    assert header.split() == [w for c in st.COLUMNS for w in c.split()]
    for row in rows:
        assert len(row) == len(st.COLUMNS)
        ms, fused, loop, roof, bpp = (float(x) for x in row[2:7])
        assert ms > 0 and fused > 0 and loop > 0 and roof > 0
        assert row[7].strip() == "-"  # no compile time for eager rows
    assert float(rows[0][3]) == 1.0 and float(rows[1][4]) == 1.0
    assert [float(r[6]) for r in rows] == [28, 28, 28, 28, 20]  # byte model: (3 + 2 S) * 4
    assert "GB/s" in out
    assert "goal eager optimlab AdamW <= 1.2x torch for-loop AdamW" in out
    assert "NaN/Inf check (nonfinite='skip' vs 'propagate'), adamw eager" in out


def test_markdown_table(st, capsys):
    st.main([*TINY, "--only", "sgd", "--no-compile", "--peers", "none", "--markdown", "--rounds", "1"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    assert lines[0] == "| " + " | ".join(st.COLUMNS) + " |"
    assert set(lines[1]) <= set("|-")
    body = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert [(r[0], r[1]) for r in body] == [
        ("adamw", "torch AdamW fused"),
        ("adamw", "torch AdamW for-loop"),
        ("sgd", "optimlab eager"),
    ]
    assert all(len(r) == len(st.COLUMNS) for r in body)


class FakeSGD(torch.optim.SGD):
    """Stands in for another library's class (its module is not torch's)."""


class FakeAdamW(torch.optim.AdamW):
    """Stands in for another library's AdamW (takes a ``storage_dtype`` like HeavyBall's)."""

    def __init__(self, params, lr=1e-3, storage_dtype="float32", **kw):
        super().__init__(params, lr=lr, **kw)
        self.storage_dtype = storage_dtype


def _fake_libraries(st, monkeypatch):
    fakes = {
        "fakelib": st._peers.Library("fakelib", "0.0-test", {"sgd": FakeSGD}),
        "heavyball": st._peers.Library("heavyball", "9.9", {"adamw": FakeAdamW}),
    }
    monkeypatch.setattr(st, "load_library", fakes.get)


def test_peers_side_by_side_and_missing(st, capsys, monkeypatch):
    _fake_libraries(st, monkeypatch)
    st.main([*TINY, "--only", "sgd,adamw", "--no-compile", "--propagate", "none", "--peers", "fakelib,heavyball,nope"])
    out = capsys.readouterr().out
    rows = _table(out, st.COLUMNS)
    by = dict(zip(_labels(rows), rows))
    assert ("sgd", "fakelib 0.0-test (FakeSGD)") in by
    assert ("adamw", "heavyball 9.9 (FakeAdamW)") in by
    assert not any(lab.startswith("fakelib") for alg, lab in by if alg == "adamw")
    assert "not installed (no side-by-side rows): nope" in out
    # the / peer column: optimlab rows only, against the fastest peer (torch's AdamW rows count for adamw)
    assert float(by[("sgd", "optimlab eager")][-1]) > 0
    assert float(by[("adamw", "optimlab eager")][-1]) > 0
    assert by[("sgd", "fakelib 0.0-test (FakeSGD)")][-1].strip() == "-"
    assert "sgd / fastest peer (fakelib 0.0-test (FakeSGD)): eager" in out
    assert "adamw / fastest peer (" in out


def test_peer_matching_and_aliases(st):
    libraries = {
        "fakelib": st._peers.Library("fakelib", "1", {"sgd": FakeSGD}),
        "heavyball": st._peers.Library("heavyball", "2", {"adamw": FakeAdamW}),
    }
    assert [p.label for p in st._peers.find_peers(optimlab.spec("sgd"), libraries)] == ["fakelib 1 (FakeSGD)"]
    (bf16,) = st._peers.find_peers(optimlab.spec("adamw_bf16"), libraries)
    assert bf16.label == "heavyball 2 (FakeAdamW, storage_dtype=bfloat16)" and bf16.compiles
    opt = st._peers.build_peer(bf16, optimlab.spec("adamw_bf16"), [torch.zeros(2, requires_grad=True)])
    assert opt.storage_dtype == "bfloat16" and opt.defaults["betas"] == (0.9, 0.999)  # optimlab's defaults
    assert st._peers.find_peers(optimlab.spec("lion"), libraries) == []


def test_a_failing_candidate_becomes_an_error_row(st):
    args = st.parse_args([*TINY])

    def build():
        raise RuntimeError("needs a second-order closure\nmore detail")

    c = st.Candidate("optimlab eager", "broken", 1.0, build)
    st.prepare(c, args, lambda: None, st.Progress(False), "")
    assert c.run is None and c.error == "RuntimeError: needs a second-order closure"
    cells = st.row_cells(st.Row("broken", "optimlab eager", error=c.error))
    assert len(cells) == len(st.COLUMNS) and cells[2] == "error"


def test_cli_parsing(st):
    args = st.parse_args(["--params", "10M", "--only", "adamw"])
    assert args.params == 10_000_000 and args.tensors == 100 and args.threads == 1
    assert st._count("1.5k") == 1500 and st._count("2e6") == 2_000_000
    with pytest.raises(SystemExit):
        st._names("adamw,nope", ["adamw"])


@pytest.mark.compile
def test_compiled_rows(st, capsys):
    st.main([*TINY, "--only", "adamw", "--peers", "none", "--propagate", "none", "--rounds", "1"])
    out = capsys.readouterr().out
    rows = {lab: r for (alg, lab), r in zip(_labels(_table(out, st.COLUMNS)), _table(out, st.COLUMNS))}
    assert set(rows) == {
        "torch AdamW fused",
        "torch AdamW for-loop",
        "optimlab eager",
        "optimlab compiled",
        "torch AdamW, torch.compile(step)",  # torch's own compiled optimizer, like for like
    }
    assert float(rows["optimlab compiled"][7]) > 0  # compile time reported
    assert float(rows["torch AdamW, torch.compile(step)"][7]) > 0
    assert "goal compiled optimlab AdamW <= 1.3x torch fused AdamW" in out


class GradDroppingSGD(torch.optim.SGD):
    """Like HeavyBall: sets ``p.grad = None`` after its step; counts the steps that saw a gradient."""

    updates = 0

    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    GradDroppingSGD.updates += 1
        super().step(closure)
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None


def test_a_peer_that_drops_gradients_steps_with_them_every_time(st):
    """HeavyBall frees p.grad after a step: the benchmark puts the gradients back, so every timed step updates."""
    args = st.parse_args([*TINY])
    peer = st._peers.Peer("fake (GradDroppingSGD)", GradDroppingSGD, {})
    run = st.peer_candidate(peer, optimlab.spec("sgd"), args).build()
    GradDroppingSGD.updates = 0
    run(3)
    assert GradDroppingSGD.updates == 3 * 6  # 3 steps x 6 tensors
