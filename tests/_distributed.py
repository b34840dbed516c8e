"""What the 2-process tests share (tests/test_fsdp2.py, tests/test_ddp.py): the model, the batches, the settings
that make the tiny model exercise each rule's matrix / projected / quantized path, one training step for any
optimizer (closure or not), and one spawn of 2 gloo processes per test module."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.multiprocessing as mp

import optimlab
from optimlab.training import capabilities, train_step

STEPS = 20
WORLD = 2
#: settings that make the small model exercise each rule's matrix / projected / quantized path
ENGAGE = {
    "galore": dict(rank=4, update_proj_gap=5),
    "galore_dct": dict(rank=4, update_proj_gap=5),
    "coap": dict(rank=4, update_proj_gap=5),
    "online_subspace_descent": dict(rank=4),
    "adamw_sn": dict(rank=4, update_proj_gap=5),
    "adamw_snsm": dict(rank=4, update_proj_gap=5),
    "adamw_8bit": dict(block_size=64, min_8bit_size=64),
    "lion_8bit": dict(block_size=64, min_8bit_size=64),
    "soap": dict(precondition_frequency=3),
    # fp32 Newton-Schulz: the default bf16 iteration turns the all-reduce's 1e-8 rounding into ~7e-4 after 20 steps
    "muon": dict(ns_dtype="float32"),
    "scion": dict(ns_dtype="float32"),
    # parameter-free: a first move large enough that their step sizes grow within the run
    "dog": dict(reps_rel=1e-3),
    "ldog": dict(reps_rel=1e-3),
    "dowg": dict(reps_rel=1e-3),
    "prodigy": dict(d0=1e-3),
    "dadapt_adam": dict(d0=1e-3),
}
#: learning rates of the rules whose paper defaults are far from 1e-2 (Scion's lr·scale is its step length)
LR = {name: None for name in ("scion", "muon", "dog", "ldog", "dowg", "prodigy", "dadapt_adam")}


def hyperparameters(name: str) -> dict[str, Any]:
    """The test's settings of a registered algorithm: lr 1e-2 (or its paper default) and :data:`ENGAGE`."""
    hp = dict(ENGAGE.get(name, {}))
    lr = LR.get(name, 1e-2)
    if lr is not None:
        hp["lr"] = lr
    return hp


def tolerance(name: str) -> float:
    """Max |Δ| from one process after :data:`STEPS`: shard-local (elementwise) rules see the all-reduce's rounding
    only; rules computed on the whole matrix (projections, eigenbases, Newton-Schulz, bf16 state) amplify it."""
    return 1e-6 if getattr(optimlab.spec(name).cls, "shard_local", True) else 1e-4


def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.Tanh(), torch.nn.Linear(32, 8))


def batch(step: int, rank: int | None = None, world: int = WORLD) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of 8 of ``step``, or rank ``rank``'s contiguous part of it."""
    g = torch.Generator().manual_seed(step)
    x, y = torch.randn(8, 16, generator=g), torch.randn(8, 8, generator=g)
    if rank is None:
        return x, y
    n = 8 // world
    return x[rank * n : (rank + 1) * n], y[rank * n : (rank + 1) * n]


def full_value(t: torch.Tensor) -> torch.Tensor:
    """A (possibly DTensor) tensor as a full, detached copy."""
    return (t.full_tensor() if hasattr(t, "full_tensor") else t).detach().clone()


def full(model: torch.nn.Module) -> list[torch.Tensor]:
    """The parameters as full (unsharded) tensors."""
    return [full_value(p) for p in model.parameters()]


def max_delta(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    return max(float((u - v).abs().max()) if u.numel() else 0.0 for u, v in zip(a, b, strict=True))


def global_mean(loss: torch.Tensor) -> torch.Tensor:
    """A loss whose value is the mean over the ranks and whose gradient is this rank's own (DDP and FSDP average
    the gradients themselves): what a closure owes optimizers that use the loss value (SANIA's Polyak step)."""
    import torch.distributed as dist

    total = loss.detach().clone()
    dist.all_reduce(total)
    return loss + (total / dist.get_world_size() - loss.detach())


def step(
    opt: torch.optim.Optimizer, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, parallel: bool = False
) -> None:
    """One training step of any optimizer on the mean squared error (per-sample mean, so data-parallel ranks
    average to the global batch's loss; ``parallel``: the loss value is the global one, :func:`global_mean`).
    ImbSAM's head/tail split: even rows are head, odd rows tail."""
    if capabilities(opt).head_tail:
        from optimlab.wrappers.imbsam import split_losses

        tail = torch.arange(x.shape[0]) % 2 == 1
        opt.step(lambda: split_losses(((model(x) - y) ** 2).mean(dim=1), tail))
        return

    def loss_fn():
        out = model(x)
        loss = torch.nn.functional.mse_loss(out, y)
        return (global_mean(loss) if parallel else loss), out

    train_step(opt, loss_fn)


def reference(name: str, steps: int = STEPS) -> list[torch.Tensor]:
    """The single-process run on the global batches."""
    net = model()
    opt = optimlab.create(name, net.parameters(), **hyperparameters(name))
    for t in range(steps):
        step(opt, net, *batch(t))
    return full(net)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, worker: Callable, port: int, out: str, args: tuple) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD, timeout=timedelta(seconds=300)
    )
    try:
        results = worker(rank, *args)
    finally:
        dist.destroy_process_group()
    torch.save(results, f"{out}.{rank}")


def spawn(worker: Callable, out: str, *args: Any) -> list[Any]:
    """Run ``worker(rank, *args)`` (a module-level function) in 2 gloo processes; return each rank's result."""
    mp.spawn(_entry, args=(worker, free_port(), out, args), nprocs=WORLD)
    return [torch.load(f"{out}.{rank}", weights_only=False) for rank in range(WORLD)]


def guarded(fn: Callable[[], Any]) -> Any:
    """``fn()``, or its exception as ``"Type: message"`` (reported per case by the test)."""
    try:
        return fn()
    except Exception as err:
        return f"{type(err).__name__}: {err}"


def run_example(script: str, *args: str, timeout: int = 300) -> str:
    """Run ``examples/<script>`` with this checkout's sources in a fresh process; its stdout (it must succeed)."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), os.environ.get("PYTHONPATH", "")])}
    argv = [sys.executable, str(root / "examples" / script), *args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout
