"""The Markdown of the generated pages: one per registered algorithm, the catalogue, one per component package,
the API reference and the site's navigation. Every fact comes from the code (the registry record, the class, the
test sources, the published results); adding an algorithm or a guide adds its page and nav entry."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
import textwrap
from pathlib import Path

import torch

from optimlab import registry as R
from optimlab.conventions import fmt
from optimlab.training import capabilities

from . import evidence, results

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
#: the component packages (one page each, plus their API reference)
COMPONENTS = ("schedules", "multitask", "constrained", "bilevel", "zo", "grad", "curvature")
#: other public modules in the API reference
API_MODULES = (
    "optimlab",
    "optimlab.training",
    "optimlab.routing",
    "optimlab.registry",
    "optimlab.losses",
    "optimlab.memory",
    "optimlab.conventions",
    "optimlab.claims",
)
#: hand-written pages of docs/ in the site's "Results and references" section, when present
REFERENCE_PAGES = ("benchmark.md", "bench/defaults-core-v1.md", "claims.md", "conventions.md", "compatibility.md")
#: guides listed first, in this order (others follow alphabetically)
GUIDE_ORDER = ("choosing-an-optimizer", "migration")
#: the shape whose state the page quotes (a 1024 × 1024 weight: matrix rules engage)
STATE_SHAPE = (1024, 1024)


def title_of(path: Path) -> str:
    """The first level-1 heading of a Markdown file (its file name otherwise)."""
    m = re.search(r"^# (.+)$", path.read_text(), re.M)
    return m.group(1).strip() if m else path.stem


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _paper(spec: R.AlgorithmSpec) -> str:
    p = spec.paper
    link = f" [arXiv:{p.arxiv}](https://arxiv.org/abs/{p.arxiv})" if p.arxiv else ""
    seed = f" Seed catalogue {p.seed_id}." if p.seed_id else ""
    return f"{p.authors} ({p.year}). *{p.title}*.{link}{seed}"


def _defaults(spec: R.AlgorithmSpec) -> str:
    ctor = R.constructor_defaults(spec.cls)
    rows = []
    for k, v in spec.defaults.items():
        if k not in ctor:  # a wrapper passes it to its base
            rows.append([f"`{k}`", f"`{fmt(v)}`", "— (the base optimizer's argument)", ""])
        else:
            rows.append([f"`{k}`", f"`{fmt(v)}`", f"`{fmt(ctor[k])}`", "" if ctor[k] == v else "differs"])
    if not rows:
        return "The paper states no hyperparameters beyond the constructor's."
    intro = (
        "`optimlab.create` passes the paper's values; the class's own defaults follow torch.optim where torch has "
        "the algorithm."
    )
    return intro + "\n\n" + _table(["hyperparameter", "paper (`create`)", "class constructor", "note"], rows)


def _conventions(spec: R.AlgorithmSpec) -> str:
    if not spec.conventions:
        return "No recorded point of disagreement between implementations."
    rows = []
    for c in spec.conventions:
        if c.switch is None:
            switch = f"fixed: {c.fixed}"
        else:
            switch = f"`{c.switch}`: " + "; ".join(f"`{fmt(v)}` = {who}" for v, who in c.choices)
        rows.append([c.point, c.paper, c.elsewhere, switch])
    return _table(["point", "paper", "elsewhere", "optimlab"], rows) + (
        "\n\nAll algorithms' conventions, with the defaults read from the code: [conventions](../conventions.md)."
    )


def _evidence(name: str) -> str:
    rows = [[o.against, f"`{o.test}`", "; ".join(o.tolerances)] for o in evidence.oracles(name)]
    table = _table(["compared with", "test", "tolerance"], rows)
    problems = {"quadratic": "the quadratic", "rosenbrock": "Rosenbrock's function"}
    skipped = {label: evidence.convergence_skip(name, p) for p, label in problems.items()}
    notes = "".join(f" Convergence on {p} is not run: {why}." for p, why in skipped.items() if why)
    return (
        table + "\n\nThe generic matrix (`tests/test_matrix.py`) also runs, for every algorithm: eager vs "
        "`compile=True`, exact resume from a `weights_only` checkpoint, bad hyperparameters raise `ValueError`, "
        "convergence on an ill-conditioned quadratic and on Rosenbrock, bf16/fp16 parameters, and the analytic "
        "state bytes against the measured ones." + notes
    )


def _state(spec: R.AlgorithmSpec) -> str:
    numel = STATE_SHAPE[0] * STATE_SHAPE[1]
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        b = spec.state_bytes(STATE_SHAPE, dtype)
        rows.append([str(dtype).removeprefix("torch."), f"{b:,}", f"{b / numel:.3g}"])
    head = f"Optimizer state of one {STATE_SHAPE[0]} × {STATE_SHAPE[1]} weight at the paper's defaults"
    table = _table(["param dtype", "bytes", "bytes / param"], rows)
    return f"{head} ({spec.state_tensors:g} parameter-sized tensors):\n\n{table}"


def _capabilities(spec: R.AlgorithmSpec) -> str:
    cap = capabilities(spec)
    yes = {True: "yes", False: "no"}
    rows = [
        ["closure required", yes[cap.closure], "`step(closure)` re-evaluates the loss"],
        ["Hessian-vector products", yes[cap.hvp], "the closure's backward uses `create_graph=True`"],
        ["logits", yes[cap.logits], "the closure returns `(loss, logits)`"],
        ["class-split losses", yes[cap.head_tail], "the closure returns `(head_loss, tail_loss)`"],
        ["complex parameters", yes[bool(getattr(spec.cls, "supports_complex", False))], ""],
        [
            "FSDP2 (DTensor)",
            "tested" if not cap.closure else "not tested",
            "`tests/test_fsdp2.py` runs every optimizer that steps without a closure against one process",
        ],
        ["`compile=True`", "tested", "`tests/test_matrix.py::test_compiled_matches_eager_without_recompiling`"],
    ]
    return _table(["capability", "status", "meaning"], rows) + (
        "\n\n`optimlab.training.train_step(opt, loss_fn)` drives any of them (closure, `create_graph`, logits)."
    )


def _benchmark(name: str) -> str:
    rows = results.benchmark_rows(name)
    if rows.leaderboard is None:
        return f"`{name}` was not in the published benchmark run ([benchmark](../benchmark.md))."
    cols = list(rows.columns)
    out = _table(cols, [[rows.leaderboard[c] for c in cols]])
    if rows.wins:
        wins = [[r["workload"], r["target"], r["winner"], r["statistically tied"]] for r in rows.wins]
        out += "\n\nWorkloads it wins or ties:\n\n" + _table(["workload", "target", "winner", "tied"], wins)
    return out + "\n\nFrom the published run in [benchmark](../benchmark.md) (how it scores, the run's conditions)."


def _claims_table(found: list[tuple[str, str, str]], empty: str) -> str:
    if not found:
        return empty
    rows = [[f"`{cid}`", title, verdict] for cid, title, verdict in found]
    return _table(["claim", "title", "verdict"], rows) + (
        "\n\nVerdicts from [claims](../claims.md); `optimlab claims run <id>` reruns one."
    )


def _claims(name: str) -> str:
    return _claims_table(results.claims_of(name), f"No registered claim runs `{name}`.")


def usage_snippet(name: str) -> str:
    """A minimal training loop for ``name``; the docs tests execute every one."""
    spec = R.spec(name)
    cap = capabilities(spec)
    head = f"""import torch
