"""Step time of every registered optimizer, against torch.optim's AdamW and the memory roofline.

For each algorithm in ``optimlab.available()`` this times ``optimizer.step()`` on a model of ``--tensors``
parameter tensors holding ``--params`` fp32 values in all (default 100 tensors, 10M values; a transformer-like
mix: per block a (4d, d) weight, a 4d bias, a (d, 4d) weight and a d bias), with random gradients filled in
beforehand, eager and ``compile=True``; other libraries' versions of the same algorithm (pytorch_optimizer,
HeavyBall, torch-optimi, bitsandbytes, where installed; matched by name, see ``_peers.py``) run beside it. It prints:

* ms/step: median over ``--rounds`` rounds of the mean step time of one sample (``--steps`` steps);
* ``/ fused``, ``/ loop``: step time over torch.optim.AdamW with ``fused=True`` / ``foreach=False``, same
  hyperparameters as optimlab's ``adamw`` record (lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 1e-2);
* ``/ roof``: step time over the memory-roofline time of the algorithm (see the byte model below);
* compile s: wall time of the first compiled step (compilation; excluded from ms/step). A row whose graph an
  earlier row already compiled (same class and shapes, e.g. ``nonfinite="propagate"``) shows ~0;
* spread: interquartile range of the rounds over their median (how noisy the figure is);
* ``/ peer``: an optimlab row's step time over the fastest peer implementation of the same algorithm in the same
  rounds (the other libraries' rows; for AdamW also torch's fused, for-loop and compiled AdamW), named in the
  summary below the table.

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

* all the candidates of one algorithm (optimlab eager and compiled, the peers, both torch AdamW
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
import math
import statistics
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

import optimlab
from optimlab.training import capabilities

if str(Path(__file__).resolve().parent) not in sys.path:  # _peers.py beside this script, also when loaded by path
    sys.path.insert(0, str(Path(__file__).resolve().parent))
import _peers  # noqa: E402
from _report import (  # noqa: E402, F401
    COLUMNS,
    Row,
    bandwidths,
    fastest,
    format_table,
    paired_ratio,
    roofline_ratio,
    row_cells,
    spread,
    summarise,
)

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
    peer: bool = False  # another implementation of the same algorithm (the ``/ peer`` column's reference)
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

    return Candidate(FUSED if fused else LOOP, "adamw", _bytes(optimlab.spec("adamw"), args), build, peer=True)


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
        "torch AdamW, torch.compile(step)",
        "adamw",
        _bytes(optimlab.spec("adamw"), args),
        build,
        compiled=True,
        peer=True,
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


def peer_candidate(peer: _peers.Peer, spec, args) -> Candidate:
    """Another library's implementation of ``spec``'s algorithm (see ``_peers``)."""

    def build():
        params = make_params(args.params, args.tensors, device=args.device)
        closure = _closure_for(spec, params)
        step = _stepper(_peers.build_peer(peer, spec, params), closure)
        return step if closure is not None else _peers.keeping_grads(step, params)

    label = peer.label + _suffix(spec)
    return Candidate(label, spec.name, _bytes(spec, args), build, compiled=peer.compiles, peer=True)


def _bytes(spec, args) -> float:
    return bytes_per_param(spec.state_tensors) * _numel(args)


def _numel(args) -> int:
    return sum(math.prod(shape) for shape in model_shapes(args.params, args.tensors))


#: loads one peer library by import name (None when it is not installed); the tests replace it
load_library = _peers.load_library


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
    ap.add_argument(
        "--peers",
        default=",".join(_peers.LIBRARIES),
        help="other libraries timed beside optimlab, where installed (comma-separated import names or 'none';\n"
        f"default {','.join(_peers.LIBRARIES)})",
    )
    ap.add_argument(
        "--heavyball-compile-mode",
        default="",
        help="torch.compile mode of HeavyBall's peers (default: HeavyBall's own, max-autotune-no-cudagraphs,\n"
        "over 15 minutes per optimizer on a small CPU machine); 'none' steps them eagerly",
    )
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
    wanted = [n.strip() for n in args.peers.split(",") if n.strip() and n.strip().lower() != "none"]
    loaded = _peers.load_libraries(wanted, load_library)
    libraries = {name: lib for name, lib in loaded.items() if lib is not None}
    if args.heavyball_compile_mode and "heavyball" in libraries:
        _peers.set_heavyball_compile_mode(args.heavyball_compile_mode)
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
        cands += [peer_candidate(peer, spec, args) for peer in _peers.find_peers(spec, libraries)]
        if capabilities(spec).closure:
            cands.append(closure_candidate(spec, args))
        everything = cands + [fused, loop, *probes]
        for c in everything:
            prepare(c, args, sync, progress, where)
        time_rounds(everything, args, sync, progress, where)
        bandwidth = bandwidths(probes)
        best = fastest([c for c in cands if c.peer] + ([fused, loop] if name == "adamw" else []))
        for c in cands:
            rows.append(_row(c, fused, loop, bandwidth, args, None if c.peer else best))
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
    missing = [name for name, lib in loaded.items() if lib is None]
    if missing:
        print(f"not installed (no side-by-side rows): {', '.join(missing)}", file=out)
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


def _row(c, fused, loop, bandwidth: Sequence[float], args, peer: Candidate | None = None) -> Row:
    row = Row(c.algorithm, c.label, compile_s=c.compile_s, error=c.error)
    if c.error:
        return row
    row.ms = 1e3 * statistics.median(c.samples)
    row.vs_fused = paired_ratio(c, fused)
    row.vs_loop = paired_ratio(c, loop)
    if peer is not None:
        row.vs_peer, row.peer = paired_ratio(c, peer), peer.label
    if c.bytes_per_step and not c.label.endswith("closure"):  # a closure's model work has no byte model
        row.vs_roof = roofline_ratio(c, bandwidth)
        row.bytes_per_param = c.bytes_per_step / _numel(args)
    row.spread = spread(c.samples)
    return row


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
