"""Step time of every registered optimizer, against torch.optim's AdamW and the memory roofline.

For each algorithm in ``optimlab.available()`` this times ``optimizer.step()`` on a model of ``--tensors``
parameter tensors holding ``--params`` fp32 values in all (default 100 tensors, 10M values; a transformer-like
mix: per block a (4d, d) weight, a 4d bias, a (d, 4d) weight and a d bias), with random gradients filled in
beforehand, eager and ``compile=True``; where ``pytorch_optimizer`` is installed, its version of the same
algorithm (names matched case-insensitively, ignoring ``_`` and ``-``) runs beside it. It prints:

* ms/step: median over ``--rounds`` rounds of the mean step time of one sample (``--steps`` steps);
* ``/ fused``, ``/ loop``: step time over torch.optim.AdamW with ``fused=True`` / ``foreach=False``, same
  hyperparameters as optimlab's ``adamw`` record (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2);
* ``/ roof``: step time over the memory-roofline time of the algorithm (see the byte model below);
* compile s: wall time of the first compiled step (compilation; excluded from ms/step). A row whose graph an
  earlier row already compiled (same class and shapes, e.g. ``nonfinite="propagate"``) shows ~0;
* spread: interquartile range of the rounds over their median (how noisy the figure is).

Byte model (the roofline). A step must read the parameter, its gradient and every state tensor and write back
the parameter and every state tensor. With ``S`` = the registry's ``state_tensors`` (parameter-sized fp32 state
tensors; fractional for factored state), that is ``(3 + 2 S) * 4`` bytes per fp32 parameter, e.g. 28 B for
AdamW (S = 2), 20 B for SGD with momentum (S = 1). The step counters, the scalar work and any temporaries are
overhead that the ratio exposes; so is the non-finite-gradient check (``nonfinite="skip"``, optimlab's default,
reads every gradient once more: 4 B). The roofline time is those bytes over the measured memory bandwidth: the
faster, in each round, of ``dst.copy_(src)`` between two fp32 buffers of ``--params`` values (8 B per element:
read + write) and ``a.add_(b)`` on two such buffers (12 B per element: two reads, one in-place write, the
access pattern of an in-place optimizer update; a plain copy also pays for write-allocate reads of ``dst``
and often reaches only ~60% of what in-place kernels stream). pytorch_optimizer rows use the byte model of the
optimlab algorithm they are matched with. The adamw rows also include torch's own compiled optimizer
(``torch.compile(torch.optim.AdamW(...).step)``), the like-for-like reference of ``optimlab compiled``.

Robust timing on a small, shared, noisy machine:

* all the candidates of one algorithm (optimlab eager and compiled, pytorch_optimizer, both torch AdamW
  baselines and the bandwidth probes) are interleaved in rounds, the starting candidate rotating from round to
  round, so a burst of load from another process hits them alike; each ratio is the median over rounds of the
  per-round ratio (paired, so slow drifts in machine load cancel). The torch rows at the top of the table are
  the median over all algorithms' rounds;
* ``time.perf_counter`` around whole samples, a warm-up (``--warmup`` steps, after compilation) first.
  ``--clock cpu`` uses ``time.process_time`` instead (CPU time of this process, CPU device only): on a machine
  with more runnable processes than cores, wall time also counts the time this process waits for a core, CPU
  time does not (memory-bandwidth contention still shows in both). Compile time is always wall time;
* ``torch.set_num_threads(--threads)`` (default 1) for everything, the bandwidth probes included: one thread
  gives stable figures next to other processes on a 2-core machine and every candidate gets the same compute;
  the ratios to torch and to the roofline are what matter, not the absolute milliseconds. The previous setting
  is restored on exit.

Closure-requiring algorithms (SAM family, second-order methods) step with a closure that recomputes the
gradients of the quadratic loss sum(c * p**2) / 2 (fixed random c; ``create_graph=True`` where the registry
says ``requires_hvp``): their rows are marked "+ closure", include the closure's forward and backward (once
or more per step, as the algorithm needs), have no roofline ratio, and come with a "closure alone" row, timed
in the same rounds, for scale. An algorithm that fails to build or step on this model (e.g. one whose closure
must return logits) gets an ``error`` row and the run goes on.

Usage::

    PYTHONPATH=src python benchmarks/step_time.py                       # everything, 10M params, 100 tensors
    PYTHONPATH=src python benchmarks/step_time.py --only adamw,lion --rounds 9 --markdown
    PYTHONPATH=src python benchmarks/step_time.py --no-compile --params 1M --tensors 50
"""

