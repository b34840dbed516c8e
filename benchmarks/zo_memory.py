"""MeZO's memory vs AdamW fine-tuning of the same GPT-2: peak extra resident memory of a training step.

Malladi et al. (2023), arXiv:2305.17333, claim that MeZO (:class:`optimlab.zo.ZOSGD`) fine-tunes with the memory
of inference. For each method a fresh child process builds the same GPT-2 from its config (no download; default
4 layers, d_model 256, vocabulary 2,048, context 128, batch 8), records its resident set size (``VmRSS``), resets
the peak counter (writing 5 to /proc/self/clear_refs, Linux ≥ 4.0), runs the steps and reports
``VmHWM − VmRSS_before``: the peak memory the method adds on top of the model (activations, gradients, optimizer
state, temporaries). Methods: ``inference`` (forward passes under ``torch.no_grad()``, the floor), ``mezo``
(ZOSGD, two-sided, n = 1) and ``adamw`` (forward, backward, ``torch.optim.AdamW``). Where the counter cannot be
reset the child's whole peak RSS (``ru_maxrss``) is reported instead, marked "*".

    PYTHONPATH=src python benchmarks/zo_memory.py [--steps 5] [--layers 4] [--width 256]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

METHODS = ("inference", "mezo", "adamw")


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def child(method: str, steps: int, layers: int, width: int) -> dict:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from optimlab import zo

    torch.set_num_threads(1)
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=2048, n_positions=128, n_embd=width, n_layer=layers, n_head=4,
                        bos_token_id=0, eos_token_id=0)  # fmt: skip
    model = GPT2LMHeadModel(config)
    model.train(False)
    ids = torch.randint(0, 2048, (8, 128), generator=torch.Generator().manual_seed(1))
    params = sum(p.numel() for p in model.parameters())
    before = _status_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        exact = True
    except OSError:
        exact = False
    if method == "inference":
        for _ in range(steps):
            with torch.no_grad():
                model(input_ids=ids, labels=ids)
    elif method == "mezo":
        opt = zo.ZOSGD(model.parameters(), lr=1e-6, eps=1e-3)
        for _ in range(steps):
            opt.step(lambda: model(input_ids=ids, labels=ids).loss)
    else:
        opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
        for _ in range(steps):
            opt.zero_grad(set_to_none=False)
            model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
    peak = _status_kib("VmHWM") - before if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"method": method, "extra_mib": peak / 1024, "exact": exact, "params": params, "baseline_mib": before / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--child", choices=METHODS)
    a = parser.parse_args()
    if a.child:
        print(json.dumps(child(a.child, a.steps, a.layers, a.width)))
        return
    rows = {}
    for method in METHODS:
        cmd = [sys.executable, __file__, "--child", method, "--steps", str(a.steps), "--layers", str(a.layers),
               "--width", str(a.width)]  # fmt: skip
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        rows[method] = json.loads(out)
    r0 = rows["adamw"]
    size = r0["params"] * 4 / 2**20
    print(f"GPT-2 {a.layers} layers, width {a.width}: {r0['params'] / 1e6:.2f}M parameters ({size:.1f} MiB fp32)")
    print(f"model-only RSS {r0['baseline_mib']:.0f} MiB; {a.steps} steps per method")
    print(f"{'method':<10} {'peak extra MiB':>15} {'× AdamW':>8}")
    for method, r in rows.items():
        mark = "" if r["exact"] else "*"
        print(f"{method:<10} {r['extra_mib']:>14.1f}{mark} {r['extra_mib'] / r0['extra_mib']:>8.2f}")


if __name__ == "__main__":
    main()
