"""The documentation site: it builds with ``mkdocs build --strict`` (no warning, no broken link or API reference),
every registered algorithm has its page, every page's usage snippet runs, the evidence and results it quotes are
read from the right places, the home page and an algorithm page load in headless Chromium with no console error
and the plot visible, and ``optimlab demo`` writes its plot.

The site is built once for the module, drawing one algorithm's trajectory plot (``OPTIMLAB_DOCS_PLOTS``)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import importlib
import importlib.util
import inspect
import io
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import torch

import optimlab
from optimlab import demo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from docsgen import evidence, pages, results, trajectories  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PLOTTED = "lion"
GUIDES = ROOT / "docs" / "guides"


# ----------------------------------------------------------------------------- snippets, evidence, results
@pytest.mark.parametrize("name", optimlab.available())
def test_usage_snippet_runs(name):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(pages.usage_snippet(name), f"<{name} usage>", "exec"), {"__name__": "__snippet__"})
    assert out.getvalue().startswith("loss ") and "nan" not in out.getvalue()


def _page_snippets() -> list[tuple[str, int, str]]:
    """(page, index, code) of every python block of the hand-written pages, except those marked as needing torchrun."""
    out = []
    for page in [ROOT / "docs" / "index.md", ROOT / "docs" / "getting-started.md", *sorted(GUIDES.glob("*.md"))]:
        for i, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(), re.S)):
            if "needs torchrun" not in code.splitlines()[0]:
                out.append((page.relative_to(ROOT).as_posix(), i, code))
    return out


SNIPPETS = _page_snippets()


@pytest.mark.parametrize("page,index,code", SNIPPETS, ids=[f"{page}:{i}" for page, i, _ in SNIPPETS])
def test_guide_snippet_runs(page, index, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, f"<{page} block {index}>", "exec"), {"__name__": "__snippet__"})


def test_generated_sections_fill_and_unknown_markers_fail():
    text = (GUIDES / "choosing-an-optimizer.md").read_text()
    filled = pages.fill_markers(text)
    assert "<!-- generated" not in filled and "[muon](../algorithms/muon.md)" in filled
    with pytest.raises(ValueError, match="unknown generated section"):
        pages.fill_markers("<!-- generated: no such table -->")


def test_evidence_names_the_authors_packages_and_tolerances():
    against = {n: [o.against for o in evidence.oracles(n)] for n in ("prodigy", "sf_adamw", "dog", "adabelief")}
    assert "the authors' prodigyopt" in against["prodigy"]
    assert "the authors' schedulefree" in against["sf_adamw"]
    assert "the authors' dog-optimizer" in against["dog"]
    assert "the authors' adabelief-pytorch" in against["adabelief"]
    adamw = evidence.oracles("adamw")
    assert adamw[0].test == "tests/test_matrix.py::test_reference_parity" and "rtol=1e-10" in adamw[0].tolerances[0]
    assert adamw[1].against == "`torch.optim.AdamW`" and "rtol=1e-06" in adamw[1].tolerances[0]
    assert not evidence.authors_oracles().get("adamw")  # its schedule-free wrapper test does not count for it
    assert [o.against for o in evidence.package_oracles("bilevel")][0] == "the authors' torchopt"


def test_results_quote_the_published_tables():
    muon = results.benchmark_rows("muon")
    assert muon.leaderboard["hit rate"] == "89%" and any(r["workload"] == "charlm_gpt" for r in muon.wins)
    assert results.benchmark_rows("imbsam").leaderboard is None  # nothing to run on in core-v1
    last_tied = results.winners_table()[0]["statistically tied"].split(" (")[0].split(", ")[-1]
    assert any(r["workload"] == results.winners_table()[0]["workload"] for r in results.benchmark_rows(last_tied).wins)
    assert ("C8", "confirmed") in [(cid, verdict) for cid, _, verdict in results.claims_of("sam")]
    assert [cid for cid, _, _ in results.claims_using_package("multitask")] == ["C33", "C34", "C35"]
    table = results.markdown_tables("x\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| 3 | 4 |\n")
    assert table == [[{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]]


def test_trajectory_plot_is_cached_and_descends(tmp_path, monkeypatch):
    path = trajectories.run("adamw", "rosenbrock")
    start, end = path.points[0], path.points[-1]
    f = lambda p: trajectories.rosenbrock(torch.tensor(p, dtype=torch.float64), 0).item()  # noqa: E731
    assert f(end) < 1e-2 * f(start)
    assert trajectories.run("sam", "rosenbrock") is not None
    monkeypatch.setattr(trajectories, "CACHE", tmp_path)
    monkeypatch.setattr(trajectories, "draw", lambda name: b"png of " + name.encode())
    assert trajectories.png("sgd") == b"png of sgd"
    monkeypatch.setattr(trajectories, "draw", lambda name: pytest.fail("redrawn although cached"))
    assert trajectories.png("sgd") == b"png of sgd" and len(list(tmp_path.iterdir())) == 1


def test_a_new_algorithm_gets_its_page_and_nav_entry_with_no_docs_edit():
    """Register an algorithm (record + test record) in a fresh process: the generator lists and renders it."""
    script = textwrap.dedent(
        f"""
        import sys
        sys.path[:0] = [{str(ROOT)!r}, {str(ROOT / "scripts")!r}]
        from optimlab import registry as R
        from optimlab.optim.lion import Lion
        from tests import optim_db
        from docsgen import pages

        class ProbeLion(Lion):
            \"\"\"A probe: Lion under another name.\"\"\"

        R.available()
        R.register(R.AlgorithmSpec(name="probe_lion", cls=ProbeLion, family="sign", summary="a probe",
                                   paper=R.Paper("A probe", "Nobody", 2026, arxiv="0000.00000"),
                                   hparams="lr betas", state_tensors=1))
        optim_db.add("probe_lion", reference="tests.reference.lion:lion", convergence_hparams=optim_db.CONVERGENCE)
        assert "[ProbeLion](algorithms/probe_lion.md)" in pages.summary([])
        assert "[ProbeLion](probe_lion.md)" in pages.catalogue_page()
        page = pages.algorithm_page("probe_lion", None)
        assert page.startswith("# ProbeLion (`probe_lion`)") and "arXiv:0000.00000" in page
        assert 'optimlab.create("probe_lion", model.parameters())' in page
        print("page ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0 and "page ok" in out.stdout, out.stderr[-3000:]


# ----------------------------------------------------------------------------- the demo
def test_demo_writes_png_and_svg_without_matplotlib(tmp_path, monkeypatch):
    runs, plot = demo.run(["sgd", "adamw"], 30, tmp_path / "a" / "losses")
    if importlib.util.find_spec("matplotlib") is not None:  # the docs extra
        assert plot.suffix == ".png" and plot.read_bytes()[:4] == b"\x89PNG"
    assert all(r.losses[-1] < r.losses[0] for r in runs)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    _, svg = demo.run(["sgd"], 5, tmp_path / "b" / "losses")
    assert svg.suffix == ".svg" and "<polyline" in svg.read_text()
    with pytest.raises(KeyError, match="unknown algorithm"):
        demo.run(["sgd", "no_such_optimizer"], 5, tmp_path / "c")
    runs, _ = demo.run(["sam", "sophia_g"], 10, tmp_path / "d" / "losses")  # closure and logits through train_step
    assert all(r.losses[-1] < r.losses[0] for r in runs)
    with pytest.raises(ValueError, match="class-split"):
        demo.run(["imbsam"], 5, tmp_path / "e")


# ----------------------------------------------------------------------------- the site
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    pytest.importorskip("mkdocs", reason="the docs extra is not installed: pip install -e '.[docs]'")
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "OPTIMLAB_DOCS_PLOTS": PLOTTED, "DISABLE_MKDOCS_2_WARNING": "true", "NO_MKDOCS_2_WARNING": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-5000:]
    print(f"mkdocs build --strict: {time.perf_counter() - start:.1f} s")
    return out