import optimlab

torch.manual_seed(0)
model = torch.nn.Linear(8, 3)
x, y = torch.randn(32, 8), torch.randint(0, 3, (32,))
opt = optimlab.create("{name}", model.parameters())  # optimlab.{spec.cls.__name__} with the paper's defaults
"""
    if cap.head_tail:
        body = """tail = y == 2  # the rare classes (a data-side choice)


def closure():  # returns (head_loss, tail_loss) and does not call backward
    per_example = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
    return optimlab.wrappers.imbsam.split_losses(per_example, tail)


for _ in range(3):
    opt.zero_grad()
    loss = opt.step(closure)
"""
    elif cap.closure or cap.logits or cap.hvp:
        body = """

def loss_fn():
    logits = model(x)
    return torch.nn.functional.cross_entropy(logits, y), logits


for _ in range(3):  # train_step builds the closure this optimizer needs (create_graph, logits)
    loss = optimlab.training.train_step(opt, loss_fn)
"""
    else:
        body = """for _ in range(3):
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
"""
    return head + body + 'print(f"loss {loss.item():.4f}")\n'


def _update_source(spec: R.AlgorithmSpec) -> str:
    update = getattr(spec.cls, "update", None)
    fn = getattr(update, "__func__", update)
    try:
        path = inspect.getsourcefile(fn)
        source = inspect.getsource(fn)
    except (TypeError, OSError):
        return ""
    if path is None or "optimlab" not in path or "_base.py" in path:
        return ""
    where = Path(path).relative_to(ROOT / "src").as_posix()
    return (
        f'??? note "The update as the code runs it (`{where}`)"\n\n'
        + textwrap.indent(f"```python\n{textwrap.dedent(source)}```", "    ")
        + "\n"
    )


def algorithm_page(name: str, plot: str | None) -> str:
    """The page of one registered algorithm; ``plot`` is the trajectory image's path relative to the page."""
    spec = R.spec(name)
    cls = spec.cls
    module = inspect.getmodule(cls)
    rule = textwrap.indent((module.__doc__ or "").strip(), "    ")
    parts = [
        f"# {cls.__name__} (`{name}`)",
        f"{spec.summary}\n\nFamily: `{spec.family}` · class `optimlab.{cls.__name__}` · "
        f'`optimlab.create("{name}", params)`',
        "## Paper",
        _paper(spec),
        "## Update rule",
        f"From the module's documentation (`{module.__name__}`):\n\n```text\n{textwrap.dedent(rule)}\n```",
        _update_source(spec),
        f"Notes: {spec.notes}" if spec.notes else "",
        "## Defaults",
        _defaults(spec),
        "## Conventions",
        _conventions(spec),
        "## Evidence",
        _evidence(name),
        "## State memory",
        _state(spec),
        "## Capabilities",
        _capabilities(spec),
        "## Trajectories",
        f'![{name} on Rosenbrock and a noisy quadratic]({plot}){{ .trajectory loading="eager" }}\n\n'
        "Start ● , minimum ★ ; the paper's defaults with the test matrix's convergence settings, cosine schedule."
        if plot
        else "Not drawn in this build (`OPTIMLAB_DOCS_PLOTS` left it out).",
        "## Benchmark",
        _benchmark(name),
        "## Claims",
        _claims(name),
        "## Usage",
        f"```python\n{usage_snippet(name)}```",
        "## API",
        _api(spec, module.__name__),
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def catalogue_page() -> str:
    rows = []
    for spec in R.specs():
        cap = capabilities(spec)
        need = ", ".join(k for k in ("closure", "hvp", "logits", "head_tail") if getattr(cap, k)) or ""
        p = spec.paper
        rows.append(
            [
                f"[{spec.cls.__name__}]({spec.name}.md)",
                f"`{spec.name}`",
                spec.family,
                f"{p.authors} {p.year}",
                f"{spec.state_tensors:g}",
                need,
            ]
        )
    return (
        "# Algorithms\n\nEvery registered algorithm (`optimlab.available()`), one generated page each: paper, "
        "update rule, defaults, conventions, evidence, state memory, capabilities, trajectories, benchmark row, "
        "claims and a usage snippet that the tests run.\n\n"
        + _table(["class", "name", "family", "paper", "state tensors", "needs"], rows)
        + "\n"
    )


def component_page(pkg: str) -> str:
    module = importlib.import_module(f"optimlab.{pkg}")
    doc = (module.__doc__ or "").strip()
    rows = []
    for public in getattr(module, "__all__", []):
        obj = getattr(module, public)
        first = (inspect.getdoc(obj) or "").split("\n\n")[0].replace("\n", " ")
        documented = (inspect.isclass(obj) or inspect.isfunction(obj)) and not _is_submodule(pkg, public)
        link = f"[`{public}`](../api/{pkg}.md#optimlab.{pkg}.{public})" if documented else f"`{public}`"
        rows.append([link, first if documented else ""])
    tests = [[o.against, f"`{o.test}`", "; ".join(o.tolerances)] for o in evidence.package_oracles(pkg)]
    parts = [
        f"# `optimlab.{pkg}`",
        f"```text\n{doc}\n```",
        "## Public names",
        _table(["name", "summary"], rows),
        "## Evidence",
        _table(["compared with", "test", "tolerance"], tests) if tests else f"Tests: `tests/{pkg}/`.",
        "## Claims",
        _claims_table(results.claims_using_package(pkg), f"No registered claim uses `optimlab.{pkg}`."),
    ]
    return "\n\n".join(parts) + "\n"


def _is_submodule(pkg: str, name: str) -> bool:
    return importlib.util.find_spec(f"optimlab.{pkg}.{name}") is not None


def primary_name(cls: type) -> str:
    """The registered name whose page documents ``cls`` (several names may share a class: sam, asam, usam)."""
    names = [n for n in R.available() if R.spec(n).cls is cls]
    return cls.__name__.lower() if cls.__name__.lower() in names else names[0]


def nav_label(name: str) -> str:
    """The class name, with the registry name where several names share the class."""
    cls = R.spec(name).cls
    return cls.__name__ if primary_name(cls) == name else f"{cls.__name__} ({name})"


def _api(spec: R.AlgorithmSpec, module: str) -> str:
    cls = spec.cls
    primary = primary_name(cls)
    if primary != spec.name:
        return f"`{cls.__name__}` is documented on [its page]({primary}.md#api); `{spec.name}` is its preset."
    return f"::: {module}.{cls.__name__}\n    options:\n      show_root_heading: false\n      heading_level: 3"


def api_page(module: str) -> str:
    """The reference of one module; the top-level one also lists the optimizer classes (on their pages)."""
    text = f"# `{module}`\n\n::: {module}\n"
    if module == "optimlab":
        rows = [
            [f"[`optimlab.{s.cls.__name__}`](../algorithms/{s.name}.md#api)", f"`{s.name}`", s.summary]
            for s in R.specs()
            if primary_name(s.cls) == s.name
        ]
        text += "\n## Optimizer classes\n\n" + _table(["class", "registry name", "summary"], rows) + "\n"
    return text


def winners() -> str:
    """The benchmark's per-workload winners (docs/benchmark.md), the algorithms linked to their pages."""
    table = results.winners_table()
    if not table:
        return "The benchmark page has no per-workload winners table yet."
    names = set(R.available())

    def link(text: str) -> str:
        return re.sub(
            r"\b[a-z][a-z0-9_]+\b", lambda m: f"[{m[0]}](../algorithms/{m[0]}.md)" if m[0] in names else m[0], text
        )

    cols = list(table[0])
    return _table(cols, [[link(r[c]) if c in ("winner", "statistically tied") else r[c] for c in cols] for r in table])


def generated_sections() -> dict:
    """What a ``<!-- generated: key -->`` marker in a hand-written page is replaced with."""
    from . import migration

    return {"benchmark winners": winners, "migration tables": migration.tables}


def fill_markers(text: str) -> str:
    """Replace every ``<!-- generated: key -->`` of a page; an unknown key raises ``ValueError``."""
    sections = generated_sections()

    def fill(m: re.Match) -> str:
        if m[1] not in sections:
            raise ValueError(f"unknown generated section {m[1]!r}; known: {sorted(sections)}")
        return sections[m[1]]()

    return re.sub(r"<!-- generated: ([a-z ]+) -->", fill, text)


def summary(guides: list[Path]) -> str:
    """The site's navigation (literate-nav): hand-written pages that exist, guides and generated sections."""
    lines = ["* [Home](index.md)", "* [Getting started](getting-started.md)"]
    guides = sorted(
        guides, key=lambda g: (GUIDE_ORDER.index(g.stem) if g.stem in GUIDE_ORDER else len(GUIDE_ORDER), g.stem)
    )
    lines += ["* Guides"] * bool(guides) + [f"    * [{title_of(g)}](guides/{g.name})" for g in guides]
    lines += ["* [Algorithms](algorithms/index.md)"]
    lines += [f"    * [{nav_label(n)}](algorithms/{n}.md)" for n in R.available()]
    lines += ["* Components"] + [f"    * [{pkg}](components/{pkg}.md)" for pkg in COMPONENTS]
    lines += ["* Results and references"]
    lines += [f"    * [{title_of(DOCS / p)}]({p})" for p in REFERENCE_PAGES if (DOCS / p).exists()]
    lines += ["* API reference"]
    lines += [f"    * [{m}](api/{m.removeprefix('optimlab.')}.md)" for m in API_MODULES]
    lines += [f"    * [optimlab.{pkg}](api/{pkg}.md)" for pkg in COMPONENTS]
    return "\n".join(lines) + "\n"
