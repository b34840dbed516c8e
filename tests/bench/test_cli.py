"""The ``optimlab bench`` command line: registration, list, errors, a tiny run + report end to end."""

from __future__ import annotations

import argparse

import pytest

from optimlab.bench import cli


def test_register_adds_bench_with_its_subcommands():
    parser = argparse.ArgumentParser(prog="optimlab")
    cli.register(parser.add_subparsers(dest="command"))
    for argv in (["bench", "list"], ["bench", "run", "--optimizers", "adamw"], ["bench", "report"]):
        args = parser.parse_args(argv)
        assert callable(args.func)
    args = parser.parse_args(["bench", "step-cost", "--optimizers", "adamw,sgd", "--steps", "5"])
    assert args.steps == 5 and callable(args.func)


@pytest.mark.parametrize("what", ["workloads", "optimizers", "suites", "libraries"])
def test_list(what, capsys):
    assert cli.main(["list", what]) == 0
    out = capsys.readouterr().out
    assert {"workloads": "charlm_gpt", "optimizers": "adamw", "suites": "core", "libraries": "torch"}[what] in out


def test_unknown_optimizer_fails_clearly(tmp_path, capsys):
    rc = cli.main(["run", "--suite", "smoke", "--optimizers", "adamw,lionnn", "--results", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "unknown optimizer 'lionnn'" in err and "adamw" in err
    rc = cli.main(["run", "--suite", "smoke", "--optimizers", "nolib:Foo", "--results", str(tmp_path)])
    assert rc == 2 and "unknown optimizer library 'nolib'" in capsys.readouterr().err
    rc = cli.main(["run", "--suite", "smoke", "--optimizers", "torch:NoSuch", "--results", str(tmp_path)])
    assert rc == 2 and "no optimizer class 'NoSuch'" in capsys.readouterr().err
    rc = cli.main(["run", "--suite", "nope", "--optimizers", "adamw", "--results", str(tmp_path)])
    assert rc == 2 and "unknown suite" in capsys.readouterr().err


def test_all_is_the_whole_catalogue(tmp_path, capsys):
    from optimlab import registry
    from optimlab.bench import adapters

    assert [h.id for h in adapters.resolve_many("all,torch:AdamW,adamw")] == [*registry.available(), "torch:AdamW"]
    argv = ["run", "--suite", "smoke", "--optimizers", "all", "--workloads", "quad_noisy", "--results", str(tmp_path)]
    assert cli.main([*argv, "--seeds", "1", "--dry-run"]) == 0
    out, err = capsys.readouterr()
    # ImbSAM (class-split losses) and Sophia-G (logits) have nothing to run on quad_noisy
    assert f"{len(registry.available()) - 2} runs planned" in out and "imbsam" in err and "sophia_g" in err


def test_run_then_report_end_to_end(tmp_path, capsys):
    common = ["--suite", "smoke", "--results", str(tmp_path), "--no-progress", "--threads", "1"]
    opts = ["--optimizers", "adamw,torch:SGD,sophia_g"]
    sel = [*opts, "--workloads", "quad_noisy,grok_modadd", "--hparams", '{"lr": 0.01}']
    assert cli.main(["run", *common, *sel, "--seeds", "1"]) == 0
    out, err = capsys.readouterr()
    assert "5 runs planned, 0 already in the store, 5 ran" in out  # sophia_g on quad_noisy left out:
    assert "not applicable, left out: sophia_g on quad_noisy" in err  # no logits there
    assert cli.main(["run", *common, *sel, "--seeds", "1", "--dry-run"]) == 0
    assert "5 runs planned, 5 already" in capsys.readouterr().out
    report = ["report", "--suite", "smoke", "--results", str(tmp_path), "--bootstrap", "20", "--rank-by", "G"]
    assert cli.main(report) == 0
    assert (tmp_path / "report.html").exists() and (tmp_path / "LEADERBOARD.md").exists()
    md = (tmp_path / "LEADERBOARD.md").read_text()
    assert "rank on score G" in md
    assert "torch:SGD" in md and "| torch |" in md  # each row marks its library
    assert "sophia_g" in md
    assert cli.main(["export", "--results", str(tmp_path), "--out", str(tmp_path / "long.csv")]) == 0
    assert (tmp_path / "long.csv").read_text().count("\n") > 4


def test_calibrate_smoke(tmp_path, capsys):
    out = tmp_path / "proposals.json"
    argv = ["calibrate", "--suite", "smoke", "--workloads", "quad_noisy,cnn1d_mnist1d", "--trials", "2", "--seeds", "2"]
    argv += ["--budget", "5", "--results", str(tmp_path), "--no-progress", "--threads", "1", "--out", str(out)]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "quad_noisy" in text and "cnn1d_mnist1d" in text
    import json

    proposals = json.loads(out.read_text())
    assert proposals["quad_noisy"]["kind"] == "precision" and proposals["quad_noisy"]["target"] == 1e-3
    cnn = proposals["cnn1d_mnist1d"]
    assert cnn["kind"] == "calibrated" and cnn["hit_fraction_by_hint"] >= 0.5  # 1 of 2 seeds at least
    assert cnn["step_hint"] == 12 and cnn["max_steps"] == 20  # smoke: 4 steps × 5, hint = max / 1.5
    for p in proposals.values():
        assert p["optimizer"] in ("adamw", "sgd_nesterov") and len(p["per_seed_by_hint"]) == 2


def test_dry_run_writes_nothing_and_estimates_time(tmp_path, capsys):
    results = tmp_path / "runs"
    argv = ["run", "--suite", "smoke", "--optimizers", "adamw,sgd", "--workloads", "quad_noisy", "--seeds", "2"]
    assert cli.main([*argv, "--results", str(results), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "4 runs planned, 0 already" in out and "estimate:" in out and "quad_noisy" in out
    assert not results.exists()  # no directory, no database
    # with a step-cost table in the store, the estimate is a number of minutes
    from optimlab.bench import adapters, stepcost, store
    from optimlab.bench import workloads as W

    rs = store.ResultStore(store.default_storage_url(results))
    version, _, _ = W.suite("smoke")
    handles = adapters.resolve_many("adamw,sgd")
    stepcost.run_step_costs(rs, version, [W.get("quad_noisy")], handles, warmup=1, steps=2, repeats=1, smoke=True)
    capsys.readouterr()
    assert cli.main([*argv, "--results", str(results), "--dry-run"]) == 0
    assert "min with 2 worker(s)" in capsys.readouterr().out


def test_flags_without_effect_warn(tmp_path, capsys):
    base = ["run", "--suite", "smoke", "--optimizers", "sgd", "--workloads", "quad_noisy", "--results", str(tmp_path)]
    assert cli.main([*base, "--trials", "7", "--sampler", "tpe", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "--trials has no effect with --ruleset defaults" in err and "--sampler has no effect" in err
    assert cli.main([*base, "--ruleset", "tuned", "--seeds", "5", "--dry-run"]) == 0
    err = capsys.readouterr().err
    assert "--seeds has no effect with --ruleset tuned" in err
    assert "3 studies × 5 trials = 15 runs per (optimizer, workload)" in err  # the studies multiply --trials


def test_worker_command_drains_a_queue(tmp_path, capsys):
    from optimlab.bench import adapters, store, sweep, tuning, workqueue
    from optimlab.bench import workloads as W

    url = f"sqlite:///{tmp_path / 'q.sqlite3'}"
    version, smoke, _ = W.suite("smoke")
    cells = tuning.plan_defaults(version, [W.get("quad_noisy")], adapters.resolve_many("sgd"), seeds=2, smoke=smoke)
    rs = store.ResultStore(url)
    workqueue.enqueue(rs, [sweep.job_of(c) for c in cells[:1]])
    argv = ["run", "--suite", "smoke", "--optimizers", "sgd", "--workloads", "quad_noisy", "--seeds", "2"]
    assert cli.main([*argv, "--storage", url, "--enqueue-only"]) == 0  # enqueues the other one only
    assert "2 runs planned, 0 already in the store, 1 enqueued" in capsys.readouterr().out
    assert cli.main(["worker", "--storage", url, "--no-progress"]) == 0
    assert "worker: 2 runs" in capsys.readouterr().out
    assert {c.key for c in cells} == set(rs.completed(cells[0].study_name))


def test_dry_run_estimates_from_the_shipped_costs_without_a_table(tmp_path, monkeypatch, capsys):
    """No store, no step-cost table: the estimate is every run's budget × AdamW's shipped cost per step of its
    workload, split over the workers; the dry run creates no file (no results directory, no data-hash cache)."""
    from optimlab.bench import datacache, estimate
    from optimlab.bench import workloads as W

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(datacache, "WRITE", True)  # the dry run turns it off
    argv = ["run", "--suite", "core", "--optimizers", "adamw,sgd", "--workloads", "quad_noisy,heavytail_linreg"]
    argv += ["--seeds", "2", "--jobs", "2", "--threads", "2", "--results", str(tmp_path / "runs"), "--dry-run"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    shipped = estimate.shipped_costs()["suites"]["core-v1"]
    budget = {w: W.get(w).budget_for(False).scaled(cli.DEFAULTS_BUDGET).max_steps for w in shipped}
    minutes = sum(2 * 2 * budget[w] * shipped[w] for w in ("quad_noisy", "heavytail_linreg")) / 60 / 2
    assert f"estimate: ≈ {minutes:.1f} min with 2 worker(s)" in out  # ≈: not this machine's costs
    assert "cost per step of the 4 pairs from: shipped adamw: 4" in out and "?" not in out
    assert list(tmp_path.iterdir()) == []
    assert datacache.WRITE  # turned off for the dry run only
