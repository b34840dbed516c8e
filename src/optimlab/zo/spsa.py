"""SPSA / MeZO: gradient estimates from two forward passes, with the perturbation regenerated from a seed.

Malladi, Gao, Nichani, Damian, Lee, Chen & Arora (2023), *Fine-Tuning Language Models with Just Forward Passes*,
arXiv:2305.17333 (seed #163); Spall (1992), *Multivariate stochastic approximation using a simultaneous
perturbation gradient approximation*.

For a direction z ~ N(0, I) the two-sided estimate is ĝ = (L(θ + εz) − L(θ − εz)) / (2ε) · z (one-sided:
(L(θ + εz) − L(θ)) / ε · z), averaged over n directions (n-SPSA). Its expectation is the gradient of the Gaussian
smoothing of L, and the scalar coefficient is the directional derivative ∇L·z up to O(ε²) (exact on quadratics,
two-sided). MeZO's memory trick: θ is perturbed *in place* and z is regenerated from its seed for every pass
(+εz, −2εz, +εz, then the update), so the memory is that of inference — no copy of θ, no stored z. In floating
point the restore θ + εz − 2εz + εz is not bit-exact (rounding of the order of ε·ulp), as in MeZO.

* :func:`spsa_grad_` writes the estimate to ``.grad`` so that any optimizer (SGD, AdamW, …) consumes it;
  :class:`SPSA` is the same with its own seed stream (for exact resume);
* :class:`ZOSGD` is MeZO's fused ZO-SGD: θ ← θ − lr (ĝ + λθ), applied from the seeds without materialising ĝ.

The closure only evaluates the loss on a fixed batch (it is called under ``torch.no_grad()``; no backward).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ._common import (
    ZOOptimizer,
    check_int,
    check_range,
    directions,
    draw_seeds,
    global_state,
    group_params,
    new_stream,
)

__all__ = ["SPSA", "SPSAResult", "ZOSGD", "apply_directions_", "perturb_", "spsa_coefficients", "spsa_grad_"]

Closure = Callable[[], Tensor | float]


@dataclass
class SPSAResult:
    """One SPSA estimate: ``loss`` (L(θ) one-sided; the mean of L(θ ± εz) two-sided), ``coefficients`` (n,)
    float64 — the finite-difference directional derivatives — and the ``seeds`` of the n directions."""

    loss: Tensor
    coefficients: Tensor
    seeds: list[int]


def _params(params: Iterable[Tensor]) -> list[Tensor]:
    out = list(params)
    if not out:
        raise ValueError("params is empty")
    return out


def _loss(closure: Closure) -> Tensor:
    out = closure()
    return (out if isinstance(out, Tensor) else torch.tensor(out)).detach().to(torch.float64).reshape(())


@torch.no_grad()
def perturb_(params: Sequence[Tensor], seed: int, scale: float) -> None:
    """θ ← θ + scale · z(seed), in place, z regenerated from ``seed`` (see :mod:`optimlab.zo._common`)."""
    for p, z in zip(params, directions(params, seed)):
        p.add_(z, alpha=scale)


@torch.no_grad()
def apply_directions_(
    params: Sequence[Tensor], seeds: Sequence[int], coefficients: Sequence[float], scales: Sequence[float]
) -> None:
    """θ_j ← θ_j + scales[j] · Σ_i coefficients[i] · z_i(seeds[i])_j: an update from seeds without storing ĝ."""
    for seed, c in zip(seeds, coefficients):
        for p, z, s in zip(params, directions(params, seed), scales):
            p.add_(z, alpha=float(s) * float(c))


@torch.no_grad()
def spsa_coefficients(
    params: Iterable[Tensor], closure: Closure, seeds: Sequence[int], *, eps: float = 1e-3, two_sided: bool = True
) -> tuple[Tensor, Tensor]:
    """The n finite-difference coefficients (float64) and the loss; ``params`` are restored (up to rounding)."""
    params = _params(params)
    check_range("eps", eps, 0.0, low_open=True)
    if len(seeds) == 0:
        raise ValueError("seeds is empty: an estimate needs at least one direction")
    coefs = torch.empty(len(seeds), dtype=torch.float64)
    f0 = None if two_sided else _loss(closure)
    total = torch.zeros((), dtype=torch.float64)
    for i, seed in enumerate(seeds):
        perturb_(params, seed, eps)
        f_plus = _loss(closure)
        if two_sided:
            perturb_(params, seed, -2 * eps)
            f_minus = _loss(closure)
            perturb_(params, seed, eps)
            coefs[i] = (f_plus - f_minus) / (2 * eps)
            total += (f_plus + f_minus) / 2
        else:
            perturb_(params, seed, -eps)
            coefs[i] = (f_plus - f0) / eps
    loss = f0 if f0 is not None else total / len(seeds)
    return coefs, loss


@torch.no_grad()
def spsa_grad_(
    params: Iterable[Tensor],
    closure: Closure,
    seeds: Sequence[int],
    *,
    eps: float = 1e-3,
    two_sided: bool = True,
    accumulate: bool = False,
) -> SPSAResult:
    """Write the n-SPSA estimate (1/n) Σ_i c_i z_i to every parameter's ``.grad`` (added to it with
    ``accumulate``), the directions regenerated from ``seeds``. The closure evaluates the loss only."""
    params = _params(params)
    coefs, loss = spsa_coefficients(params, closure, seeds, eps=eps, two_sided=two_sided)
    for p in params:
        if p.grad is None or not accumulate:
            p.grad = torch.zeros_like(p)
    n = len(seeds)
    for seed, c in zip(seeds, coefs.tolist()):
        for p, z in zip(params, directions(params, seed)):
            p.grad.add_(z, alpha=c / n)
    return SPSAResult(loss, coefs, list(seeds))


class SPSA:
    """An n-SPSA gradient estimator with its own seed stream: ``estimate_(closure)`` writes ``.grad`` for any
    optimizer; ``state_dict()`` holds the stream as tensors, so a resumed run draws the same directions.

    Args: ``params``; ``eps`` (> 0) the perturbation scale; ``n`` (≥ 1) directions per estimate; ``two_sided``;
    ``seed`` of the stream."""

    def __init__(
        self, params: Iterable[Tensor], eps: float = 1e-3, n: int = 1, two_sided: bool = True, seed: int = 0
    ) -> None:
        self.params = _params(params)
        self.eps = check_range("eps", eps, 0.0, low_open=True)
        self.n = check_int("n", n, 1)
        self.two_sided = bool(two_sided)
        self.stream = new_stream(check_int("seed", seed, 0))
        self.step = torch.zeros((), dtype=torch.int64)

    def estimate_(self, closure: Closure, accumulate: bool = False) -> SPSAResult:
        seeds, self.stream = draw_seeds(self.stream, self.n)
        self.step += 1
        return spsa_grad_(self.params, closure, seeds, eps=self.eps, two_sided=self.two_sided, accumulate=accumulate)

    def state_dict(self) -> dict[str, Tensor]:
        return {"stream": self.stream.clone(), "step": self.step.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.stream = state["stream"].detach().to("cpu", torch.uint8, copy=True)
        self.step = state["step"].detach().to("cpu", torch.int64, copy=True)


class ZOSGD(ZOOptimizer):
    """MeZO's zeroth-order SGD (Malladi et al., 2023, arXiv:2305.17333, Algorithm 1 with n-SPSA).

    Per step: n seeds from the stream; the n-SPSA coefficients c_i from in-place perturbations; then
    θ ← θ(1 − lr λ) − lr (1/n) Σ_i c_i z_i, each z_i regenerated from its seed (memory = inference).
    ``step(closure)`` does both; for loops that call ``step()`` without a closure (``transformers.Trainer``),
    call :meth:`estimate` first (it records the seeds and coefficients as tensors in the state) and ``step()``
    applies them. ``lr`` and ``weight_decay`` are per group; ``eps``, ``n``, ``two_sided`` and ``seed`` are the
    estimator's (global). The paper's defaults: lr ∈ {1e-6, 1e-7}, ε = 1e-3, n = 1, two-sided."""

    def __init__(
        self,
        params: Iterable[Tensor] | Iterable[dict],
        lr: float = 1e-6,
        eps: float = 1e-3,
        n: int = 1,
        two_sided: bool = True,
        weight_decay: float = 0.0,
        seed: int = 0,
    ) -> None:
        check_range("lr", lr, 0.0)
        check_range("weight_decay", weight_decay, 0.0)
        super().__init__(params, dict(lr=lr, weight_decay=weight_decay))
        for group in self.param_groups:
            check_range("lr", group["lr"], 0.0)
            check_range("weight_decay", group["weight_decay"], 0.0)
        self.eps = check_range("eps", eps, 0.0, low_open=True)
        self.n = check_int("n", n, 1)
        self.two_sided = bool(two_sided)
        state = global_state(self)
        state["step"] = torch.zeros((), dtype=torch.int64)
        state["seed_stream"] = new_stream(check_int("seed", seed, 0))
        state["pending_seeds"] = torch.zeros(0, dtype=torch.int64)
        state["pending_coefficients"] = torch.zeros(0, dtype=torch.float64)

    @torch.no_grad()
    def estimate(self, closure: Closure) -> Tensor:
        """Draw n seeds, measure the SPSA coefficients, record them for the next :meth:`step`; returns the loss."""
        state = global_state(self)
        seeds, state["seed_stream"] = draw_seeds(state["seed_stream"], self.n)
        coefs, loss = spsa_coefficients(
            group_params(self.param_groups), closure, seeds, eps=self.eps, two_sided=self.two_sided
        )
        state["pending_seeds"] = torch.tensor(seeds, dtype=torch.int64)
        state["pending_coefficients"] = coefs
        return loss

    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Tensor | None:  # type: ignore[override]
        loss = self.estimate(closure) if closure is not None else None
        state = global_state(self)
        seeds = state["pending_seeds"].tolist()
        if not seeds:
            raise RuntimeError("ZOSGD.step needs a closure (or a call to estimate(closure) before step())")
        params = group_params(self.param_groups)
        scales = []
        for group in self.param_groups:
            for p in group["params"]:
                if group["weight_decay"] != 0:
                    p.mul_(1 - group["lr"] * group["weight_decay"])
                scales.append(-group["lr"] / len(seeds))
        apply_directions_(params, seeds, state["pending_coefficients"].tolist(), scales)
        state["pending_seeds"] = torch.zeros(0, dtype=torch.int64)
        state["pending_coefficients"] = torch.zeros(0, dtype=torch.float64)
        state["step"] += 1
        return loss
