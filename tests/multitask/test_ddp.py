"""Jacobian descent under DistributedDataParallel (2 processes, gloo, CPU, spawned once for the module): with one
all-reduce of the per-task gradients per step, every rank's parameters equal the single-process run on the global
batch, for UPGrad and for PCGrad (identically seeded generators)."""

from __future__ import annotations

import socket

import pytest
import torch
from torch import nn

from optimlab.multitask import PCGrad, UPGrad, jacobian_backward

STEPS = 3
WORLD = 2


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.trunk = nn.Sequential(nn.Linear(5, 8), nn.Tanh())
        self.heads = nn.ModuleList([nn.Linear(8, 1) for _ in range(3)])

    def forward(self, x):
        z = self.trunk(x)
        return torch.cat([h(z) for h in self.heads], dim=1)


def _losses(out, y):
    return ((out - y) ** 2).mean(0)  # one mean-squared error per task


def _batch(step):
    g = torch.Generator().manual_seed(step)
    x = torch.randn(16, 5, generator=g, dtype=torch.float64)
    return x, torch.stack([x[:, 0], -x[:, 0] + x[:, 1], x[:, 2] * 3], dim=1)


def _aggregators():
    return {"upgrad": UPGrad(), "pcgrad": PCGrad(torch.Generator().manual_seed(5))}


def _train(model, name, agg, rank=None, ddp=None):
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    inner = model.module if ddp else model
    for step in range(STEPS):
        x, y = _batch(step)
        if rank is not None:
            x, y = x[rank * 8 : (rank + 1) * 8], y[rank * 8 : (rank + 1) * 8]
        opt.zero_grad()
        if ddp:
            with model.no_sync():
                losses = _losses(model(x), y)
        else:
            losses = _losses(model(x), y)
        jacobian_backward(
            losses, inner.trunk.parameters(), agg, task_params=inner.heads.parameters(), all_reduce=rank is not None
        )
        opt.step()
    return [p.detach().clone() for p in inner.parameters()]


def _worker(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    calls = []
    original = dist.all_reduce

    def counting_all_reduce(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    dist.all_reduce = counting_all_reduce
    result = {}
    for name, agg in _aggregators().items():
        before = len(calls)
        result[name] = _train(DDP(Model().double()), name, agg, rank=rank, ddp=True)
        result[f"{name}_all_reduces"] = torch.tensor(len(calls) - before)
    dist.all_reduce = original
    torch.save(result, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("multitask_ddp")
    torch.multiprocessing.spawn(_worker, args=(WORLD, _free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


@pytest.mark.parametrize("name", ["upgrad", "pcgrad"])
def test_ddp_aggregation_equals_single_process(ddp_results, name):
    single = _train(Model().double(), name, _aggregators()[name])
    for r in ddp_results:
        assert int(r[f"{name}_all_reduces"]) == STEPS  # one collective per step
        for p, q in zip(r[name], single):
            torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-13)
