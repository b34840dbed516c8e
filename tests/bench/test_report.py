"""The report: one self-contained HTML file that loads in headless Chromium without console errors and shows the
leaderboard and the plots; plus the Markdown leaderboard, the JSON summary and the long-format export."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess

import pytest

from optimlab.bench import adapters, report, report_html, stepcost, store, sweep, tuning
from optimlab.bench import workloads as W

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WORKLOADS = ["quad_noisy", "rosenbrock50", "deep_matfac"]


@pytest.fixture(scope="module")
def filled_store(tmp_path_factory):
    path = tmp_path_factory.mktemp("report")
    rs = store.ResultStore(f"sqlite:///{path / 'bench.sqlite3'}")
    version, smoke, _ = W.suite("smoke")
    wls = [W.get(w) for w in WORKLOADS]
    handles = adapters.resolve_many("adamw,sgd")
    cells = tuning.plan_defaults(version, wls, handles, seeds=2, smoke=smoke)
    cells += tuning.plan_quasirandom(version, wls, handles, trials=2, studies=1, smoke=smoke)
    # a run with an override is a named variant, never pooled with the paper defaults
    cells += tuning.plan_defaults(version, wls[:1], handles[:1], seeds=1, smoke=smoke, hparams={"lr": 3e-3})
    sweep.run_cells(rs, cells, threads=1, progress=False)
    stepcost.run_step_costs(rs, version, wls, handles, warmup=1, steps=3, repeats=1, smoke=True, progress=False)
    return rs, version, path


def test_summary_and_markdown(filled_store):
    rs, version, path = filled_store
    summary = report.build(rs, suite=version, n_boot=50)
    assert set(summary["rulesets"]) == {"defaults", "tuned"}
    assert summary["cost_machine"] and len(summary["costs"]) == 6
    d = summary["rulesets"]["defaults"]
    assert d["algorithms"] == ["adamw", "adamw[lr=0.003]", "sgd"] and d["workloads"] == sorted(WORKLOADS)
    assert all(src == "step-cost table" for a in ("adamw", "sgd") for src in d["cost_source"][a].values())
    assert d["cost_source"]["adamw[lr=0.003]"]["quad_noisy"].startswith(
        "measured in runs"
    )  # not at the table's hparams
    assert set(d["winners"]) == set(WORKLOADS) and summary["incomplete"] == 0
    assert d["stats"]["adamw"]["runs"] == 6
    md = report.render_markdown(summary)
    assert "| 1–" in md and "adamw" in md and "sgd" in md and "`defaults`" in md
    assert all(f"| {w} | " in md for w in WORKLOADS)  # the per-workload winners
    # outcomes: one row per optimizer (the catalogue grows), one column per workload with its target
    defaults_md = md[md.index("## Ruleset `defaults`") :]
    outcome_rows = defaults_md[defaults_md.index("| optimizer | quad_noisy ≤") :].splitlines()
    assert all(f" {w} ≤" in outcome_rows[0] or f" {w} ≥" in outcome_rows[0] for w in WORKLOADS)
    assert [r.split(" | ")[0] for r in outcome_rows[2:5]] == [
        f"| {a}" for a in [r["algorithm"] for r in report.leaderboard_rows(d)]
    ]
    assert all(r.count(" | ") == len(WORKLOADS) for r in outcome_rows[2:5])
    assert outcome_rows[2].count("—") == len(WORKLOADS) - 1  # the lr variant ran one workload
    assert sum(o["runs"] for o in d["outcomes"]["adamw"].values()) == 6
    report.write_json(summary, str(path / "summary.json"))
    assert json.loads((path / "summary.json").read_text())["suite"] == version
    out = io.StringIO()
    n = report.export_long(rs, out, fmt="csv", suite=version)
    lines = out.getvalue().splitlines()
    assert n == len(lines) - 1 > 0 and lines[0].startswith("suite,ruleset,workload")
    assert "p_lr" in lines[0]


def test_outcomes_count_statuses_and_take_medians_over_finished_runs():
    def rec(status, best, steps=None, algorithm="a", workload="w"):
        return {"ruleset": "defaults", "algorithm": algorithm, "workload": workload, "status": status,
                "best_metric": best, "steps_to_target": steps}  # fmt: skip

    records = [rec("hit", 0.1, 40), rec("hit", 0.2, 60), rec("miss", 0.9), rec("diverged", None), rec("error", None)]
    records.append({**rec("hit", 0.0, 1), "ruleset": "tuned"})  # another ruleset: not counted
    o = report.outcomes(records, "defaults")["a"]["w"]
    assert (o["runs"], o["hits"], o["diverged"], o["errors"]) == (5, 2, 1, 1)
    assert o["median_best"] == 0.2 and o["median_steps_to_target"] == 50
    assert report.outcome_cell(o) == "2/5 hit · best 0.2 · 50 steps · 1 diverged · 1 errors"


def test_html_is_self_contained(filled_store):
    rs, version, _ = filled_store
    html = report.render_html(report.build(rs, suite=version, n_boot=50))
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)  # nothing fetched
    assert "<script src" not in html and "<link" not in html
    assert html.count("<svg") >= 2 * (3 + len(WORKLOADS))  # 3 profiles + one curve panel per workload, per ruleset
    assert 'id="leaderboard-table-defaults"' in html and 'id="leaderboard-table-tuned"' in html
    assert "Environment and provenance" in html and "Memory" in html
    # which optimizer for which problem: winners, winning hyperparameters (with downloads), outcomes, seed curves
    for tid in ("winners-table", "hparams-table", "outcomes-table"):
        assert f'id="{tid}-defaults"' in html and f'id="{tid}-tuned"' in html
    assert 'download="winning-hparams-tuned.json" href="data:application/json;base64,' in html
    assert 'download="winning-hparams-defaults.csv" href="data:text/csv;base64,' in html
    assert 'stroke-width="0.8"' in html  # individual runs beside the median
    assert "Unfinished sweep" not in html
    assert "<details><summary>show all" not in html  # a few rows: the hyperparameter table is open


def test_a_catalogue_sized_report_folds_long_tables_and_colours_the_leaders(filled_store, monkeypatch):
    rs, version, _ = filled_store
    monkeypatch.setattr(report_html, "FOLD_ROWS", 1)
    monkeypatch.setattr(report_html, "HIGHLIGHT", 1)
    summary = report.build(rs, suite=version, n_boot=0)
    html = report.render_html(summary)
    assert re.search(r"<details><summary>show all \d+ optimizer × workload rows</summary><div", html)
    assert "<details><summary>show the matrix (3 optimizers)</summary>" in html  # defaults: adamw, its variant, sgd
    assert 'id="hparams-table-defaults"' in html and 'download="winning-hparams-defaults.json"' in html
    d = summary["rulesets"]["defaults"]
    leader = report.leaderboard_rows(d)[0]["algorithm"]
    assert report_html.in_colour(summary, d) == [leader] + (["adamw"] if leader != "adamw" else [])
    greys = 3 - len(report_html.in_colour(summary, d))
    assert f"Grey, without a legend entry: the other {greys} optimizers." in html
    assert f'stroke="{report_html.OTHERS}" stroke-width="0.8"' in html  # drawn, thin and grey
    assert "others left out)." in html  # the curves draw the leaders only


def test_the_leaderboard_ranks_on_the_chosen_clock(filled_store):
    rs, version, _ = filled_store
    with pytest.raises(ValueError, match="rank_by"):
        report.build(rs, suite=version, n_boot=0, rank_by="wall")
    summary = report.build(rs, suite=version, n_boot=50, rank_by="G")
    d = summary["rulesets"]["defaults"]
    rows = report.leaderboard_rows(d)
    assert [r["G"][0] for r in rows] == sorted((r["G"][0] for r in rows), reverse=True)
    assert all(r["rank_ci"] == tuple(d["clocks"]["G"]["rank_ci"][r["algorithm"]]) for r in rows)
    assert "rank on score G" in report.render_markdown(summary)
    html = report.render_html(summary)
    assert "Order and rank intervals: score G" in html and "<h3>Win-rate matrix (G)</h3>" in html
    default = report.build(rs, suite=version, n_boot=0)
    assert default["rank_by"] == "T" and "Order and rank intervals: score T" in report.render_html(default)


def test_unfinished_sweep_shows_a_banner(tmp_path):
    from optimlab.bench import workqueue

    rs = store.ResultStore(f"sqlite:///{tmp_path / 'u.sqlite3'}")
    version, smoke, _ = W.suite("smoke")
    cells = tuning.plan_defaults(version, [W.get("quad_noisy")], adapters.resolve_many("sgd"), seeds=2, smoke=smoke)
    sweep.run_cells(rs, cells[:1], threads=1, progress=False)
    workqueue.enqueue(rs, [sweep.job_of(cells[1])])  # planned, never run
    summary = report.build(rs, suite=version, n_boot=10)
    assert summary["incomplete"] == 1 and summary["queue"]["WAITING"] == 1
    assert "Unfinished sweep: 1 planned runs" in report.render_html(summary)
    assert "Unfinished sweep" in report.render_markdown(summary)


def _chromium(path) -> tuple[str, list[str]]:
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-extensions",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            f"file://{path}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    return proc.stdout, console


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian: apt-get install -y chromium)")
def test_report_in_headless_chromium(filled_store, tmp_path):
    # the detector itself works: a page with an error is caught
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>console.error('x'); notDefined();</script></body></html>")
    _, console = _chromium(bad)
    assert console, "chromium console errors are not being captured"

    rs, version, _ = filled_store
    page = tmp_path / "report.html"
    report.write_html(report.build(rs, suite=version, n_boot=50), str(page))
    dom, console = _chromium(page)
    assert console == [], console
    assert 'data-ready="1"' in dom  # the page's script ran to completion
    assert 'id="leaderboard-table-defaults"' in dom and '<td class="l">adamw</td>' in dom
    assert dom.count("<svg") >= 2 * (3 + len(WORKLOADS)) and "<polyline" in dom
    assert 'id="winners-table-defaults"' in dom and 'id="outcomes-table-tuned"' in dom