def test_site_builds_strict_with_a_page_per_algorithm_and_component(site):
    for name in optimlab.available():
        assert (site / "algorithms" / name / "index.html").exists(), name
    for pkg in pages.COMPONENTS:
        assert (site / "components" / pkg / "index.html").exists() and (site / "api" / pkg / "index.html").exists()
    lion = (site / "algorithms" / PLOTTED / "index.html").read_text()
    for section in ("Paper", "Update rule", "Defaults", "Evidence", "State memory", "Capabilities", "Usage"):
        assert f">{section}<" in lion, section
    assert "arXiv:2302.06675" in lion and "lion_update_" in lion
    assert (site / "algorithms" / "img" / f"{PLOTTED}.png").exists()
    assert not (site / "algorithms" / "img" / "sgd.png").exists()  # only the requested plot was drawn
    api = (site / "api" / "optimlab" / "index.html").read_text()
    assert all(f'id="optimlab.{name}"' in api for name in optimlab.__all__), "a public name has no reference entry"
    for pkg in pages.COMPONENTS:  # every public class and function of the component packages
        module, html = importlib.import_module(f"optimlab.{pkg}"), (site / "api" / pkg / "index.html").read_text()
        for name in module.__all__:
            obj = getattr(module, name)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and importlib.util.find_spec(
                f"{module.__name__}.{name}"
            ) is None:
                assert f'id="optimlab.{pkg}.{name}"' in html, f"optimlab.{pkg}.{name}"
    for name in optimlab.available():  # every optimizer class, on the page of its primary name
        cls = optimlab.spec(name).cls
        page = (site / "algorithms" / pages.primary_name(cls) / "index.html").read_text()
        assert f'id="{cls.__module__}.{cls.__name__}"' in page, name


@contextlib.contextmanager
def _serve(directory: Path):
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _chromium(url: str) -> tuple[str, list[str]]:
    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-extensions", "--enable-logging=stderr"]
    args += ["--v=0", "--virtual-time-budget=5000", "--dump-dom", url]
    proc = subprocess.run([CHROMIUM, *args], capture_output=True, text=True, timeout=120)
    console = [line for line in proc.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    return proc.stdout, console


def _images_loaded(dom: str) -> tuple[int, int]:
    m = re.search(r'data-images="(\d+)/(\d+)"', dom)
    assert m, "images-ready.js did not run"
    return int(m.group(1)), int(m.group(2))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (Debian: apt-get install -y chromium)")
def test_home_and_algorithm_page_in_headless_chromium(site, tmp_path):
    bad = tmp_path / "bad.html"  # the detector itself works: a page with an error is caught
    bad.write_text("<html><body><script>console.error('x'); notDefined();</script></body></html>")
    assert _chromium(f"file://{bad}")[1], "chromium console errors are not being captured"
    with _serve(site) as base:
        home, home_console = _chromium(f"{base}/")
        page, page_console = _chromium(f"{base}/algorithms/{PLOTTED}/")
    assert home_console == [] and page_console == [], home_console + page_console
    assert "Verified, fast, comparable" in home and _images_loaded(home)[0] == _images_loaded(home)[1]
    loaded, total = _images_loaded(page)
    assert total >= 1 and loaded == total  # the trajectory plot is there and decoded
    assert 'class="trajectory"' in page
