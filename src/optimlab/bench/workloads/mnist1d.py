"""MNIST-1D data (generated offline) and the three workloads that use it: W4 ``mlp_mnist1d``, W5
``cnn1d_mnist1d`` and W10 ``labelnoise_cnn``.

MNIST-1D (Greydanus & Kobak, 2020, *Scaling Down Deep Learning with MNIST-1D*, arXiv:2011.14439) is a procedural
1-D analogue of MNIST: ten 12-point digit templates are padded with 36–60 zeros, stretched to 72 points, scaled,
circularly translated, filled with smooth noise where the signal is absent, perturbed by iid noise and a random
linear shear, and resampled to 40 points. This module re-implements that procedure (vectorized numpy, no scipy)
with the same template values and transformation constants as the reference package; sample streams differ from
the reference package's, so the data are "MNIST-1D-like" with their own sha256 (reported as the data hash).
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._base import Budget, Task, Workload, epoch_batches, generator, iterator_fn, mark_head

# the ten digit templates of MNIST-1D (Greydanus & Kobak 2020), 12 points each
_TEMPLATES = np.array(
    [
        [5, 6, 6.5, 6.75, 7, 7, 7, 7, 6.75, 6.5, 6, 5],
        [5, 3, 3, 3.4, 3.8, 4.2, 4.6, 5, 5.4, 5.8, 5, 5],
        [5, 6, 6.5, 6.5, 6, 5.25, 4.75, 4, 3.5, 3.5, 4, 5],
        [5, 6, 6.5, 6.5, 6, 5, 5, 6, 6.5, 6.5, 6, 5],
        [5, 4.4, 3.8, 3.2, 2.6, 2.6, 5, 5, 5, 5, 5, 5],
        [5, 3, 3, 3, 3, 5, 6, 6.5, 6.5, 6, 4.5, 5],
        [5, 4, 3.5, 3.25, 3, 3, 3, 3, 3.25, 3.5, 4, 5],
        [5, 7, 7, 6.6, 6.2, 5.8, 5.4, 5, 4.6, 4.2, 5, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 4, 3.5, 3.5, 4, 5],
        [5, 4, 3.5, 3.5, 4, 5, 5, 5, 5, 4.7, 4.3, 5],
    ]
)
TEMPLATE_LEN = 12
PADDING = (36, 60)
SCALE_COEFF = 0.4
MAX_TRANSLATION = 48
CORR_NOISE_SCALE = 0.25
IID_NOISE_SCALE = 2e-2
SHEAR_SCALE = 0.75
FINAL_LEN = 40
CORR_SIGMA = 2.0


def templates() -> np.ndarray:
    """Whitened templates starting at 0, divided by 6 (as in the reference generator)."""
    x = _TEMPLATES - _TEMPLATES.mean(1, keepdims=True)
    x = x / x.std(1, keepdims=True)
    x = x - x[:, :1]
    return x / 6.0


def _linear_resample(x: np.ndarray, n_out: int) -> np.ndarray:
    """Resample the last axis onto ``n_out`` equally spaced points of the same [0, 1] span (linear)."""
    n_in = x.shape[-1]
    pos = np.linspace(0.0, n_in - 1, n_out)
    lo = np.minimum(np.floor(pos).astype(int), n_in - 2)
    frac = pos - lo
    return x[..., lo] * (1 - frac) + x[..., lo + 1] * frac


def _gaussian_smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian filter along the last axis, kernel truncated at 4σ, mirror-reflected edges."""
    radius = int(4 * sigma + 0.5)
    k = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    k /= k.sum()
    padded = np.concatenate([x[..., :radius][..., ::-1], x, x[..., -radius:][..., ::-1]], axis=-1)
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * radius + 1, axis=-1)
    return windows @ k


@functools.lru_cache(maxsize=8)
def make_mnist1d(num_samples: int, seed: int, train_split: float = 0.8) -> dict[str, torch.Tensor]:
    """An MNIST-1D-like data set: x (N, 40) float32 standardized, y (N,) int64; train/test split."""
    rng = np.random.default_rng(seed)
    per_class = num_samples // 10
    labels = np.repeat(np.arange(10), per_class)
    n = len(labels)
    tmpl = templates() + 1e-8
    stretched_len = TEMPLATE_LEN + PADDING[1]
    # pad with p zeros, then stretch the (12 + p)-point signal onto 72 points
    pad = PADDING[0] + np.floor(rng.uniform(size=n) * (PADDING[1] - PADDING[0] + 1)).astype(int)
    src = np.zeros((n, TEMPLATE_LEN + PADDING[1] + 1))
    src[:, :TEMPLATE_LEN] = tmpl[labels]
    pos = np.linspace(0.0, 1.0, stretched_len)[None, :] * (TEMPLATE_LEN + pad - 1)[:, None]
    lo = np.floor(pos).astype(int)
    frac = pos - lo
    rows = np.arange(n)[:, None]
    x = src[rows, lo] * (1 - frac) + src[rows, lo + 1] * frac
    signal = pos <= TEMPLATE_LEN - 1
    # scale, circular translation
    x *= 1 + SCALE_COEFF * (rng.uniform(size=(n, 1)) - 0.5)
    shift = rng.integers(0, MAX_TRANSLATION, size=n)
    idx = (np.arange(stretched_len)[None, :] - shift[:, None]) % stretched_len
    x, signal = x[rows, idx], signal[rows, idx]
    # correlated noise where the signal is absent, iid noise everywhere, random shear
    corr = _gaussian_smooth(CORR_NOISE_SCALE * rng.standard_normal((n, stretched_len)), CORR_SIGMA)
    x = np.where(signal, x, corr)
    x = x + IID_NOISE_SCALE * rng.standard_normal((n, stretched_len))
    coeff = SHEAR_SCALE * (rng.uniform(size=(n, 1)) - 0.5)
    x = x - coeff * np.linspace(-0.5, 0.5, stretched_len)[None, :]
    x = _linear_resample(x, FINAL_LEN)
    perm = rng.permutation(n)
    x, y = x[perm], labels[perm]
    x = (x - x.mean()) / x.std()
    split = int(n * train_split)
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.int64)
    return {"x": xt[:split], "y": yt[:split], "x_test": xt[split:], "y_test": yt[split:]}


