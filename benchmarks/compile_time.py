"""Cold compile time and warm step time of ``compile=True`` for several sizes of the compiled calls.

Each variant runs in a fresh process with inductor's caches off (``TORCHINDUCTOR_FX_GRAPH_CACHE=0``,
``TORCHINDUCTOR_AUTOGRAD_CACHE=0``, a new empty ``TORCHINDUCTOR_CACHE_DIR``, compilation in-process with
``TORCHINDUCTOR_COMPILE_THREADS=1``). It builds the step_time.py model (``--tensors`` tensors, ``--params`` fp32
values, a transformer-like mix of 4 shapes), times the first step of ``optimlab.create(--algorithm,
compile=True)`` (the compilation: wall seconds, and CPU seconds with the C++ compiler's processes), then the warm
step interleaved with torch's fused AdamW in ``--rounds`` rounds (CPU time, one thread) and prints the median of
the per-round ratios, the fastest warm step (ms, CPU) and the compiled calls per step (at small ``--params`` the
step is their overhead: its difference between two variants over their difference in calls is the cost of a
call). The knob is ``optimlab.optim._compiled.CHUNK``: same-shape tensors per compiled call (0: the
whole bucket in one call, one graph unrolled over every tensor, as before chunking). The "floor" row is a one-op
graph compiled cold in a fresh process: the fixed cost of a first compilation (inductor's start-up, the C++
compiler's first run), which no choice of CHUNK removes.

Usage::

    PYTHONPATH=src python benchmarks/compile_time.py                      # every variant, AdamW, 10M / 100
    PYTHONPATH=src python benchmarks/compile_time.py --variants whole,chunk1 --params 1e4   # the cost of a call
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

#: name -> CHUNK (tensors of one shape per compiled call; 0: the whole bucket in one call, main's loop before)
VARIANTS = {"whole": 0, "chunk16": 16, "chunk8": 8, "chunk4": 4, "chunk1": 1}


def _cpu_with_children() -> float:
    """CPU seconds of this process and its finished children (the C++ compiler runs as a child)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def child(args: argparse.Namespace) -> dict:
    """One variant, in this (fresh) process: cold compile seconds and the warm ratio to fused AdamW."""
    import torch

    import optimlab
    from optimlab.optim import _compiled

    sys.path.insert(0, os.path.dirname(__file__))
    from step_time import TORCH_ADAMW, make_params

    torch.set_num_threads(1)
    if args.child == "floor":  # the fixed cost of a first compilation in a fresh process: a one-op graph
        x = torch.zeros(8)
        wall, cpu = time.perf_counter(), _cpu_with_children()
        torch.compile(lambda t: t.add_(1))(x)
        return dict(cold_wall=time.perf_counter() - wall, cold_cpu=_cpu_with_children() - cpu)
    _compiled.CHUNK = VARIANTS[args.child]
    params = make_params(args.params, args.tensors)
    opt = optimlab.create(args.algorithm, params, compile=True)
    wall, cpu = time.perf_counter(), _cpu_with_children()
    opt.step()
    cold_wall, cold_cpu = time.perf_counter() - wall, _cpu_with_children() - cpu
    fused = torch.optim.AdamW(make_params(args.params, args.tensors), **TORCH_ADAMW, fused=True)
    for o in (opt, fused, opt, fused):
        o.step()
    ratios, own = [], []
    for _ in range(args.rounds):
        times = []
        for o in (opt, fused):
            t0 = time.process_time()
            for _ in range(args.steps):
                o.step()
            times.append((time.process_time() - t0) / args.steps)
        ratios.append(times[0] / times[1])
        own.append(times[0] * 1e3)
    calls = len(_compiled.chunks(params))
    return dict(cold_wall=cold_wall, cold_cpu=cold_cpu, ratio=statistics.median(ratios), ms=min(own), calls=calls)


def run_variant(name: str, args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(
            os.environ,
            TORCHINDUCTOR_FX_GRAPH_CACHE="0",
            TORCHINDUCTOR_AUTOGRAD_CACHE="0",
            TORCHINDUCTOR_CACHE_DIR=cache,
            TORCHINDUCTOR_COMPILE_THREADS="1",
        )
        argv = [sys.executable, __file__, "--child", name, "--algorithm", args.algorithm]
        argv += ["--params", str(args.params), "--tensors", str(args.tensors)]
        argv += ["--rounds", str(args.rounds), "--steps", str(args.steps)]
        out = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if out.returncode:
            return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"rc {out.returncode}"}
        return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--algorithm", default="adamw", help="registered algorithm (default adamw)")
    ap.add_argument("--params", type=float, default=10e6, help="total fp32 values (default 10M)")
    ap.add_argument("--tensors", type=int, default=100, help="parameter tensors (default 100)")
    ap.add_argument("--rounds", type=int, default=7, help="interleaved warm rounds (default 7)")
    ap.add_argument("--steps", type=int, default=5, help="steps per warm sample (default 5)")
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    args.params = int(args.params)
    if args.child:
        print(json.dumps(child(args)))
        return 0
    print(f"{args.algorithm}, compile=True, {args.params:,} fp32 values in {args.tensors} tensors, inductor caches off")
    columns = f"{'cold wall s':>11} {'cold CPU s':>10} {'warm / fused':>12} {'ms/step':>8} calls"
    print(f"{'variant':8} {'CHUNK':>5} {columns}")
    for name in ["floor", *args.variants.split(",")]:
        r = run_variant(name, args)
        knobs = f"{name:8} {VARIANTS.get(name, '-')!s:>5}"
        if "error" in r:
            print(f"{knobs} error: {r['error']}")
            continue
        warm = f"{r['ratio']:12.2f} {r['ms']:8.2f} {r['calls']:5}" if "ratio" in r else f"{'(one-op graph)':>14}"
        print(f"{knobs} {r['cold_wall']:11.1f} {r['cold_cpu']:10.1f} {warm}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
