"""Adaptive batch sizes from per-example gradients: the norm test and the (augmented) inner-product test.

Seed #54: Lau, Liu & Kolar (2024), *AdAdaGrad: Adaptive Batch Size Schemes for Adaptive Gradient Methods*,
arXiv:2402.11215, which pairs these adaptive-sampling tests with AdaGrad / AdaGrad-Norm updates. The tests come from
Byrd, Chin, Nocedal & Wu (2012) (norm test) and Bollapragada, Byrd & Nocedal (2018), arXiv:1710.11258 (inner-product
and orthogonality tests). With per-example gradients g_i (i ∈ batch B) and their mean ḡ (variances use 1/(|B| − 1)):

* norm test: Var_i(g_i)/|B| ≤ η²‖ḡ‖², where Var_i(g_i) = Σ‖g_i − ḡ‖²/(|B| − 1); when it fails the next batch is
  ⌈Var_i(g_i)/(η²‖ḡ‖²)⌉;
* inner-product test: Var_i(⟨g_i, ḡ⟩)/|B| ≤ θ²‖ḡ‖⁴ (next batch ⌈Var_i(⟨g_i, ḡ⟩)/(θ²‖ḡ‖⁴)⌉), and in the augmented
  form also the orthogonality test Var_i(g_i − ⟨g_i, ḡ⟩ḡ/‖ḡ‖²)/|B| ≤ ν²‖ḡ‖² (next batch the larger requirement).

The batch never shrinks (the methods increase it progressively) and is capped at ``max_batch_size``. Per-example
gradients come from :func:`optimlab.grad.per_sample_grads` (torch.func.vmap), or any (B, …) tensors.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

TESTS = ("norm", "inner_product", "augmented_inner_product")


def _flatten(per_example: Mapping[str, Tensor] | Sequence[Tensor] | Tensor) -> Tensor:
    """(B, D) float64 matrix of per-example gradients from a dict/list of (B, …) tensors or one (B, …) tensor."""
    if isinstance(per_example, Tensor):
        parts = [per_example]
    elif isinstance(per_example, Mapping):
        parts = list(per_example.values())
    else:
        parts = list(per_example)
    if not parts:
        raise ValueError("per_example gradients must not be empty")
    b = parts[0].shape[0]
    if b < 2 or any(t.shape[0] != b for t in parts):
        raise ValueError("per_example gradients need one leading batch dimension ≥ 2, the same for every tensor")
    return torch.cat([t.detach().reshape(b, -1).double() for t in parts], dim=1)


@dataclass(frozen=True)
class BatchSizeTest:
    """What one test measured: the statistic, the bound it is compared with, and the batch size it asks for."""

    passed: bool
    statistic: float  # the variance estimate divided by |B|
    bound: float
    batch_size: int  # the requested size of the next batch (≥ the current one)
    grad_norm_sq: float


def norm_test(per_example: Any, eta: float) -> BatchSizeTest:
    """The norm test with constant ``eta`` (η > 0) on per-example gradients of one batch."""
    g = _flatten(per_example)
    b = g.shape[0]
    mean = g.mean(0)
    var = float(((g - mean) ** 2).sum()) / (b - 1)
    nsq = float(mean @ mean)
    bound = eta**2 * nsq
    return _result(var / b, bound, b, var, bound, nsq)


def inner_product_test(per_example: Any, theta: float, nu: float | None = None) -> BatchSizeTest:
    """The inner-product test with constant ``theta``; with ``nu`` also the orthogonality test (augmented form)."""
    g = _flatten(per_example)
    b = g.shape[0]
    mean = g.mean(0)
    nsq = float(mean @ mean)
    dots = g @ mean
    var_ip = float(((dots - dots.mean()) ** 2).sum()) / (b - 1)
    result = _result(var_ip / b, theta**2 * nsq**2, b, var_ip, theta**2 * nsq**2, nsq)
    if nu is None:
        return result
    orth = g - (dots / nsq if nsq > 0 else torch.zeros_like(dots))[:, None] * mean
    var_orth = float(((orth - orth.mean(0)) ** 2).sum()) / (b - 1)
    other = _result(var_orth / b, nu**2 * nsq, b, var_orth, nu**2 * nsq, nsq)
    return BatchSizeTest(
        passed=result.passed and other.passed,
        statistic=max(result.statistic / max(result.bound, 1e-300), other.statistic / max(other.bound, 1e-300)),
        bound=1.0,
        batch_size=max(result.batch_size, other.batch_size),
        grad_norm_sq=nsq,
    )


def _result(statistic: float, bound: float, b: int, variance: float, denominator: float, nsq: float) -> BatchSizeTest:
    passed = statistic <= bound
    if passed:
        size = b
    elif denominator <= 0:
        size = 2**62  # a zero mean gradient with nonzero variance: as large as allowed
    else:
        size = max(b, math.ceil(variance / denominator))
    return BatchSizeTest(passed, statistic, bound, size, nsq)


class AdaptiveBatchSize:
    """Tells the training loop the next batch size (AdAdaGrad's progressive batching, seed #54).

    ``test``: ``"norm"`` (constant ``eta``), ``"inner_product"`` (``theta``) or ``"augmented_inner_product"``
    (``theta`` and ``nu``). Call :meth:`update` with the per-example gradients of the current batch; it returns the
    size of the next batch, never smaller than the current one and at most ``max_batch_size``. ``state_dict`` holds
    the current size (resume exactly)."""

    def __init__(
        self,
        initial_batch_size: int,
        *,
        test: str = "norm",
        eta: float = 0.5,
        theta: float = 0.9,
        nu: float = math.tan(math.radians(80)),
        max_batch_size: int | None = None,
    ) -> None:
        if isinstance(initial_batch_size, bool) or not isinstance(initial_batch_size, int) or initial_batch_size < 2:
            raise ValueError(f"initial_batch_size must be an integer ≥ 2, got {initial_batch_size!r}")
        if test not in TESTS:
            raise ValueError(f"test must be one of {TESTS}, got {test!r}")
        for name, value in (("eta", eta), ("theta", theta), ("nu", nu)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if max_batch_size is not None and (
            isinstance(max_batch_size, bool)
            or not isinstance(max_batch_size, int)
            or max_batch_size < initial_batch_size
        ):
            raise ValueError(f"max_batch_size must be an integer ≥ initial_batch_size or None, got {max_batch_size!r}")
        self.batch_size = initial_batch_size
        self.test, self.eta, self.theta, self.nu = test, float(eta), float(theta), float(nu)
        self.max_batch_size = max_batch_size
        self.last: BatchSizeTest | None = None

    def check(self, per_example: Any) -> BatchSizeTest:
        """Run the configured test on the per-example gradients (without changing the batch size)."""
        if self.test == "norm":
            return norm_test(per_example, self.eta)
        return inner_product_test(per_example, self.theta, self.nu if self.test == "augmented_inner_product" else None)

    def update(self, per_example: Any) -> int:
        """Run the test and return the next batch size (also kept in ``batch_size``)."""
        self.last = self.check(per_example)
        size = max(self.batch_size, self.last.batch_size)
        if self.max_batch_size is not None:
            size = min(size, self.max_batch_size)
        self.batch_size = int(size)
        return self.batch_size

    def state_dict(self) -> dict[str, Any]:
        return {"batch_size": self.batch_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batch_size = int(state["batch_size"])
