"""Print, for every registered optimizer, the max |Δ| of its parameters after 20 steps from the single-process eager
run: under FSDP2, DDP, ZeroRedundancyOptimizer, after a DCP reshard (saved on 2 ranks, continued on 1 process;
2 -> 1 -> 2 ranks is checked bit-exact), under ``torch.compile(opt.step)`` and a compiled training step; then the
communication per step of the gather strategy (rules with ``shard_local = False``) relative to AdamW under FSDP2.

    PYTHONPATH=src python scripts/distributed_parity.py            # ~15 min on 2 CPU cores
    PYTHONPATH=src python scripts/distributed_parity.py --no-compile

The runs are the tests' (tests/_distributed.py, tests/test_fsdp2.py, tests/test_ddp.py,
tests/test_compile_training.py): 2 gloo processes, a 16-32-8 MLP, batches of 8. "err" cells are errors
(listed below the table), "-" cells are cases that do not apply (closure-based rules: no no_sync / ZeRO / compile).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from tests import _distributed as D  # noqa: E402
from tests import test_compile_training as C  # noqa: E402
from tests import test_ddp as TD  # noqa: E402
from tests import test_fsdp2 as TF  # noqa: E402

import optimlab  # noqa: E402
from optimlab.training import capabilities  # noqa: E402

COLUMNS = ("FSDP2", "DDP", "no_sync", "ZeRO", "reshard 2→1", "2→1→2", "compile(step)", "compile(train_step)")


def _worker(rank: int, directory: str, names: tuple[str, ...]) -> dict:
    ddp = TD._worker(rank, names)
    out: dict = {}
    for name in names:
        row = {"FSDP2": D.guarded(lambda name=name: TF._parity(name, rank))}
        if rank == 0:
            row.update(
                {"DDP": ddp[name].get("ddp"), "no_sync": ddp[name].get("no_sync"), "ZeRO": ddp[name].get("zero")}
            )
        got = D.guarded(lambda name=name: TF._dcp_reshard(name, rank, directory))
        if rank == 0:
            bad = isinstance(got, str)
            row.update({"reshard 2→1": got if bad else got["one_rank"], "2→1→2": got if bad else got["back"]})
        out[name] = row
    return out


def _compiled(name: str) -> dict:
    def make(params):
        return optimlab.create(name, params, **D.hyperparameters(name))

    eager = C.run(make, "eager")
    row = {}
    for mode in ("step", "train_step"):
        torch._dynamo.reset()
        row[f"compile({mode})"] = D.guarded(lambda mode=mode: D.max_delta(C.run(make, mode), eager))
    return row


def communication(world: int = 2) -> str:
    """Bytes each rank receives per step per fp32 parameter of N elements, in units of N·4·(W−1)/W: FSDP2 moves 3
    (all-gather in forward, again in backward, reduce-scatter of the gradient); the gather strategy adds 2
    (all-gather of the parameter and of the gradient; writing the shard back is local), and a flag all-reduce."""
    return (
        "communication per step and gathered parameter (units of N·4 bytes·(W−1)/W; W = world size):\n"
        "  AdamW (shard-local) under FSDP2: 3 (forward all-gather, backward all-gather, gradient reduce-scatter)\n"
        "  gather strategy (Muon, Shampoo, SOAP, PSGD, GaLore, 8-bit, ...): 3 + 2 (parameter + gradient all-gather)"
        " = 5, i.e. 1.67× AdamW's step for those parameters;\n"
        "  plus, per step, one all-reduce of one flag per parameter (the global non-finite decision).\n"
        "  The full-matrix update runs redundantly on every rank, and its state is full (W× the state of a shard)."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("names", nargs="*", help="registered names (default: all)")
    args = parser.parse_args(argv)
    names = tuple(args.names or optimlab.available())
    unknown = sorted(set(names) - set(optimlab.available()))
    if unknown:
        parser.error(f"not registered: {', '.join(unknown)}")
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        rows = D.spawn(_worker, f"{tmp}/results", tmp, names)[0]
    if not args.no_compile:
        for name, row in rows.items():
            cls = optimlab.spec(name).cls
            if getattr(cls, "shard_local", True) and not capabilities(optimlab.spec(name)).closure:
                row.update(_compiled(name))
    errors = []
    print("| optimizer | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for name, row in rows.items():
        cells = []
        for col in COLUMNS:
            v = row.get(col)
            if isinstance(v, str):
                errors.append(f"{name} {col}: {v[:160]}")
            cells.append("-" if v is None else "err" if isinstance(v, str) else f"{v:.1e}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\n".join(["", "errors:", *errors, "", communication()]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
