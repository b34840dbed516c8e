"""Train a small classifier with SAM + mixed precision (bf16 autocast, GradScaler) + DistributedDataParallel on
CPU (gloo), one process per worker.

    python examples/sam_amp_ddp.py                 # 2 workers, 60 steps
    python examples/sam_amp_ddp.py --steps 5 --world-size 2

What each piece does:

* ``opt.step(closure, scaler=scaler, no_sync=ddp_model)`` runs SAM's first pass under ``ddp_model.no_sync()``:
  every worker perturbs the weights with its *local* gradient (m-sharpness with m = the local batch, as in
  Foret et al.), and only the second pass (the gradient at w + ε) is all-reduced, so every worker takes the
  same base step and the replicas stay identical.
* The closure scales the loss (``scaler.scale(loss).backward()``); the wrapper unscales each pass exactly once
  and skips the step on every worker if any worker's pass overflowed. Call ``scaler.update()`` after the step.
  (bf16 has fp32's exponent range, so a GradScaler is optional with bf16; it is what fp16 on GPU needs, and
  the code is the same.)
"""

from __future__ import annotations

import argparse
import os
import socket
import sys

# torch 2.13's oneDNN can crash (SIGILL) on bf16 matrix multiplies on some CPUs; this cap avoids it and is
# harmless elsewhere. It must be set before torch is imported (the workers inherit it).
os.environ.setdefault("ONEDNN_MAX_CPU_ISA", "AVX512_CORE_BF16")

import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.multiprocessing as mp  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

try:
    import optimlab
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    import optimlab


def make_data(n: int = 2048, dim: int = 20, classes: int = 4, seed: int = 0):
    """A fixed synthetic classification task: labels from a random teacher network, 10% flipped."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    teacher = torch.nn.Sequential(torch.nn.Linear(dim, 32), torch.nn.Tanh(), torch.nn.Linear(32, classes))
    with torch.no_grad():
        for p in teacher.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
        y = teacher(x).argmax(1)
    flip = torch.rand(n, generator=g) < 0.1
    y[flip] = torch.randint(0, classes, (int(flip.sum()),), generator=g)
    return x, y


def make_model(dim: int = 20, classes: int = 4, seed: int = 1) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(dim, 64), torch.nn.LayerNorm(64), torch.nn.GELU(), torch.nn.Linear(64, classes)
    )


def worker(rank: int, args: argparse.Namespace, port: int) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=args.world_size)
    x, y = make_data()
    model = DDP(make_model())
    opt = optimlab.SAM(model.parameters(), base="sgd", rho=args.rho, lr=args.lr, momentum=0.9)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.steps)
    g = torch.Generator().manual_seed(1234)  # the same batch order on every worker; each takes its own slice
    local = args.batch_size // args.world_size
    for step in range(args.steps):
        batch = torch.randint(0, x.shape[0], (args.batch_size,), generator=g)
        mine = batch[rank * local : (rank + 1) * local]
        xb, yb = x[mine], y[mine]

        def closure(xb=xb, yb=yb):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = F.cross_entropy(model(xb), yb)
            scaler.scale(loss).backward()
            return loss.detach().float()

        loss = opt.step(closure, scaler=scaler, no_sync=model)
        scaler.update()
        sched.step()
        dist.all_reduce(loss)
        if rank == 0 and (step % max(1, args.steps // 10) == 0 or step == args.steps - 1):
            print(f"step {step:4d}  loss {loss.item() / args.world_size:.4f}  scale {scaler.get_scale():g}", flush=True)
    # the replicas must be identical: compare a checksum of the parameters across workers
    flat = torch.cat([p.detach().flatten() for p in model.parameters()]).double()
    sums = [torch.zeros(2, dtype=torch.float64) for _ in range(args.world_size)]
    dist.all_gather(sums, torch.stack([flat.sum(), (flat * flat).sum()]))
    with torch.no_grad():
        acc = (model.module(x).argmax(1) == y).double().mean().item()
    if rank == 0:
        same = all(torch.equal(s, sums[0]) for s in sums)
        print(f"final loss {loss.item() / args.world_size:.4f}  train accuracy {acc:.3f}  replicas identical: {same}")
        if not same:
            raise SystemExit("replicas diverged")
    dist.destroy_process_group()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128, help="global batch, split over the workers")
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--rho", type=float, default=0.05)
    args = parser.parse_args(argv)
    mp.spawn(worker, args=(args, free_port()), nprocs=args.world_size, join=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
