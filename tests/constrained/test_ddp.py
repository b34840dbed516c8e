"""Constrained learning under DistributedDataParallel (2 processes, gloo, CPU, spawned once for the module): the
per-sample multipliers of each rank's shard live on that rank and are never communicated, the batch-level ones are
kept equal through the averaged violations, and the 2-process run equals one process on the whole batch (model,
every multiplier, ρ), for simultaneous GDA with Adam + νPI and for extragradient."""

from __future__ import annotations

import socket

import pytest
import torch
import torch.nn.functional as F

from optimlab import constrained as C

N_PER_RANK, LOCAL_BATCH, STEPS, WORLD = 8, 4, 5, 2
METHODS = ("simultaneous", "extragradient")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data():
    g = torch.Generator().manual_seed(0)
    n = N_PER_RANK * WORLD
    return torch.randn(n, 5, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)).double()


def _local_indices(step: int, rank: int) -> torch.Tensor:
    """The examples of rank ``rank``'s shard in the batch of step ``step`` (indices local to the shard)."""
    return torch.randperm(N_PER_RANK, generator=torch.Generator().manual_seed(1000 * step + rank))[:LOCAL_BATCH]


def _setup(model, num_samples, method):
    form = C.AugmentedLagrangian(
        [C.Constraint("sample", size=num_samples, per_sample=True, init=0.5), C.Constraint("margin", size=3)],
        penalty=0.5,
        dtype=torch.float64,
    )
    primal = torch.optim.Adam(model.parameters(), lr=0.05)
    dual = C.NuPI(form.dual_parameters(), lr=0.5, kp=0.5, ki=1.0, ema_nu=0.5, maximize=True)
    pd = C.PrimalDual(form, primal, dual, method=method, penalty_schedule=C.PenaltySchedule(growth=1.5, every=2))
    return form, pd


def _closure(model, x, y, idx):
    def closure():
        logits = model(x)
        losses = F.cross_entropy(logits, y, reduction="none")
        return losses.mean(), {
            "sample": C.Violation(losses - 0.8, idx),
            "margin": logits.mean(0) - 0.05,  # batch-level: the mean logit of each class ≤ 0.05
        }

    return closure


def _worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    x_all, y_all = _data()
    shard = slice(rank * N_PER_RANK, (rank + 1) * N_PER_RANK)
    x_shard, y_shard = x_all[shard], y_all[shard]
    result = {}
    for method in METHODS:
        model = DDP(_model())
        form, pd = _setup(model, N_PER_RANK, method)  # this rank's examples only
        for step in range(STEPS):
            idx = _local_indices(step, rank)
            pd.step(_closure(model, x_shard[idx], y_shard[idx], idx))
        result[method] = {
            "params": [p.detach().clone() for p in model.module.parameters()],
            "formulation": form.state_dict(),
        }
    torch.save(result, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def ddp_results(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    torch.multiprocessing.spawn(_worker, args=(_free_port(), str(out)), nprocs=WORLD, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]


def _single_process(method):
    x_all, y_all = _data()
    model = _model()
    form, pd = _setup(model, N_PER_RANK * WORLD, method)
    for step in range(STEPS):
        idx = torch.cat([_local_indices(step, r) + r * N_PER_RANK for r in range(WORLD)])
        pd.step(_closure(model, x_all[idx], y_all[idx], idx))
    return model, form


@pytest.mark.parametrize("method", METHODS)
def test_two_processes_equal_one(ddp_results, method):
    model, form = _single_process(method)
    for rank, result in enumerate(ddp_results):
        r = result[method]
        for p, q in zip(r["params"], model.parameters()):
            torch.testing.assert_close(p, q.detach(), rtol=1e-12, atol=1e-13)
        shard = slice(rank * N_PER_RANK, (rank + 1) * N_PER_RANK)
        torch.testing.assert_close(r["formulation"]["multipliers.sample"], form.multipliers["sample"].detach()[shard])
        torch.testing.assert_close(r["formulation"]["multipliers.margin"], form.multipliers["margin"].detach())
        torch.testing.assert_close(r["formulation"]["penalty"], form.penalty)
    assert r["formulation"]["multipliers.sample"].shape == (N_PER_RANK,)  # each rank holds its shard's multipliers
    assert float(form.penalty.max()) > 0.5 and float(form.multipliers["margin"].detach().abs().max()) > 0
