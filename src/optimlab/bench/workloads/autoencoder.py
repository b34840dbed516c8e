"""W6 ``ae_digits``: a deep tanh autoencoder on scikit-learn's digits, the classic curvature benchmark.

Hinton & Salakhutdinov (2006), *Reducing the Dimensionality of Data with Neural Networks*, and Martens (2010),
*Deep learning via Hessian-free optimization*, use deep autoencoders because their pathological curvature
separates curvature-aware methods from plain first-order ones. Data: the 1,797 8×8 digit images bundled with
scikit-learn (no download), pixel values / 16, shuffled with the data seed, 1,500 for training (297 held out).
Model: 64-256-128-64-16-64-128-256-64 with tanh hidden units and sigmoid outputs, squared-error loss. The metric
is the training reconstruction MSE over all 1,500 training images (an optimization benchmark).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._base import Budget, Task, Workload, epoch_batches, generator, iterator_fn, mark_head

WIDTHS = (64, 256, 128, 64, 16, 64, 128, 256, 64)


@functools.lru_cache(maxsize=2)
def digits(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    x = load_digits().data.astype(np.float32) / 16.0
    perm = np.random.default_rng(seed).permutation(len(x))
    x = torch.tensor(x[perm])
    return x[:1500], x[1500:]


class Autoencoder(nn.Module):
    def __init__(self, widths=WIDTHS) -> None:
        super().__init__()
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths[:-2], widths[1:-1]))
        self.head = nn.Linear(widths[-2], widths[-1])

    def forward(self, x):
        for layer in self.hidden:
            x = torch.tanh(layer(x))
        return torch.sigmoid(self.head(x))


class AeDigits(Workload):
    id = "ae_digits"
    title = "Deep tanh autoencoder on sklearn digits"
    stresses = "pathological curvature (the classic second-order benchmark)"
    data_source = "scikit-learn digits (bundled, 1500 train / 297 held out), pixels/16"
    model_desc = "64-256-128-64-16-64-128-256-64 tanh, sigmoid outputs (~118k parameters)"
    metric = "train reconstruction MSE"
    higher_is_better = False
    metric_scale = "log"
    target = 0.00245
    provisional = False
    batch_size = 128
    budget = Budget(step_hint=3000, max_steps=4500, eval_every=150)

    def data_arrays(self, smoke: bool = False):
        train, held = digits(self.data_seed)
        return {"train": train, "held_out": held}

    def _build(self, seed: int, smoke: bool, device: torch.device) -> Task:
        x = digits(self.data_seed)[0]
        if smoke:
            x = x[:256]
        x = x.to(device)
        model = Autoencoder()
        batches = epoch_batches(len(x), self.batch_size, generator(seed, 1))

        def loss_fn(m, idx):
            xb = x[idx]
            return F.mse_loss(m(xb), xb)

        def eval_fn(m):
            return float(F.mse_loss(m(x), x))

        return Task(model, iterator_fn(batches), loss_fn, eval_fn, mark_head(model, "head."))
