"""Train a small MLP with FSDP2 (``fully_shard``) and Muon routed by role, checkpoint it with
torch.distributed.checkpoint (DCP) halfway, and resume from the checkpoint in fresh processes' state: the resumed
run ends on exactly the parameters of the uninterrupted one. CPU, gloo, one process per worker.

    python examples/fsdp2_muon.py                       # 2 workers, 40 steps
    python examples/fsdp2_muon.py --steps 6 --world-size 2

What each piece does:

* ``optimlab.param_groups(model, weight_decay, matrix_optimizer="muon")`` routes the hidden matrices to Muon and
  the head and the vectors (biases) to its AdamW fallback (Jordan et al. 2024; Liu et al. 2025, arXiv:2502.16982).
* Under FSDP2 each parameter is a DTensor holding one shard. Muon's Newton-Schulz needs the whole matrix, so
  optimlab gathers it (one all-gather of the parameter and one of its gradient per matrix and step), updates the
  full matrix with full momentum on every rank and keeps the local shard; the AdamW fallback updates shards.
* ``get_state_dict`` / ``set_state_dict`` + ``dcp.save`` / ``dcp.load`` checkpoint the sharded model and the
  optimizer state (step counters, momenta) without gathering them on one rank.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
import torch.multiprocessing as mp
from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
from torch.distributed.fsdp import fully_shard

try:
    import optimlab
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    import optimlab


def make_model(dim: int = 16, hidden: int = 32, out: int = 4) -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(dim, hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.Tanh(),
        torch.nn.Linear(hidden, out),
    )
    for layer in model:
        if isinstance(layer, torch.nn.Linear):
            fully_shard(layer)
    return fully_shard(model)


def make_optimizer(model: torch.nn.Module, lr: float) -> torch.optim.Optimizer:
    return optimlab.Muon(optimlab.param_groups(model, 0.01, matrix_optimizer="muon"), lr=lr)


def batch(step: int, rank: int, world: int, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch of ``step`` (the same on every worker); each worker takes its own slice."""
    g = torch.Generator().manual_seed(step)
    x = torch.randn(size, 16, generator=g)
    y = torch.sin(x[:, :4]) + 0.1 * torch.randn(size, 4, generator=g)
    local = size // world
    return x[rank * local : (rank + 1) * local], y[rank * local : (rank + 1) * local]


def train(model, opt, start: int, stop: int, rank: int, world: int, log: bool = False) -> None:
    for step in range(start, stop):
        x, y = batch(step, rank, world)
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        if log and rank == 0 and (step % max(1, stop // 5) == 0 or step == stop - 1):
            print(f"step {step:3d}  loss (rank 0's batch) {loss.item():.4f}", flush=True)


def full_params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.full_tensor().detach().clone() for p in model.parameters()]


def worker(rank: int, args: argparse.Namespace, port: int, checkpoint: str) -> None:
    torch.set_num_threads(1)
    world = args.world_size
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    half = args.steps // 2

    model = make_model()
    opt = make_optimizer(model, args.lr)
    train(model, opt, 0, half, rank, world, log=True)
    model_sd, optim_sd = get_state_dict(model, opt)
    dcp.save({"model": model_sd, "optim": optim_sd}, checkpoint_id=checkpoint)
    if rank == 0:
        print(f"checkpoint saved at step {half}: {checkpoint}", flush=True)
    train(model, opt, half, args.steps, rank, world, log=True)
    uninterrupted = full_params(model)

    resumed_model = make_model()  # fresh model and optimizer, as after a restart
    resumed_opt = make_optimizer(resumed_model, args.lr)
    model_sd, optim_sd = get_state_dict(resumed_model, resumed_opt)
    state = {"model": model_sd, "optim": optim_sd}
    dcp.load(state, checkpoint_id=checkpoint)
    set_state_dict(resumed_model, resumed_opt, model_state_dict=state["model"], optim_state_dict=state["optim"])
    train(resumed_model, resumed_opt, half, args.steps, rank, world)
    same = torch.tensor(float(all(torch.equal(a, b) for a, b in zip(uninterrupted, full_params(resumed_model)))))
    dist.all_reduce(same, op=dist.ReduceOp.MIN)
    if rank == 0:
        print(f"resumed run identical to the uninterrupted one: {bool(same)}", flush=True)
    dist.destroy_process_group()
    if not bool(same):
        raise SystemExit("the resumed run diverged")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--lr", type=float, default=0.02)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        mp.spawn(worker, args=(args, free_port(), os.path.join(tmp, "ckpt")), nprocs=args.world_size, join=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
