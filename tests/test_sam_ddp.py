"""SAM under DistributedDataParallel (2 processes, gloo, CPU): ``no_sync`` on the first pass equals a
single-process m-sharpness run with one micro-batch per worker; a GradScaler overflow on one worker's local
first pass is seen by every worker; and the example script runs."""

from __future__ import annotations

import os
import socket

import torch
import torch.nn.functional as F

from optimlab.wrappers.sam import SAM
from tests import _distributed as D

HP = dict(lr=0.1, momentum=0.9, rho=0.2)
STEPS = 3


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _model(dtype=torch.float64):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).to(dtype)


def _batch(step: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(step)
    return torch.randn(16, 5, generator=g, dtype=dtype), torch.randint(0, 3, (16,), generator=g)


def _worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    result = {}
    # 1. SAM with a local first pass
    model = DDP(_model())
    opt = SAM(model.parameters(), **HP)
    for step in range(STEPS):
        x, y = _batch(step)
        xs, ys = x[rank * 8 : (rank + 1) * 8], y[rank * 8 : (rank + 1) * 8]

        def closure(xs=xs, ys=ys):
            opt.zero_grad()
            loss = F.cross_entropy(model(xs), ys)
            loss.backward()
            return loss

        opt.step(closure, no_sync=model)
    result["params"] = [p.detach().clone() for p in model.parameters()]
    # 2. a GradScaler overflow in worker 1's local first pass: every worker skips the step and lowers the scale
    model = DDP(_model(torch.float32))
    opt = SAM(model.parameters(), **HP)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    before = [p.detach().clone() for p in model.parameters()]
    x, y = _batch(0, torch.float32)
    calls = []

    def scaled_closure():
        opt.zero_grad()
        loss = F.cross_entropy(model(x[rank * 8 : (rank + 1) * 8]), y[rank * 8 : (rank + 1) * 8])
        scaler.scale(loss).backward()
        if rank == 1 and not calls:
            next(model.parameters()).grad.view(-1)[0] = float("inf")
        calls.append(1)
        return loss

    opt.step(scaled_closure, scaler=scaler, no_sync=model)
    scaler.update()
    result["unchanged"] = all(torch.equal(p.detach(), b) for p, b in zip(model.parameters(), before))
    result["scale"] = scaler.get_scale()
    torch.save(result, os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


def test_ddp_no_sync_first_pass_equals_m_sharpness_and_overflow_is_agreed(tmp_path):
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    # the single-process run: m-sharpness with the two workers' halves as micro-batches
    model = _model()
    opt = SAM(model.parameters(), **HP)
    for step in range(STEPS):
        x, y = _batch(step)
        opt.step(
            lambda k, x=x, y=y: F.cross_entropy(model(x[k * 8 : (k + 1) * 8]), y[k * 8 : (k + 1) * 8]).backward(),
            micro_batches=2,
        )
    for r in results:
        for p, q in zip(r["params"], model.parameters()):
            torch.testing.assert_close(p, q.detach(), rtol=1e-12, atol=1e-14)
    assert all(r["unchanged"] for r in results)
    assert results[0]["scale"] == results[1]["scale"] < 2.0**10


def test_the_sam_amp_ddp_example_runs():
    out = D.run_example("sam_amp_ddp.py", "--steps", "4", "--batch-size", "32", timeout=120)
    assert "replicas identical: True" in out
