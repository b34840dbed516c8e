"""W8 ``lstm_adding``: the adding problem for an LSTM, long-range credit assignment.

Hochreiter & Schmidhuber (1997), *Long Short-Term Memory*, experiment 4: a sequence of T pairs (value ~ U[0, 1],
marker); exactly two markers are 1, one in each half; the target is the sum of the two marked values. A model
that ignores the markers gets MSE ≈ 1/6 (predicting 1). Training sees a long plateau, then a sudden escape.
Fresh batches every step (from the run seed); a fixed test set of 1,000 sequences from the data seed.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from ._base import Budget, Task, Workload, generator


def adding_batch(n: int, length: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    values = torch.rand(n, length, generator=gen)
    half = length // 2
    first = torch.randint(0, half, (n,), generator=gen)
    second = torch.randint(half, length, (n,), generator=gen)
    markers = torch.zeros(n, length)
    rows = torch.arange(n)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)
    y = values[rows, first] + values[rows, second]
    return x, y


@functools.lru_cache(maxsize=4)
def test_set(n: int, length: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    return adding_batch(n, length, torch.Generator().manual_seed(seed))


class LstmRegressor(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.lstm = nn.LSTM(2, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1]).squeeze(-1)


class LstmAdding(Workload):
    id = "lstm_adding"
    title = "LSTM adding problem"
    stresses = "long-range credit assignment: long plateau, then a sudden escape; recurrent weights"
    data_source = "generated adding problem, T = 50 (fresh batches; fixed 1000-example test set)"
    model_desc = "LSTM (H = 64) + linear (~17.5k parameters)"
    metric = "test MSE"
    higher_is_better = False
    metric_scale = "log"
    target = 0.00273
    provisional = False
    batch_size = 64
    budget = Budget(step_hint=1300, max_steps=2000, eval_every=50)
    explosion_factor = 1e3
    length, hidden = 50, 64

    def data_arrays(self, smoke: bool = False):
        x, y = test_set(1000, self.length, self.data_seed)
        return {"x_test": x, "y_test": y}

    def _build(self, seed: int, smoke: bool, device: torch.device) -> Task:
        length = 8 if smoke else self.length
        x_test, y_test = test_set(64 if smoke else 1000, length, self.data_seed)
        x_test, y_test = x_test.to(device), y_test.to(device)
        model = LstmRegressor(self.hidden)
        gen = generator(seed, 1)

        def next_batch():
            x, y = adding_batch(self.batch_size, length, gen)
            return x.to(device), y.to(device)

        def loss_fn(m, batch):
            x, y = batch
            return F.mse_loss(m(x), y)

        def eval_fn(m):
            return float(F.mse_loss(m(x_test), y_test))

        types = {"lstm.weight_ih_l0": "matrix_hidden", "lstm.weight_hh_l0": "matrix_hidden", "head.weight": "head"}
        return Task(model, next_batch, loss_fn, eval_fn, types)
