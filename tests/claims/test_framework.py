"""The claims machinery on synthetic claims: verdicts from checks, pending / error statuses, premises, report
checks, the JSON results file, the HTML page and the CLI."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import re

import numpy as np
import pytest

import optimlab
from optimlab import claims
from optimlab.claims import _framework, cli, report
from optimlab.claims._framework import ERROR, PENDING, Check, Claim, Figure, Measurements, Series, run_claim
from optimlab.claims._stats import CONFIRMED, INCONCLUSIVE, NOT_CONFIRMED, AllPass, MeanAbove


def _experiment(effect: float, noise: float = 0.1):
    def run(ctx):
        m = Measurements()
        for s in ctx.seeds:
            rng = np.random.default_rng(s)
            m.add("gain", effect + noise * rng.standard_normal())
            m.add("error", 1e-4 * (1 + s))
        m.figure = Figure("toy", [Series("a", [1, 2, 3], [3.0, 2.0, 1.0])], "x", "y", logy=True, hlines=[(1.5, "t")])
        m.table.append({"seed": 0, "value": math.inf})
        m.info = {"array": np.arange(3), "value": np.float64(2.5)}
        return m

    return run


def _claim(effect: float = 1.0, **kw) -> Claim:
    fields = dict(
        id="T1",
        title="toy",
        paper="nobody (2025)",
        statement="the gain is positive and the error small",
        experiment=_experiment(effect),
        checks=(
            Check("gain", "gain > 0", "gain", MeanAbove(0.0)),
            Check("error", "error ≤ 1e-2", "error", AllPass(1e-2)),
        ),
        seeds=5,
        quick_seeds=2,
    )
    fields.update(kw)
    return Claim(**fields)


@pytest.fixture
def pending_claim(monkeypatch) -> Claim:
    """A synthetic claim whose experiment is not written yet, in the catalogue for the duration of one test (the
    real catalogue need not have a pending claim)."""
    claims.all_claims()  # load the real catalogue first
    claim = Claim(id="P2", title="pending toy", paper="nobody (2025)", statement="to be written", experiment=None)
    monkeypatch.setitem(_framework._CLAIMS, claim.id, claim)
    return claim


def test_clear_effect_confirms_and_no_effect_does_not():
    assert run_claim(_claim(1.0)).status == CONFIRMED
    r = run_claim(_claim(-1.0))
    assert r.status == NOT_CONFIRMED
    assert [c.evaluation.verdict for c in r.checks] == [NOT_CONFIRMED, CONFIRMED]
    assert run_claim(_claim(0.0)).status in (INCONCLUSIVE, NOT_CONFIRMED)


def test_the_headline_check_is_the_one_that_decided_the_verdict():
    """A claim not confirmed by its second check shows that check's effect, not the passing first one's."""
    checks = (
        Check("error", "error ≤ 1e-2", "error", AllPass(1e-2)),
        Check("gain", "gain > 0", "gain", MeanAbove(0.0)),
        Check("big", "gain > 10", "gain", MeanAbove(10.0), role="report"),
    )
    failing = run_claim(_claim(-1.0, checks=checks))
    assert failing.status == NOT_CONFIRMED and failing.primary.name == "gain"
    passing = run_claim(_claim(1.0, checks=checks))
    assert passing.status == CONFIRMED and passing.primary.name == "error"


def test_quick_uses_quick_seeds_and_is_then_inconclusive_for_mean_rules():
    r = run_claim(_claim(1.0), quick=True)
    assert r.seeds == [0, 1] and r.quick and r.status == INCONCLUSIVE
    assert run_claim(_claim(1.0), seeds=4).seeds == [0, 1, 2, 3]


def test_report_checks_do_not_enter_the_verdict():
    c = _claim(
        1.0,
        checks=(
            Check("gain", "gain > 0", "gain", MeanAbove(0.0)),
            Check("big", "gain > 10", "gain", MeanAbove(10.0), role="report"),
        ),
    )
    r = run_claim(c)
    assert r.status == CONFIRMED and r.checks[1].evaluation.verdict == NOT_CONFIRMED


def test_unmet_premise_makes_a_check_inconclusive():
    c = _claim(1.0, checks=(Check("gain", "gain > 0", "gain", MeanAbove(0.0), premise=lambda m: "not at a minimum"),))
    r = run_claim(c)
    assert r.status == INCONCLUSIVE and r.checks[0].evaluation.detail.startswith("premise not met: not at a minimum")


def test_pending_when_an_algorithm_is_missing_or_no_experiment():
    r = run_claim(_claim(1.0, requires=("adam", "no_such_algorithm")))
    assert r.status == PENDING and "no_such_algorithm" in r.reason and r.checks == []
    assert run_claim(_claim(1.0, experiment=None)).status == PENDING
    assert run_claim(_claim(1.0, requires=("adam",))).status == CONFIRMED


def test_a_failing_experiment_is_an_error_result_not_an_exception():
    def boom(ctx):
        raise RuntimeError("broken experiment")

    r = run_claim(_claim(experiment=boom))
    assert r.status == ERROR and "broken experiment" in r.reason and "Traceback" in r.reason


def test_unknown_check_name_means_no_measurements():
    c = _claim(checks=(Check("absent", "…", "not_measured", MeanAbove(0.0)),))
    r = run_claim(c)
    assert r.status == INCONCLUSIVE and r.checks[0].evaluation.detail == "no measurements"


def test_register_rejects_duplicates_and_bad_roles():
    with pytest.raises(ValueError):
        claims.register(dataclasses.replace(claims.get("C14"), title="other"))
    with pytest.raises(ValueError):
        claims.register(_claim(id="T_BAD", checks=(Check("x", "x", "gain", MeanAbove(), role="maybe"),)))


def test_json_round_trip_and_strictness(tmp_path):
    results = [run_claim(_claim(1.0)), run_claim(_claim(1.0, id="T2", requires=("no_such_algorithm",)))]
    path = report.save_json(tmp_path / "r.json", results, {"quick": False})
    doc = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict JSON constant {c}"))
    assert doc["summary"][CONFIRMED] == 1 and doc["summary"][PENDING] == 1
    assert doc["claims"][0]["table"][0]["value"] == "inf" and doc["claims"][0]["info"]["array"] == [0, 1, 2]
    loaded, _ = report.load_json(path)
    assert [r.status for r in loaded] == [r.status for r in results]
    a, b = loaded[0], results[0]
    assert a.values == b.values and a.figure.series[0].y == b.figure.series[0].y
    assert a.checks[0].evaluation.estimate == pytest.approx(b.checks[0].evaluation.estimate)


def test_html_is_self_contained_and_has_a_row_and_plot_per_claim(tmp_path):
    results = [
        run_claim(_claim(1.0)),
        run_claim(_claim(1.0, id="T2", requires=("no_such_algorithm",))),
        run_claim(_claim(experiment=lambda ctx: 1 / 0, id="T3")),
    ]
    page = report.render_html(results)
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") == 1
    assert not re.search(r"<script|<link|\bsrc=|href=|@import|url\(", page)
    assert "http://" not in page and "https://" not in page
    for status in (CONFIRMED, PENDING, ERROR):
        assert f">{status}</span>" in page
    assert page.count("<tr>") >= 3
    table = report.verdict_table(results)
    assert "T1" in table and "confirmed" in table and "pending" in table


def test_svg_plot_handles_log_axes_and_degenerate_data():
    fig = Figure(
        "f",
        [Series("a", [0, 1, 10], [0.0, 1e-3, 1.0]), Series("nan", [1.0], [math.nan])],
        logx=True,
        logy=True,
        hlines=[(1e-2, "target")],
    )
    svg = report.svg_plot(fig)
    assert svg.startswith("<svg") and svg.endswith("</svg>") and "polyline" in svg and "target" in svg
    assert "no data" in report.svg_plot(Figure("empty", [Series("a", [], [])]))
    assert "<circle" in report.svg_plot(Figure("one point", [Series("a", [1.0], [2.0])]))


def test_catalogue_is_consistent(pending_claim):
    ids = [c.id for c in claims.all_claims()]
    assert len(ids) == len(set(ids))
    for wanted in "C1 C2 C3 C4 C5 C6 C7 C8 C10 C13 C14 C15 C16 C17 C18 C19".split():
        c = claims.get(wanted)
        assert c.pending_reason() is None, wanted
        assert any(ch.role == "verdict" for ch in c.checks) and c.paper and c.statement and c.setting
        assert set(c.requires) <= set(optimlab.available())
    assert claims.get("p2") is pending_claim and pending_claim.pending_reason() == "experiment not written yet"
    assert claims.get("c16") is claims.get("C16")
    with pytest.raises(KeyError):
        claims.get("C999")
    assert [c.id for c in claims.select(["C16", "C1"])] == ["C1", "C16"]


def test_cli_list_run_report(tmp_path, capsys, pending_claim):
    assert cli.main(["list"]) == 0
    assert "C16" in capsys.readouterr().out
    assert cli.main(["list", "--markdown"]) == 0
    assert capsys.readouterr().out.startswith("| id |")
    out = tmp_path / "out"
    assert cli.main(["run", "--quick", "--no-progress", "--jobs", "1", "--out", str(out), "C14", "P2"]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert [c["id"] for c in doc["claims"]] == ["P2", "C14"]
    assert doc["claims"][0]["status"] == PENDING and doc["meta"]["quick"] is True
    assert (out / "report.html").read_text().count("<svg") == 1
    md = (out / "verdicts.md").read_text()
    assert "| C14 | " in md and "| P2 | pending |" in md and "**C14 —" in md and "quick configuration" in md
    assert (
        cli.main(
            ["report", str(out / "results.json"), "-o", str(tmp_path / "again.html"), "--md", str(tmp_path / "v.md")]
        )
        == 0
    )
    assert (tmp_path / "again.html").exists()
    # the same page from the saved results (only the header line, with its creation time, may differ)
    assert (tmp_path / "v.md").read_text().splitlines()[3:] == md.splitlines()[3:]
    assert cli.main(["run", "--quick", "--out", str(out), "C999"]) == 2


def test_register_adds_a_claims_subcommand():
    parser = argparse.ArgumentParser(prog="optimlab")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.register(sub)
    args = parser.parse_args(["claims", "run", "--quick", "C16", "C14"])
    assert args.func is cli._cmd_run and args.quick and args.ids == ["C16", "C14"]
    assert parser.parse_args(["claims", "list"]).func is cli._cmd_list


def test_parallel_runs_match_in_process_runs(pending_claim):
    chosen = claims.select(["C14", "C18", "P2"])
    parallel = cli.run_claims(chosen, quick=True, jobs=2, threads=1, progress=False)
    assert [r.id for r in parallel] == ["P2", "C14", "C18"]
    assert parallel[0].status == PENDING
    for r in parallel[1:]:
        assert r.values == run_claim(claims.get(r.id), quick=True).values


def test_train_step_feeds_logits_to_sophia_g_and_ignores_them_elsewhere():
    import torch

    from optimlab.claims import _common as U
    from optimlab.training import capabilities

    x, y = torch.randn(16, 5, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 3

    def setup(name):
        torch.manual_seed(0)
        model = torch.nn.Linear(5, 3)
        opt = U.make_optimizer(name, model.parameters(), lr=1e-2, update_period=2) if name == "sophia_g" else None
        opt = opt or U.make_optimizer(name, model.parameters(), lr=1e-2)

        def loss_and_logits():
            logits = model(x)
            return torch.nn.functional.cross_entropy(logits, y), logits

        return model, opt, loss_and_logits

    _, opt, fn = setup("sophia_g")
    assert capabilities(opt).logits
    losses = [U.train_step(opt, fn) for _ in range(4)]  # refreshes at steps 1 and 3 use the logits' graph
    assert losses[-1] < losses[0] and all(float(s["hessian"].abs().sum()) > 0 for s in opt.state.values())
    with pytest.raises(TypeError, match="logits"):
        U.train_step(opt, lambda: fn()[0])
    model, opt, fn = setup("adamw")
    assert not capabilities(opt).logits
    before = model.weight.detach().clone()
    U.train_step(opt, fn)
    assert not torch.equal(before, model.weight)
