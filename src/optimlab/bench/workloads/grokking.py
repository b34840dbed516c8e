"""W9 ``grok_modadd``: grokking (a + b) mod 97 with an MLP on learned embeddings.

Power et al. (2022), *Grokking: Generalization Beyond Overfitting on Small Algorithmic Datasets*: on modular
arithmetic a network first memorizes the training pairs, and only much later (with weight decay) generalizes.
The optimizer strongly changes the grokking time. Data: all 97² pairs, a fixed half for training (data seed),
full-batch training; the metric is accuracy on the other half. Model: a shared embedding of the two operands,
concatenated, one ReLU hidden layer, a linear head.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from ._base import Budget, Task, Workload, mark_head

P = 97


@functools.lru_cache(maxsize=2)
def pairs(seed: int, train_fraction: float) -> dict[str, torch.Tensor]:
    a, b = torch.meshgrid(torch.arange(P), torch.arange(P), indexing="ij")
    x = torch.stack([a.flatten(), b.flatten()], dim=1)
    y = (x[:, 0] + x[:, 1]) % P
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_train = int(train_fraction * len(x))
    tr, te = perm[:n_train], perm[n_train:]
    return {"x": x[tr], "y": y[tr], "x_test": x[te], "y_test": y[te]}


class ModAddMlp(nn.Module):
    def __init__(self, embed: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(P, embed)
        self.hidden = nn.Linear(2 * embed, hidden)
        self.head = nn.Linear(hidden, P)

    def forward(self, x):
        return self.head(F.relu(self.hidden(self.embed(x).flatten(1))))


class GrokModAdd(Workload):
    id = "grok_modadd"
    title = "Grokking (a + b) mod 97"
    stresses = "delayed generalization; weight decay"
    data_source = "generated: all (a, b) pairs mod 97, 50% for training, full batch"
    model_desc = "embedding(32) ×2 → ReLU MLP 128 → 97 (~24k parameters)"
    metric = "test accuracy"
    provides_logits = True
    higher_is_better = True
    metric_scale = "linear"
    target = 0.965
    provisional = False
    batch_size = None
    budget = Budget(step_hint=800, max_steps=1200, eval_every=50)
    explosion_factor = 100.0
    embed, hidden, train_fraction = 32, 128, 0.5

    def data_arrays(self, smoke: bool = False):
        return pairs(self.data_seed, self.train_fraction)

    def _build(self, seed: int, smoke: bool, device: torch.device) -> Task:
        data = {k: v.to(device) for k, v in pairs(self.data_seed, self.train_fraction).items()}
        x, y = data["x"], data["y"]
        if smoke:
            x, y = x[:512], y[:512]
        model = ModAddMlp(self.embed, self.hidden)

        def logits_fn(m, _batch):
            return m(x), y

        def eval_fn(m):
            return float((m(data["x_test"]).argmax(-1) == data["y_test"]).float().mean())

        return Task.classification(model, lambda: None, logits_fn, eval_fn, mark_head(model, "head."))
