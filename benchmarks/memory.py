"""Memory benchmark: optimizer-state bytes, peak RSS, loss and step time of the memory-efficient optimizers, each as a
ratio to AdamW measured in the same run.

Workloads (download-free, CPU-sized):

* ``mlp``: a 512-wide MLP (256 → 512 → 512 → 10, GELU) classifying Gaussian inputs labelled by a fixed random
  teacher network, batches of 128;
* ``charlm``: a small character-level transformer defined here (2 pre-norm blocks, d_model 128, 4 heads, MLP 512,
  context 64) trained on next-character prediction over this repository's own ``src/`` Python files (so the corpus,
  and the charlm losses, change with the source tree; compare rows of one run, as the ratios do).

For every (workload, optimizer) a fresh child process builds the model, runs one forward/backward, records its
resident set size (``VmRSS`` in /proc/self/status), resets the peak counter (writing 5 to /proc/self/clear_refs,
Linux ≥ 4.0), trains N steps, and reports ``VmHWM - VmRSS_before``: the peak extra memory of training with that
optimizer (its state plus its temporaries; the model, data and gradients are already counted in the baseline). Where
the counter cannot be reset the column shows the child's whole peak RSS (``ru_maxrss``) instead, marked "*". State
bytes are measured by :func:`optimlab.state_bytes` and checked against the registry's analytic formula per parameter
(the run fails if they differ). Loss is the mean training loss over the last 10% of steps; step time is the median
wall time of ``optimizer.step()``.

    PYTHONPATH=src python benchmarks/memory.py --steps 200 [--markdown] [--workloads mlp,charlm] [--optimizers ...]

Projected optimizers and Subspace-Momentum run at rank ⌊min(m, n)/4⌋ per matrix (``rank_fraction=0.25``); everything
else uses the registry's defaults (the papers'), with the lr overrides listed in ``LR``.
"""

from __future__ import annotations

import argparse
import math
import multiprocessing as mp
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")

DEFAULT_OPTIMIZERS = (
    "adamw",
    "galore",
    "galore_dct",
    "online_subspace_descent",
    "coap",
    "adamw_sn",
    "adamw_snsm",
    "adafactor",
    "adamw_bf16",
    "adamw_8bit",
    "lion",
    "lion_bf16",
    "lion_8bit",
)
PROJECTED = {"galore", "galore_dct", "online_subspace_descent", "coap"}
#: learning rates used here (one setting for both workloads; not tuned per optimizer)
LR = {
    "adamw": 1e-3,
    "galore": 1e-2,
    "galore_dct": 1e-2,
    "online_subspace_descent": 1e-2,
    "coap": 1e-2,
    "adamw_sn": 1e-2,  # the authors' README: about 10x AdamW's lr (the step is shared over a subset's norm)
    "adamw_snsm": 1e-2,
    "adafactor": 1e-2,
    "adamw_bf16": 1e-3,
    "adamw_8bit": 1e-3,
    "lion": 1e-4,
    "lion_bf16": 1e-4,
    "lion_8bit": 1e-4,
}


# ----------------------------------------------------------------------------- workloads
def _mlp(torch, seed: int):
    g = torch.Generator().manual_seed(seed)
    n, d_in, classes = 4096, 256, 10
    x = torch.randn(n, d_in, generator=g)
    teacher = [torch.randn(d_in, 64, generator=g) / 16, torch.randn(64, classes, generator=g) / 8]
    y = (torch.tanh(x @ teacher[0]) @ teacher[1]).argmax(dim=1)
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(d_in, 512),
        torch.nn.GELU(),
        torch.nn.Linear(512, 512),
        torch.nn.GELU(),
        torch.nn.Linear(512, classes),
    )

    def batch(step: int):
        idx = torch.randint(0, n, (128,), generator=torch.Generator().manual_seed(seed * 100_003 + step))
        return x[idx], y[idx]

    def loss_fn(m, b):
        return torch.nn.functional.cross_entropy(m(b[0]), b[1])

    return model, batch, loss_fn


