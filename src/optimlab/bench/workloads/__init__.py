"""The benchmark workloads and suites.

``get("mlp_mnist1d")`` returns a workload, ``suite("core")`` the workloads of a suite; ``SUITES`` names them.
The ``smoke`` suite is the ``core`` workloads in their ≤10 s smoke configuration (tests, CI).
"""

from __future__ import annotations

from ._base import PARAM_TYPES, Budget, Task, Workload
from .autoencoder import AeDigits
from .charlm import CharLmGpt
from .grokking import GrokModAdd
from .heavytail import HeavyTailLinReg
from .logreg import LogRegIllCond
from .lstm_adding import LstmAdding
from .matfac import DeepMatFac
from .mnist1d import Cnn1dMnist1d, LabelNoiseCnn, MlpMnist1d
from .quadratic import QuadNoisy
from .rosenbrock import Rosenbrock50

#: version of the core suite (workload code, data and targets); "-provisional" until targets are calibrated
CORE_VERSION = "core-v0.1-provisional"

_CORE: tuple[Workload, ...] = (
    QuadNoisy(),
    Rosenbrock50(),
    LogRegIllCond(),
    MlpMnist1d(),
    Cnn1dMnist1d(),
    AeDigits(),
    CharLmGpt(),
    LstmAdding(),
    GrokModAdd(),
    LabelNoiseCnn(),
    HeavyTailLinReg(),
    DeepMatFac(),
)

#: suite name -> (version, smoke?)
SUITES = {"core": (CORE_VERSION, False), "smoke": (CORE_VERSION + "-smoke", True)}

_BY_ID = {w.id: w for w in _CORE}


def all_workloads() -> list[Workload]:
    return list(_CORE)


def get(workload_id: str) -> Workload:
    """The workload with this id (``KeyError`` listing the known ids otherwise)."""
    if workload_id not in _BY_ID:
        raise KeyError(f"unknown workload {workload_id!r}; known: {', '.join(_BY_ID)}")
    return _BY_ID[workload_id]


def suite(name: str) -> tuple[str, bool, list[Workload]]:
    """``(version, smoke, workloads)`` of a suite."""
    if name not in SUITES:
        raise KeyError(f"unknown suite {name!r}; known: {', '.join(SUITES)}")
    version, smoke = SUITES[name]
    return version, smoke, all_workloads()


__all__ = ["CORE_VERSION", "PARAM_TYPES", "SUITES", "Budget", "Task", "Workload", "all_workloads", "get", "suite"]
