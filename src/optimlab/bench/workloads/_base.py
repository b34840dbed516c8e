"""The workload contract: what a benchmark problem fixes, and the instantiated task the runner trains.

A :class:`Workload` fixes the data (a generator with a fixed data seed, or a frozen file checked by sha256), the
model and its initialization, the loss, the batch size, the evaluation metric, the evaluation cadence, the step
hint, the step budget and the target. It knows nothing of optimizers: :meth:`Workload.build` returns a
:class:`Task` (model + batch stream + loss + evaluation for one run seed), and the runner does the rest.

The run seed changes the model initialization, the batch order and any per-step noise; the data set itself is
generated once from the workload's own ``data_seed`` (AlgoPerf practice: seeds vary the run, not the problem).

**Logits.** A workload whose training loss is the mean categorical cross-entropy of the model's logits (the
classification and language-model workloads) builds its task with :meth:`Task.classification` from a function
returning ``(logits, labels)`` and sets :attr:`Workload.provides_logits`; the task computes the loss from the logits
(:func:`cross_entropy`) and also hands the logits to optimizers that need them (Sophia-G's Gauss–Newton–Bartlett
estimator samples labels from them). Every other workload gives its loss directly (``loss_fn``); optimizers that
need logits are not applicable there (see :func:`optimlab.bench.runner.not_applicable`).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

#: parameter types a workload reports for each parameter (AlgoPerf's ``param_types``); optimizers such as
#: Muon, Shampoo or SOAP group parameters by them
PARAM_TYPES = ("matrix_hidden", "embedding", "head", "vector", "conv")


@dataclass(frozen=True)
class Budget:
    """Step budget of a workload: the schedule horizon hint, the hard cap, and the evaluation cadence."""

    step_hint: int
    max_steps: int
    eval_every: int

    def scaled(self, factor: float) -> Budget:
        """The budget with ``max_steps`` multiplied by ``factor`` (step_hint and cadence unchanged)."""
        return Budget(self.step_hint, max(1, int(round(self.max_steps * factor))), self.eval_every)


@dataclass
class Task:
    """One workload instantiated for one run seed.

    ``next_batch()`` draws the next training batch (deterministic given the seed); ``loss(batch)`` is the
    differentiable training loss on it (call it again on the same batch for closures); ``evaluate()`` returns the
    workload's metric; ``param_types`` maps every parameter name to one of :data:`PARAM_TYPES`.

    The loss comes from exactly one of ``loss_fn(model, batch) -> loss`` and ``logits_fn(model, batch) -> (logits,
    labels)`` (logits ``(..., C)``, integer labels ``(...)``; the loss is then their mean :func:`cross_entropy`, and
    :meth:`loss_and_logits` also returns the logits, attached to their graph). Build the latter with
    :meth:`classification`.
    """

    model: nn.Module
    next_batch: Callable[[], Any]
    loss_fn: Callable[[nn.Module, Any], Tensor] | None
    eval_fn: Callable[[nn.Module], float]
    param_types: dict[str, str] = field(default_factory=dict)
    logits_fn: Callable[[nn.Module, Any], tuple[Tensor, Tensor]] | None = None

    def __post_init__(self) -> None:
        if (self.loss_fn is None) == (self.logits_fn is None):
            raise TypeError("a Task takes exactly one of loss_fn (any loss) and logits_fn (cross-entropy of logits)")

    @classmethod
    def classification(
        cls,
        model: nn.Module,
        next_batch: Callable[[], Any],
        logits_fn: Callable[[nn.Module, Any], tuple[Tensor, Tensor]],
        eval_fn: Callable[[nn.Module], float],
        param_types: dict[str, str] | None = None,
    ) -> Task:
        """A task whose loss is the mean cross-entropy of ``logits_fn(model, batch) -> (logits, labels)``."""
        return cls(model, next_batch, None, eval_fn, dict(param_types or {}), logits_fn=logits_fn)

    @property
    def provides_logits(self) -> bool:
        """Whether the loss is a cross-entropy of logits that :meth:`loss_and_logits` can return."""
        return self.logits_fn is not None

    def loss(self, batch: Any) -> Tensor:
        if self.logits_fn is not None:
            return self.loss_and_logits(batch)[0]
        return self.loss_fn(self.model, batch)

    def loss_and_logits(self, batch: Any) -> tuple[Tensor, Tensor]:
        """``(loss, logits)`` of one forward pass: the loss is :func:`cross_entropy` of the logits ``(..., C)``."""
        if self.logits_fn is None:
            raise ValueError("this task's loss is not a cross-entropy of logits (it has no logits to return)")
        logits, labels = self.logits_fn(self.model, batch)
        return cross_entropy(logits, labels), logits

    @torch.no_grad()
    def evaluate(self) -> float:
        was_training = self.model.training
        self.model.eval()
        try:
            return float(self.eval_fn(self.model))
        finally:
            self.model.train(was_training)

    def typed_parameters(self) -> list[tuple[str, nn.Parameter, str]]:
        """``(name, parameter, type)`` for every trainable parameter, in ``named_parameters`` order."""
        out = []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                out.append((name, p, self.param_types.get(name) or default_param_type(self.model, name, p)))
        return out


class Workload:
    """Base class of the benchmark problems (see the module docstring). Subclasses set the class attributes and
    implement :meth:`_build`; one module per workload (or per small family sharing data)."""

    id: ClassVar[str]
    title: ClassVar[str]
    #: what the workload stresses (one line, shown in ``bench list`` and the report)
    stresses: ClassVar[str]
    #: human description of the data source
    data_source: ClassVar[str]
    #: model description
    model_desc: ClassVar[str]
    metric: ClassVar[str]
    higher_is_better: ClassVar[bool] = False
    #: "log" for error-like metrics spanning decades, "linear" for accuracies
    metric_scale: ClassVar[str] = "log"
    target: ClassVar[float]
    #: "calibrated": the target is set by the calibration procedure (validation metrics); "precision": the target
    #: is a precision fixed by the workload's design (analytic optimum), checked by the calibration
    target_kind: ClassVar[str] = "calibrated"
    #: True until the calibration procedure (benchmark.md §6.4, :mod:`optimlab.bench.calibration`) has set or
    #: checked the target
    provisional: ClassVar[bool] = True
    #: training batch size (None = full batch)
    batch_size: ClassVar[int | None] = None
    #: step_hint = max_steps / 1.5 (the calibration's reading of benchmark.md §6.4); the LR schedule of a run is
    #: relative to its own step budget, so step_hint is informative only
    budget: ClassVar[Budget]
    smoke_budget: ClassVar[Budget] = Budget(step_hint=4, max_steps=4, eval_every=2)
    #: a run is ``diverged`` when the mean training loss over an evaluation interval exceeds this multiple of the
    #: first step's loss (heavy-tailed workloads raise it)
    explosion_factor: ClassVar[float] = 1e3
    #: seed of the generated data set (fixed: the data are part of the workload, not of the run)
    data_seed: ClassVar[int] = 0
    #: whether the training loss is the cross-entropy of the model's logits, which the task can return
    #: (:meth:`Task.classification`); optimizers whose closure must return ``(loss, logits)`` (Sophia-G) need it
    provides_logits: ClassVar[bool] = False

    # ------------------------------------------------------------------ the interface
    def build(self, seed: int, smoke: bool = False, device: str | torch.device = "cpu") -> Task:
        """A fresh task (model initialized from ``seed``) on ``device``; ``smoke`` uses the tiny test config."""
        torch.manual_seed(seed)
        task = self._build(int(seed), bool(smoke), torch.device(device))
        if task.provides_logits != self.provides_logits:
            raise TypeError(
                f"{self.id}: provides_logits is {self.provides_logits} but its task "
                f"{'has' if task.provides_logits else 'has no'} logits_fn"
            )
        task.model.to(device)
        return task

    def _build(self, seed: int, smoke: bool, device: torch.device) -> Task:
        raise NotImplementedError

    def data_arrays(self, smoke: bool = False) -> dict[str, Any]:
        """The fixed data (tensors/arrays) the workload trains and evaluates on, for fingerprinting."""
        return {}

    # ------------------------------------------------------------------ derived
    def budget_for(self, smoke: bool) -> Budget:
        return self.smoke_budget if smoke else self.budget

    def passes(self, metric: float) -> bool:
        """Whether ``metric`` meets the target."""
        if not np.isfinite(metric):
            return False
        return metric >= self.target if self.higher_is_better else metric <= self.target

    def code_hash(self) -> str:
        """sha256 of the source of this workload's module and of this base module (first 16 hex digits)."""
        h = hashlib.sha256()
        for name in dict.fromkeys((type(self).__module__, __name__)):  # ordered, without duplicates
            h.update(inspect.getsource(sys.modules[name]).encode())
        return h.hexdigest()[:16]

    def data_hash(self, smoke: bool = False) -> str:
        """sha256 over the fixed data (first 16 hex digits); cached per process."""
        return _data_hash(self, smoke)

    def describe(self) -> dict[str, Any]:
        b = self.budget
        return {
            "id": self.id,
            "title": self.title,
            "stresses": self.stresses,
            "data": self.data_source,
            "model": self.model_desc,
            "metric": self.metric,
            "direction": "max" if self.higher_is_better else "min",
            "target": self.target,
            "target_kind": self.target_kind,
            "provisional": self.provisional,
            "batch_size": self.batch_size if self.batch_size else "full",
            "step_hint": b.step_hint,
            "max_steps": b.max_steps,
            "eval_every": b.eval_every,
            "logits": self.provides_logits,
        }

    def __repr__(self) -> str:
        return f"<Workload {self.id}>"