def _charlm(torch, seed: int):
    nn = torch.nn
    files = sorted((ROOT / "src").rglob("*.py"))
    text = "\n".join(f.read_text() for f in files)
    chars = sorted(set(text))
    data = torch.tensor([chars.index(c) for c in text], dtype=torch.long)
    vocab, ctx, width, heads = len(chars), 64, 128, 4

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(width), nn.LayerNorm(width)
            self.qkv, self.proj = nn.Linear(width, 3 * width), nn.Linear(width, width)
            self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))

        def forward(self, h):
            b, t, _ = h.shape
            q, k, v = self.qkv(self.ln1(h)).split(width, dim=2)
            q, k, v = (z.view(b, t, heads, width // heads).transpose(1, 2) for z in (q, k, v))
            a = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
            h = h + self.proj(a.transpose(1, 2).reshape(b, t, width))
            return h + self.mlp(self.ln2(h))

    class CharLM(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(vocab, width), nn.Embedding(ctx, width)
            self.blocks = nn.Sequential(Block(), Block())
            self.ln, self.head = nn.LayerNorm(width), nn.Linear(width, vocab)

        def forward(self, idx):
            h = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
            return self.head(self.ln(self.blocks(h)))

    torch.manual_seed(seed)
    model = CharLM()

    def batch(step: int):
        g = torch.Generator().manual_seed(seed * 100_003 + step)
        starts = torch.randint(0, len(data) - ctx - 1, (32,), generator=g)
        x = torch.stack([data[s : s + ctx] for s in starts])
        y = torch.stack([data[s + 1 : s + ctx + 1] for s in starts])
        return x, y

    def loss_fn(m, b):
        logits = m(b[0])
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), b[1].reshape(-1))

    return model, batch, loss_fn


WORKLOADS = {"mlp": _mlp, "charlm": _charlm}


# ----------------------------------------------------------------------------- one measured run (child process)
def _status_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def run_one(workload: str, name: str, steps: int, threads: int, seed: int) -> dict:
    import torch

    import optimlab

    torch.set_num_threads(threads)
    model, batch, loss_fn = WORKLOADS[workload](torch, seed)
    spec = optimlab.spec(name)
    overrides = {"lr": LR.get(name, spec.defaults.get("lr", 1e-3))}
    if name in PROJECTED or name == "adamw_snsm":
        overrides["rank_fraction"] = 0.25
    params = [p for p in model.parameters() if p.requires_grad]
    loss_fn(model, batch(0)).backward()  # gradients exist in the baseline
    opt = spec.create(params, **overrides)
    baseline = _status_kib("VmRSS")
    reset = _reset_peak()

    losses, times = [], []
    for step in range(steps):
        opt.zero_grad(set_to_none=False)
        loss = loss_fn(model, batch(step))
        loss.backward()
        t0 = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t0)
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            break
    peak = _status_kib("VmHWM") if reset else None
    rss = (peak - baseline) / 1024 if (peak is not None and baseline is not None) else None
    if rss is None:
        rss_total = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    measured = optimlab.state_bytes_by_param(opt)
    hp = {**spec.defaults, **overrides}
    analytic = [spec.state_bytes(tuple(p.shape), p.dtype, **hp) for p in params]
    tail = losses[-max(1, len(losses) // 10) :]
    return {
        "workload": workload,
        "optimizer": name,
        "params": sum(p.numel() for p in params),
        "state_bytes": sum(measured),
        "formula_ok": measured == analytic,
        "rss_mib": rss if rss is not None else rss_total,
        "rss_is_delta": rss is not None,
        "loss": sum(tail) / len(tail),
        "step_ms": statistics.median(times[min(5, len(times) - 1) :]) * 1e3,
    }


def _child(queue, *args) -> None:
    try:
        queue.put(run_one(*args))
    except Exception as exc:  # report instead of hanging the parent
        queue.put({"error": f"{type(exc).__name__}: {exc}"})


def measure(workload: str, name: str, steps: int, threads: int, seed: int) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, workload, name, steps, threads, seed))
    proc.start()
    result = queue.get()
    proc.join()
    if "error" in result:
        raise RuntimeError(f"{workload}/{name}: {result['error']}")
    return result


# ----------------------------------------------------------------------------- table
def table(rows: list[dict], markdown: bool) -> str:
    head = [
        "workload",
        "optimizer",
        "state MiB",
        "state ÷ AdamW",
        "formula",
        "peak ΔRSS MiB",
        "ΔRSS ÷ AdamW",
        "loss",
        "loss ÷ AdamW",
        "step ms",
        "time ÷ AdamW",
    ]
    base = {r["workload"]: r for r in rows if r["optimizer"] == "adamw"}
    body = []
    for r in rows:
        b = base.get(r["workload"])

        def ratio(key, r=r, b=b):
            return f"{r[key] / b[key]:.2f}" if b and b[key] else "n/a"

        star = "" if r["rss_is_delta"] else "*"
        body.append(
            [
                r["workload"],
                r["optimizer"],
                f"{r['state_bytes'] / 2**20:.2f}",
                ratio("state_bytes"),
                "ok" if r["formula_ok"] else "MISMATCH",
                f"{r['rss_mib']:.1f}{star}",
                ratio("rss_mib"),
                f"{r['loss']:.4f}",
                ratio("loss"),
                f"{r['step_ms']:.2f}",
                ratio("step_ms"),
            ]
        )
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return "\n".join(lines)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*row) for row in [head, *body])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--workloads", default="mlp,charlm")
    ap.add_argument("--optimizers", default=",".join(DEFAULT_OPTIMIZERS))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--markdown", action="store_true")
    args = ap.parse_args(argv)
    names = [n for n in args.optimizers.split(",") if n]
    if "adamw" not in names:
        names.insert(0, "adamw")
    rows = []
    for workload in args.workloads.split(","):
        for name in names:
            rows.append(measure(workload, name, args.steps, args.threads, args.seed))
            print(f"  {workload}/{name}: done", file=sys.stderr)
    print(table(rows, args.markdown))
    bad = [f"{r['workload']}/{r['optimizer']}" for r in rows if not r["formula_ok"]]
    if bad:
        print(f"measured state bytes differ from the analytic formula: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
