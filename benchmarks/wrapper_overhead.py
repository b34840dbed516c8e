"""Step time of each optimizer wrapper relative to its own base optimizer, measured in the same run.

    PYTHONPATH=src python benchmarks/wrapper_overhead.py [--steps 20] [--repeats 7] [--width 512]

A "step" is a whole training step: the closure's forward and backward passes plus the optimizer update, on a
small MLP classifier (LayerNorm inside, so SAM-ON has normalization parameters). The wrapper and its base
(the record's default base with the same arguments) alternate in blocks of ``--steps`` steps, ``--repeats``
times; the table reports the median time per step of each and the median of the per-block ratios. Expected:
≈ 2× for the two-pass methods (two forward/backward passes per step; AMP with N inner steps: N + 1), ≈ 1× for
⊥Grad and SAF (one pass; SAF adds a softmax/KL per example). These machines are noisy: compare ratios from one
run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import optimlab
from optimlab.wrappers.imbsam import split_losses
from optimlab.wrappers.saf import TrajectoryLoss
from optimlab.wrappers.sam import norm_layer_param_groups

WRAPPERS = ["sam", "asam", "usam", "sam_on", "fsam", "imbsam", "amp", "fdgr", "fdgr_backward", "orthograd", "saf"]
EXPECTED = {"orthograd": "≈1×", "saf": "≈1×", "imbsam": "≈2.5× (3 backward)"}


def make_model(width: int, classes: int = 10) -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, width),
        torch.nn.LayerNorm(width),
        torch.nn.GELU(),
        torch.nn.Linear(width, width),
        torch.nn.LayerNorm(width),
        torch.nn.GELU(),
        torch.nn.Linear(width, classes),
    )


def base_of(name: str) -> tuple[str, dict]:
    spec = optimlab.spec(name)
    own = set(spec.cls.hyperparameters) | {"base"}
    return spec.defaults["base"], {k: v for k, v in spec.defaults.items() if k not in own}


def build(name: str, width: int, batch: int):
    """(wrapper step fn, base step fn, base name) for one wrapper; each fn runs one training step."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 64, generator=g)
    y = torch.randint(0, 10, (batch,), generator=g)
    idx = torch.arange(batch)
    tail = torch.tensor([7, 8, 9])
    wrapped_model, base_model = make_model(width), make_model(width)
    if name == "saf":
        base_name, base_kwargs = "sgd", dict(optimlab.spec("sgd").defaults)
        opt = optimlab.create(base_name, wrapped_model.parameters(), **base_kwargs)
        traj = TrajectoryLoss(batch, 10, start_epoch=-1, delay=1)
        traj(torch.zeros(batch, 10), idx, 0)
        epoch = [1]

        def closure():
            opt.zero_grad()
            logits = wrapped_model(x)
            loss = F.cross_entropy(logits, y) + traj(logits, idx, epoch[0])
            epoch[0] += 1
            loss.backward()
            return loss

        wrapped = lambda: opt.step(closure)  # noqa: E731
    else:
        base_name, base_kwargs = base_of(name)
        params = norm_layer_param_groups(wrapped_model) if name == "sam_on" else wrapped_model.parameters()
        opt = optimlab.create(name, params)
        if name == "imbsam":

            def closure():
                return split_losses(F.cross_entropy(wrapped_model(x), y, reduction="none"), torch.isin(y, tail))

        else:

            def closure():
                opt.zero_grad()
                loss = F.cross_entropy(wrapped_model(x), y)
                loss.backward()
                return loss

        wrapped = lambda: opt.step(closure)  # noqa: E731
    base = optimlab.create(base_name, base_model.parameters(), **base_kwargs)

    def base_closure():
        base.zero_grad()
        loss = F.cross_entropy(base_model(x), y)
        loss.backward()
        return loss

    return wrapped, (lambda: base.step(base_closure)), base_name


def timed(fn, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="wrapper step time relative to its base optimizer")
    parser.add_argument("--steps", type=int, default=20, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=7, help="alternating blocks per optimizer")
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default="", help="comma-separated subset of " + ",".join(WRAPPERS))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = [n for n in args.only.split(",") if n] or WRAPPERS
    print(
        f"MLP 64-{args.width}-{args.width}-10 with LayerNorm, batch {args.batch}, {args.threads} thread(s), "
        f"{args.repeats} x {args.steps} steps per optimizer, torch {torch.__version__}\n"
    )
    header = f"{'wrapper':<14} {'base':<6} {'wrapper ms':>10} {'base ms':>8} {'ratio':>6}  expected"
    print(header)
    print("-" * len(header))
    for name in names:
        wrapped, base, base_name = build(name, args.width, args.batch)
        for fn in (wrapped, base):  # warm-up
            timed(fn, 3)
        w_times, b_times, ratios = [], [], []
        for _ in range(args.repeats):
            w, b = timed(wrapped, args.steps), timed(base, args.steps)
            w_times.append(w)
            b_times.append(b)
            ratios.append(w / b)
        expected = EXPECTED.get(name, "≈2×" if name != "amp" else "≈2× (N=1)")
        print(
            f"{name:<14} {base_name:<6} {1e3 * statistics.median(w_times):>10.2f} "
            f"{1e3 * statistics.median(b_times):>8.2f} {statistics.median(ratios):>6.2f}  {expected}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