from __future__ import annotations

import argparse
import gc
import importlib
import importlib.metadata
import inspect
import math
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

import optimlab
from optimlab.training import capabilities

#: the torch.optim.AdamW hyperparameters of both baselines (optimlab's adamw defaults)
TORCH_ADAMW = dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)
FUSED, LOOP = "torch AdamW fused", "torch AdamW for-loop"


# ----------------------------------------------------------------------------------------------- the model
def model_shapes(total: int, tensors: int) -> list[tuple[int, ...]]:
    """Shapes of ``tensors`` tensors holding about ``total`` values.

    Blocks of four like a transformer MLP: (4d, d) weight, 4d bias, (d, 4d) weight, d bias, with d chosen so
    that the total comes out near ``total``; leftover tensors (``tensors`` not a multiple of 4) are d-vectors.
    """
    if tensors < 1 or total < tensors:
        raise ValueError(f"need 1 <= tensors <= params, got tensors={tensors}, params={total}")
    blocks, extra = divmod(tensors, 4)
    if blocks:  # blocks * (8 d^2 + 5 d) + extra * d = total
        b = 5 * blocks + extra
        d = max(1, round((-b + math.sqrt(b * b + 32 * blocks * total)) / (16 * blocks)))
    else:
        d = max(1, total // extra)
    shapes: list[tuple[int, ...]] = []
    for _ in range(blocks):
        shapes += [(4 * d, d), (4 * d,), (d, 4 * d), (d,)]
    return shapes + [(d,)] * extra


def make_params(total: int, tensors: int, *, seed: int = 0, device: str = "cpu") -> list[torch.Tensor]:
    """The model: fp32 leaf tensors of :func:`model_shapes`, each with a random ``.grad``."""
    gen = torch.Generator().manual_seed(seed)
    params = []
    for shape in model_shapes(total, tensors):
        p = torch.randn(shape, generator=gen).to(device).requires_grad_(True)
        p.grad = torch.randn(shape, generator=gen).to(device)
        params.append(p)
    return params


def bytes_per_param(state_tensors: float) -> float:
    """The byte model: read p, g and S state tensors, write p and S state tensors, 4 bytes each (fp32)."""
    return (3 + 2 * state_tensors) * 4


# ----------------------------------------------------------------------------------------------- candidates
@dataclass
class Candidate:
    """One thing timed: ``run(steps)`` performs ``steps`` steps (or copies)."""

    label: str  # the implementation column
    algorithm: str  # the optimizer column
    bytes_per_step: float  # roofline bytes (bytes moved, for a bandwidth probe)
    build: Callable[[], Callable[[int], None]]  # sets up (params, optimizer) and returns run
    compiled: bool = False
    run: Callable[[int], None] | None = None
    steps: int = 1  # steps per timed sample
    compile_s: float | None = None
    error: str | None = None
    samples: list[float] = field(default_factory=list)  # seconds per step, one per round


def make_closure(params: Sequence[torch.Tensor], *, hvp: bool, seed: int = 1) -> Callable[[], torch.Tensor]:
    """A closure for closure-requiring algorithms: the quadratic loss sum(c * p**2) / 2 with fixed random
    c in [0.5, 1.5), gradients recomputed by backward (``create_graph`` for Hessian-vector products)."""
    gen = torch.Generator().manual_seed(seed)
    coeffs = [(torch.rand(p.shape, generator=gen) + 0.5).to(p.device) * 0.5 for p in params]

    def closure() -> torch.Tensor:
        for p in params:
            p.grad = None
        loss = sum((c * p * p).sum() for c, p in zip(coeffs, params))
        loss.backward(create_graph=hvp)
        return loss

    return closure


def _stepper(opt: torch.optim.Optimizer, closure: Callable[[], torch.Tensor] | None) -> Callable[[int], None]:
    if closure is not None:

        def run(steps: int) -> None:
            for _ in range(steps):
                opt.step(closure)

    else:

        def run(steps: int) -> None:
            for _ in range(steps):
                opt.step()

    return run


def _closure_for(spec, params) -> Callable[[], torch.Tensor] | None:
    needs = capabilities(spec)
    return make_closure(params, hvp=needs.hvp) if needs.closure else None


def _suffix(spec) -> str:
    return " + closure" if capabilities(spec).closure else ""


def closure_candidate(spec, args) -> Candidate:
    """The closure alone (forward + backward of the quadratic), for algorithms whose step calls it."""
    hvp = capabilities(spec).hvp

    def build():
        closure = make_closure(make_params(args.params, args.tensors, device=args.device), hvp=hvp)

        def run(steps: int) -> None:
            with torch.enable_grad():
                for _ in range(steps):
                    closure()

        return run

    label = "closure alone (quadratic fwd+bwd" + (", create_graph)" if hvp else ")")
    return Candidate(label, spec.name, 0.0, build)


def optimlab_candidate(spec, args, *, compiled: bool, nonfinite: str = "skip") -> Candidate:
    label = "optimlab " + ("compiled" if compiled else "eager")
    if nonfinite != "skip":
        label += f", nonfinite={nonfinite}"
    label += _suffix(spec)

    def build():
        params = make_params(args.params, args.tensors, device=args.device)
        options = {"nonfinite": nonfinite}
        if compiled:
            options["compile"] = True
        opt = spec.create(params, **options)
        return _stepper(opt, _closure_for(spec, params))

    return Candidate(label, spec.name, _bytes(spec, args), build, compiled=compiled)


def torch_adamw_candidate(args, *, fused: bool) -> Candidate:
    def build():
        params = make_params(args.params, args.tensors, device=args.device)
        kind = {"fused": True} if fused else {"foreach": False}
        return _stepper(torch.optim.AdamW(params, **TORCH_ADAMW, **kind), None)

    return Candidate(FUSED if fused else LOOP, "adamw", _bytes(optimlab.spec("adamw"), args), build)


def torch_adamw_compiled_candidate(args) -> Candidate:
    """torch.optim.AdamW (default foreach implementation, lr as a tensor) with its ``step`` under ``torch.compile``:
    torch's own compiled optimizer, the like-for-like reference of ``optimlab compiled``."""

    def build():
        params = make_params(args.params, args.tensors, device=args.device)
        hp = {**TORCH_ADAMW, "lr": torch.tensor(TORCH_ADAMW["lr"])}
        step = torch.compile(torch.optim.AdamW(params, **hp).step)

        def run(steps: int) -> None:
            for _ in range(steps):
                step()

        return run

    return Candidate(
        "torch AdamW, torch.compile(step)", "adamw", _bytes(optimlab.spec("adamw"), args), build, compiled=True
    )


def bandwidth_probes(args) -> list[Candidate]:
    """``dst.copy_(src)`` (8 B per element) and in-place ``a.add_(b)`` (12 B per element) on ``--params`` fp32."""

    def build(kind: str):
        a = torch.randn(args.params, device=args.device)
        b = torch.randn(args.params, device=args.device)
        if kind == "copy":
            op = lambda: b.copy_(a)  # noqa: E731
        else:
            b.zero_()  # a += 0: values stay put however often it runs
            op = lambda: a.add_(b)  # noqa: E731

        def run(steps: int) -> None:
            for _ in range(steps):
                op()

        return run

    return [
        Candidate("memory copy_", "", 8.0 * args.params, lambda: build("copy")),
        Candidate("memory add_", "", 12.0 * args.params, lambda: build("add")),
    ]


def pytorch_optimizer_candidate(po, po_name: str, spec, args) -> Candidate:
    cls = po.load_optimizer(po_name)
    version = getattr(po, "__version__", None)
    if not version:
        try:
            version = importlib.metadata.version("pytorch_optimizer")
        except importlib.metadata.PackageNotFoundError:
            version = "?"

    def build():
        params = make_params(args.params, args.tensors, device=args.device)
        accepted = inspect.signature(cls).parameters
        hparams = {k: v for k, v in spec.defaults.items() if k in accepted}
        try:
            opt = cls(params, **hparams)
        except (TypeError, ValueError):  # arguments with other meanings there: its own defaults, our lr
            opt = cls(params, **({"lr": spec.defaults["lr"]} if "lr" in spec.defaults else {}))
        return _stepper(opt, _closure_for(spec, params))

    label = f"pytorch_optimizer {version} ({cls.__name__}){_suffix(spec)}"
    return Candidate(label, spec.name, _bytes(spec, args), build)


def _bytes(spec, args) -> float:
    return bytes_per_param(spec.state_tensors) * _numel(args)


def _numel(args) -> int:
    return sum(math.prod(shape) for shape in model_shapes(args.params, args.tensors))


def load_pytorch_optimizer():
    """The pytorch_optimizer module, or None when it is not installed (the side-by-side rows are skipped)."""
    try:
        return importlib.import_module("pytorch_optimizer")
    except ImportError:
        return None


def _normalise(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "")


def pytorch_optimizer_names(po) -> dict[str, str]:
    """Normalised name -> pytorch_optimizer name, for its own implementations (not re-exported torch.optim)."""
    out = {}
    for name in po.get_supported_optimizers():
        try:
            cls = po.load_optimizer(name)
        except Exception:  # noqa: BLE001 - an optional package; anything it raises means "not available"
            continue
        if not cls.__module__.startswith("torch."):
            out[_normalise(name)] = name
    return out


# ----------------------------------------------------------------------------------------------- timing
def _sync(device: str) -> Callable[[], None]:
    if device.startswith("cuda"):
        return torch.cuda.synchronize
    return lambda: None


class Progress:
    """One status line on stderr (rewritten in place on a terminal)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.width = 0

    def __call__(self, text: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            sys.stderr.write("\r" + text.ljust(self.width))
            self.width = len(text)
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()

    def done(self) -> None:
        if self.tty and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()


def _error(e: Exception) -> str:
    first = str(e).splitlines()[0] if str(e) else ""
    if not first:  # say where it came from instead
        frame = traceback.extract_tb(e.__traceback__)[-1]
        first = f"in {frame.name} ({frame.filename.rsplit('/', 1)[-1]}:{frame.lineno})"
    return f"{type(e).__name__}: {first}"[:200]


def prepare(c: Candidate, args, sync: Callable[[], None], progress: Progress, where: str) -> None:
    """Build, compile (timed), warm up and size the sample of one candidate; errors are recorded, not raised."""
    clock = _clock(args)
    try:
        progress(f"{where} {'compiling' if c.compiled else 'warming up'} {c.label}")
        run = c.build()
        sync()
        t0 = time.perf_counter()
        run(1)  # lazy state (and compilation when compiled)
        sync()
        first = time.perf_counter() - t0
        if c.compiled:
            c.compile_s = first
        t0 = clock()
        run(max(1, args.warmup))
        sync()
        per_step = (clock() - t0) / max(1, args.warmup)
        c.steps = args.steps or max(1, min(50, math.ceil(args.min_sample_ms / 1e3 / max(per_step, 1e-9))))
        c.run = run
    except Exception as e:  # noqa: BLE001 - report and carry on with the others
        c.error, c.run = _error(e), None


def _clock(args) -> Callable[[], float]:
    return time.process_time if args.clock == "cpu" else time.perf_counter


def time_rounds(cands: Sequence[Candidate], args, sync, progress: Progress, where: str) -> None:
    """``--rounds`` rounds; in each, every live candidate runs one sample, the first one rotating."""
    clock = _clock(args)
    live = [c for c in cands if c.run is not None]
    for r in range(args.rounds):
        progress(f"{where} round {r + 1}/{args.rounds}")
        shift = r % max(1, len(live))
        for c in live[shift:] + live[:shift]:
            if c.run is None:
                continue
            try:
                sync()
                t0 = clock()
                c.run(c.steps)
                sync()
                c.samples.append((clock() - t0) / c.steps)
            except Exception as e:  # noqa: BLE001
                c.error, c.run, c.samples = _error(e), None, []


# ----------------------------------------------------------------------------------------------- statistics
def paired_ratio(a: Candidate, b: Candidate) -> float | None:
    """Median over rounds of a's step time over b's (the two measured in the same rounds)."""
    if not a.samples or not b.samples:
        return None
    return statistics.median(x / y for x, y in zip(a.samples, b.samples))


def bandwidths(probes: Sequence[Candidate]) -> list[float]:
    """Bytes per second in each round: the fastest probe of that round."""
    live = [p for p in probes if p.samples]
    return [max(rates) for rates in zip(*[[p.bytes_per_step / t for t in p.samples] for p in live])]


def roofline_ratio(c: Candidate, bandwidth: Sequence[float]) -> float | None:
    """Median over rounds of step time over (bytes / the bandwidth measured in that round)."""
    if not c.samples or not bandwidth or not c.bytes_per_step:
        return None
    return statistics.median(t / (c.bytes_per_step / bw) for t, bw in zip(c.samples, bandwidth))


def spread(samples: Sequence[float]) -> float | None:
    if len(samples) < 2:
        return None
    q = statistics.quantiles(samples, n=4, method="inclusive")
    return (q[2] - q[0]) / statistics.median(samples)


@dataclass
class Row:
    algorithm: str
    label: str
    ms: float | None = None
    vs_fused: float | None = None
    vs_loop: float | None = None
    vs_roof: float | None = None
    bytes_per_param: float | None = None
    compile_s: float | None = None
    spread: float | None = None
    error: str | None = None


COLUMNS = ("optimizer", "implementation", "ms/step", "/ fused", "/ loop", "/ roof", "B/param", "compile s", "spread")


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def row_cells(row: Row) -> list[str]:
    if row.error:  # the message goes below the table
        return [row.algorithm, row.label, "error", *["-"] * (len(COLUMNS) - 3)]
    return [
        row.algorithm,
        row.label,
        _fmt(row.ms, ".2f"),
        _fmt(row.vs_fused, ".2f"),
        _fmt(row.vs_loop, ".2f"),
        _fmt(row.vs_roof, ".2f"),
        _fmt(row.bytes_per_param, "g"),
        _fmt(row.compile_s, ".1f"),
        "-" if row.spread is None else f"{100 * row.spread:.0f}%",
    ]


def format_table(rows: Sequence[Row], markdown: bool) -> str:
    cells = [list(COLUMNS)] + [row_cells(r) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(cells[0]) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
        lines += ["| " + " | ".join(c) + " |" for c in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(c[i]) for c in cells) for i in range(len(COLUMNS))]
    right = set(range(2, len(COLUMNS)))

    def line(c):
        return "  ".join(c[i].rjust(widths[i]) if i in right else c[i].ljust(widths[i]) for i in range(len(c)))

    return "\n".join([line(cells[0]), "  ".join("-" * w for w in widths)] + [line(c) for c in cells[1:]])


# ----------------------------------------------------------------------------------------------- main
def _count(text: str) -> int:
    """'10M', '1.5m', '200k', '1e6' or '1000000' -> int."""
    t = text.strip().lower().replace("_", "")
    scale = {"k": 1e3, "m": 1e6, "g": 1e9}.get(t[-1:], None)
    value = float(t[:-1]) * scale if scale else float(t)
    return int(value)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--params", type=_count, default=10_000_000, help="total parameter count (10M, 500k, ...)")
    ap.add_argument("--tensors", type=int, default=100, help="number of parameter tensors (default 100)")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved timing rounds; the median is reported")
    ap.add_argument("--steps", type=int, default=0, help="steps per sample (default: enough for --min-sample-ms)")
    ap.add_argument("--min-sample-ms", type=float, default=50.0, help="target length of one sample (auto --steps)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps after the first (compiling) one")
    ap.add_argument("--only", default="", help="comma-separated algorithm names (default: all registered)")
    ap.add_argument("--no-compile", action="store_true", help="skip the compile=True rows")
    ap.add_argument(
        "--propagate",
        default="adamw",
        help="algorithms also timed with nonfinite='propagate', to show the cost of the NaN/Inf check\n"
        "(comma-separated, 'all' or 'none'; default adamw)",
    )
    ap.add_argument("--no-pytorch-optimizer", action="store_true", help="skip pytorch_optimizer even if installed")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads for the whole run (default 1)")
    ap.add_argument("--device", default="cpu", help="device of the model (default cpu)")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall: time.perf_counter (default); cpu: time.process_time, for machines with more\n"
        "runnable processes than cores (CPU device only)",
    )
    ap.add_argument("--markdown", action="store_true", help="print a Markdown table")
    ap.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be >= 1")
    if args.clock == "cpu" and args.device != "cpu":
        ap.error("--clock cpu measures host CPU time: use it with --device cpu")
    return args


def _names(text: str, known: Sequence[str]) -> list[str]:
    if text.strip().lower() == "all":
        return list(known)
    if text.strip().lower() in ("", "none"):
        return []
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown algorithm(s) {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def run_benchmark(args: argparse.Namespace, out=None) -> list[Row]:
    out = out or sys.stdout
    known = optimlab.available()
    algorithms = _names(args.only, known) if args.only else list(known)
    propagate = set(_names(args.propagate, known))
    po = None if args.no_pytorch_optimizer else load_pytorch_optimizer()
    po_names = pytorch_optimizer_names(po) if po is not None else {}
    sync = _sync(args.device)
    progress = Progress(not args.quiet)

    adamw_bytes = bytes_per_param(optimlab.spec("adamw").state_tensors)
    # per-round figures of the torch baselines, gathered over every algorithm's rounds
    base: dict[str, dict[str, list[float]]] = {label: {"ms": [], "other": [], "roof": []} for label in (FUSED, LOOP)}
    base_errors: dict[str, str] = {}
    probe_rates: dict[str, list[float]] = {}
    rows: list[Row] = []
    for i, name in enumerate(algorithms):
        where = f"[{i + 1}/{len(algorithms)} {name}]"
        spec = optimlab.spec(name)
        fused, loop = torch_adamw_candidate(args, fused=True), torch_adamw_candidate(args, fused=False)
        probes = bandwidth_probes(args)
        cands = [optimlab_candidate(spec, args, compiled=False)]
        if name in propagate:
            cands.append(optimlab_candidate(spec, args, compiled=False, nonfinite="propagate"))
        if not args.no_compile:
            cands.append(optimlab_candidate(spec, args, compiled=True))
            if name in propagate:
                cands.append(optimlab_candidate(spec, args, compiled=True, nonfinite="propagate"))
            if name == "adamw":
                cands.append(torch_adamw_compiled_candidate(args))
        for key in (_normalise(spec.name), _normalise(spec.cls.__name__)):
            if key in po_names:
                cands.append(pytorch_optimizer_candidate(po, po_names[key], spec, args))
                break
        if capabilities(spec).closure:
            cands.append(closure_candidate(spec, args))
        everything = cands + [fused, loop, *probes]
        for c in everything:
            prepare(c, args, sync, progress, where)
        time_rounds(everything, args, sync, progress, where)
        bandwidth = bandwidths(probes)
        for c in cands:
            rows.append(_row(c, fused, loop, bandwidth, args))
        for c, other in ((fused, loop), (loop, fused)):
            if c.error:
                base_errors.setdefault(c.label, c.error)
            base[c.label]["ms"] += c.samples
            base[c.label]["other"] += [x / y for x, y in zip(c.samples, other.samples)]
            base[c.label]["roof"] += [t * bw / c.bytes_per_step for t, bw in zip(c.samples, bandwidth)]
        for p in probes:
            probe_rates.setdefault(p.label, []).extend(p.bytes_per_step / t for t in p.samples)
        del everything, cands, fused, loop, probes
        gc.collect()
    progress.done()

    header = []
    for label in (FUSED, LOOP):  # the torch rows: medians over every algorithm's rounds
        figures = base[label]
        row = Row("adamw", label, bytes_per_param=adamw_bytes)
        if figures["ms"]:
            row.ms = 1e3 * statistics.median(figures["ms"])
            row.spread = spread(figures["ms"])
            to_other = statistics.median(figures["other"]) if figures["other"] else None
            row.vs_fused, row.vs_loop = (1.0, to_other) if label == FUSED else (to_other, 1.0)
            row.vs_roof = statistics.median(figures["roof"]) if figures["roof"] else None
        else:
            row.error = base_errors.get(label, "not run")
        header.append(row)
    rows = header + rows

    print(
        f"optimizer step time: {_numel(args):,} fp32 params in {args.tensors} tensors, device {args.device}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), {args.rounds} rounds, "
        f"{'CPU' if args.clock == 'cpu' else 'wall'} time",
        file=out,
    )
    rates = ", ".join(f"{label} {statistics.median(r) / 1e9:.1f} GB/s" for label, r in probe_rates.items() if r)
    print(f"memory bandwidth: {rates or '-'}; roofline = (3 + 2*state_tensors) * 4 B/param", file=out)
    if po is None and not args.no_pytorch_optimizer:
        print("pytorch_optimizer is not installed: no side-by-side rows (pip install pytorch_optimizer)", file=out)
    print(file=out)
    print(format_table(rows, args.markdown), file=out)
    errors = [f"- {r.algorithm}, {r.label}: {r.error}" for r in rows if r.error]
    if errors:
        print("\nerrors:", *errors, sep="\n", file=out)
    summary = summarise(rows)
    if summary:
        print(file=out)
        print("\n".join(summary), file=out)
    return rows


def _row(c: Candidate, fused: Candidate, loop: Candidate, bandwidth: Sequence[float], args) -> Row:
    row = Row(c.algorithm, c.label, compile_s=c.compile_s, error=c.error)
    if c.error:
        return row
    row.ms = 1e3 * statistics.median(c.samples)
    row.vs_fused = paired_ratio(c, fused)
    row.vs_loop = paired_ratio(c, loop)
    if c.bytes_per_step and not c.label.endswith("closure"):  # a closure's model work has no byte model
        row.vs_roof = roofline_ratio(c, bandwidth)
        row.bytes_per_param = c.bytes_per_step / _numel(args)
    row.spread = spread(c.samples)
    return row


def summarise(rows: Sequence[Row]) -> list[str]:
    """The project's speed goals for AdamW and the cost of the NaN/Inf check, where those rows were run."""
    by = {(r.algorithm, r.label): r for r in rows if not r.error}
    lines = []
    eager, comp = by.get(("adamw", "optimlab eager")), by.get(("adamw", "optimlab compiled"))
    if eager and eager.vs_loop is not None:
        verdict = "met" if eager.vs_loop <= 1.2 else "MISSED"
        lines.append(f"goal eager optimlab AdamW <= 1.2x torch for-loop AdamW: {eager.vs_loop:.2f}x ({verdict})")
    if comp and comp.vs_fused is not None:
        verdict = "met" if comp.vs_fused <= 1.3 else "MISSED"
        lines.append(f"goal compiled optimlab AdamW <= 1.3x torch fused AdamW: {comp.vs_fused:.2f}x ({verdict})")
    for r in rows:
        if r.error or not r.label.endswith("nonfinite=propagate"):
            continue
        base = by.get((r.algorithm, r.label.replace(", nonfinite=propagate", "")))
        if base and base.vs_loop and r.vs_loop:
            cost = base.vs_loop / r.vs_loop - 1
            mode = r.label.split(",")[0].removeprefix("optimlab ")
            lines.append(f"NaN/Inf check (nonfinite='skip' vs 'propagate'), {r.algorithm} {mode}: {100 * cost:+.1f}%")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        with warnings.catch_warnings():
            # expected: the closures of Hessian-based algorithms call backward(create_graph=True)
            warnings.filterwarnings("ignore", message=r"Using backward\(\) with create_graph=True")
            run_benchmark(args)
    finally:
        torch.set_num_threads(threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