@functools.lru_cache(maxsize=64)
def _data_hash(workload: Workload, smoke: bool) -> str:
    h = hashlib.sha256()
    arrays = workload.data_arrays(smoke)
    for key in sorted(arrays):
        h.update(key.encode())
        value = arrays[key]
        if isinstance(value, Tensor):
            value = value.detach().cpu().contiguous().numpy()
        if isinstance(value, np.ndarray):
            h.update(str(value.dtype).encode() + str(value.shape).encode())
            h.update(np.ascontiguousarray(value).tobytes())
        else:
            h.update(repr(value).encode())
    return h.hexdigest()[:16]


# ---------------------------------------------------------------------------------------------- helpers
def cross_entropy(logits: Tensor, labels: Tensor) -> Tensor:
    """Mean cross-entropy of logits ``(..., C)`` against integer labels ``(...)`` (every position counts)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))


def default_param_type(model: nn.Module, name: str, p: Tensor) -> str:
    """Type of a parameter from its module and shape: embedding, conv, vector (≤1-D) or matrix_hidden."""
    module_name = name.rpartition(".")[0]
    module = model.get_submodule(module_name) if module_name else model
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return "embedding"
    if p.ndim <= 1:
        return "vector"
    if isinstance(module, nn.modules.conv._ConvNd) or p.ndim >= 3:
        return "conv"
    return "matrix_hidden"


def mark_head(model: nn.Module, prefix: str) -> dict[str, str]:
    """``param_types`` entries marking the weight matrices under ``prefix`` as the output head."""
    return {n: "head" for n, p in model.named_parameters() if n.startswith(prefix) and p.ndim >= 2}


def generator(seed: int, stream: int = 0) -> torch.Generator:
    """A CPU torch generator for one run seed and one named stream (batches, noise, ...)."""
    return torch.Generator().manual_seed(int(seed) * 1_000_003 + int(stream) * 7_919 + 12_345)


def epoch_batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[Tensor]:
    """Index batches: shuffle every epoch, drop the ragged tail (all batches have ``batch_size`` rows)."""
    batch_size = min(batch_size, n)
    while True:
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n - batch_size + 1, batch_size):
            yield perm[i : i + batch_size]


def iterator_fn(it: Iterator[Any]) -> Callable[[], Any]:
    return lambda: next(it)


class ParamModule(nn.Module):
    """A module holding plain parameter tensors (for problems that are not neural networks)."""

    def __init__(self, **tensors: Tensor) -> None:
        super().__init__()
        for name, value in tensors.items():
            self.register_parameter(name, nn.Parameter(value.clone()))


def random_rotation(d: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-random orthogonal d×d matrix (QR of a Gaussian matrix with the sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))[None, :]