@functools.lru_cache(maxsize=4)
def noisy_labels(y: torch.Tensor, rate: float, seed: int) -> torch.Tensor:
    """Symmetric label noise: with probability ``rate`` a label is replaced by a different class, uniformly."""
    rng = np.random.default_rng(seed)
    yn = y.numpy().copy()
    flip = rng.uniform(size=len(yn)) < rate
    yn[flip] = (yn[flip] + rng.integers(1, 10, size=int(flip.sum()))) % 10
    return torch.tensor(yn)


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(-1) == y).float().mean())


class MLP(nn.Module):
    def __init__(self, widths=(40, 256, 256, 10)) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(len(widths) - 2):
            layers += [nn.Linear(widths[i], widths[i + 1]), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(widths[-2], widths[-1])

    def forward(self, x):
        return self.head(self.body(x))


class CNN1D(nn.Module):
    """Three stride-2 Conv1d layers of 25 channels and a linear head (the MNIST-1D paper's CNN)."""

    def __init__(self, channels: int = 25, n_out: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(1, channels, 5, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.conv3 = nn.Conv1d(channels, channels, 3, stride=2, padding=1)
        self.head = nn.Linear(channels * 5, n_out)

    def forward(self, x):
        h = x.unsqueeze(1)
        h = F.relu(self.conv1(h))
        h = F.relu(self.conv2(h))
        h = F.relu(self.conv3(h))
        return self.head(h.flatten(1))


class _Mnist1dClassification(Workload):
    """Shared plumbing: cross-entropy training on (possibly noisy) labels, test accuracy on clean labels."""

    provides_logits = True
    metric = "test accuracy"
    higher_is_better = True
    metric_scale = "linear"
    num_samples = 5000
    smoke_samples = 500
    label_noise = 0.0

    def _data(self, smoke: bool) -> dict[str, torch.Tensor]:
        return make_mnist1d(self.smoke_samples if smoke else self.num_samples, self.data_seed)

    def _train_labels(self, data: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.label_noise:
            return noisy_labels(data["y"], self.label_noise, self.data_seed + 1)
        return data["y"]

    def data_arrays(self, smoke: bool = False):
        data = self._data(smoke)
        return {**data, "y_train_used": self._train_labels(data)}

    def _model(self) -> nn.Module:
        raise NotImplementedError

    def _build(self, seed: int, smoke: bool, device: torch.device) -> Task:
        data = self._data(smoke)
        x, y = data["x"].to(device), self._train_labels(data).to(device)
        x_test, y_test = data["x_test"].to(device), data["y_test"].to(device)
        model = self._model()
        batches = epoch_batches(len(y), self.batch_size, generator(seed, 1))

        def logits_fn(m, idx):
            return m(x[idx]), y[idx]

        def eval_fn(m):
            return accuracy(m(x_test), y_test)

        return Task.classification(model, iterator_fn(batches), logits_fn, eval_fn, mark_head(model, "head."))


class MlpMnist1d(_Mnist1dClassification):
    id = "mlp_mnist1d"
    title = "MLP on MNIST-1D (25k samples)"
    stresses = "plain MLP classification"
    data_source = "MNIST-1D-like, generated: 25k samples (20k train / 5k test)"
    model_desc = "40-256-256-10 ReLU MLP (~79k parameters)"
    target = 0.871
    provisional = False
    batch_size = 128
    budget = Budget(step_hint=3000, max_steps=4500, eval_every=150)
    num_samples = 25_000

    def _model(self):
        return MLP()


class Cnn1dMnist1d(_Mnist1dClassification):
    id = "cnn1d_mnist1d"
    title = "1-D CNN on MNIST-1D (5k samples)"
    stresses = "small CNN with spatial bias; conv weights (3-D tensors)"
    data_source = "MNIST-1D-like, generated: 5k samples (4k train / 1k test)"
    model_desc = "3×Conv1d(25 ch, stride 2) + linear (~5.2k parameters)"
    target = 0.935
    provisional = False
    batch_size = 100
    budget = Budget(step_hint=3000, max_steps=4500, eval_every=150)
    num_samples = 5000

    def _model(self):
        return CNN1D()


class LabelNoiseCnn(_Mnist1dClassification):
    id = "labelnoise_cnn"
    title = "1-D CNN on MNIST-1D with 40% label noise"
    stresses = "memorization vs robustness under label noise; clean validation"
    data_source = "MNIST-1D-like, generated: 20k samples (16k train / 4k test), 40% symmetric noise on train labels"
    model_desc = "the W5 CNN"
    target = 0.914
    provisional = False
    batch_size = 100
    budget = Budget(step_hint=2000, max_steps=3000, eval_every=100)
    num_samples = 20_000
    label_noise = 0.4
    metric = "clean test accuracy"

    def _model(self):
        return CNN1D()
