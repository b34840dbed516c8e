"""Hyperparameter rules: each optimizer declares one rule per hyperparameter.

A rule checks a value (raising ``ValueError`` that names the field and the allowed range) and can produce
values that violate it, so the generic test matrix checks every field of every optimizer automatically.

Messages start the way torch.optim's do for the same bad value ("Invalid learning rate: -1", "Invalid beta
parameter at index 0: 1.0", "Invalid weight_decay value: -1", "Tensor lr must be 1-element"), so code and tests
written against torch's messages keep working, and go on with the rule ("lr must be a number in [0.0, inf)").
A rule's ``torch_message`` replaces that opening where torch phrases a field its own way (Adafactor's
"Clipping threshold d should be >= 1 but is: 0.0").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

#: torch.optim's words for a field in "Invalid <words>: <value>" (others: "<name> value")
_TORCH_LABELS = {"lr": "learning rate", "eps": "epsilon value"}


def invalid(name: str, value: Any, requirement: str, torch_message: str | None = None) -> ValueError:
    """The ValueError for a bad ``value`` of field ``name``: torch.optim's opening, then ``requirement``."""
    if torch_message is not None:
        return ValueError(f"{torch_message} but is: {value!r} ({name} {requirement})")
    field, _, index = name.partition("[")
    if field == "betas" and index:
        label = f"beta parameter at index {index.rstrip(']')}"
    else:
        label = _TORCH_LABELS.get(name, f"{name} value")
    return ValueError(f"Invalid {label}: {value!r} ({name} {requirement})")


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"Tensor {name} must be 1-element, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise invalid(name, value, "must be a number")
    return float(value)


@dataclass(frozen=True)
class Range:
    """A real (or integer) value in an interval; ``low_open``/``high_open`` exclude the end points. An infinite
    value is refused (an ``lr=inf`` would write inf/NaN at the first step) unless ``infinite`` says that ±inf is a
    meaningful "no limit" setting (e.g. a growth-rate cap)."""

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    optional: bool = False  # None allowed
    torch_message: str | None = None  # torch.optim's own message for this field, where it has one
    infinite: bool = False  # ±inf allowed (where the interval reaches it)

    def describe(self) -> str:
        left = "[" if not self.low_open and (self.low != -math.inf or self.infinite) else "("
        right = "]" if not self.high_open and (self.high != math.inf or self.infinite) else ")"
        kind = "an integer" if self.integer else "a number"
        return f"{kind} in {left}{self.low}, {self.high}{right}" + (" or None" if self.optional else "")

    def check(self, name: str, value: Any) -> None:
        if value is None and self.optional:
            return
        if self.integer and (isinstance(value, bool) or not isinstance(value, int)):
            raise invalid(name, value, f"must be {self.describe()}", self.torch_message)
        x = _as_float(name, value)
        ok = not math.isnan(x) and (self.infinite or not math.isinf(x))
        ok = ok and (x > self.low if self.low_open else x >= self.low)
        ok = ok and (x < self.high if self.high_open else x <= self.high)
        if not ok:
            raise invalid(name, value, f"must be {self.describe()}", self.torch_message)

    def bad_values(self) -> list[Any]:
        bad: list[Any] = [] if self.integer else [math.nan]
        if not self.infinite and not self.integer:
            bad.append(math.inf if self.high == math.inf else -math.inf)
        if self.low != -math.inf:
            bad.append(self.low if self.low_open else self.low - 1)
        if self.high != math.inf:
            bad.append(self.high if self.high_open else self.high + 1)
        if self.integer:
            bad.append(1.5)
        if not self.optional:
            bad.append(None)
        return bad


@dataclass(frozen=True)
class Tuple:
    """A fixed-length tuple whose entries each obey ``item`` (e.g. ``betas``)."""

    length: int
    item: Range

    def check(self, name: str, value: Any) -> None:
        if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != self.length:
            raise ValueError(f"{name} must be a tuple of {self.length} values, got {value!r}")
        for i, v in enumerate(value):
            self.item.check(f"{name}[{i}]", v)

    def bad_values(self) -> list[Any]:
        ok = [0.5] * self.length
        bads: list[Any] = [tuple(ok[:-1]), "0.9"]
        for i in range(self.length):
            for b in self.item.bad_values():
                candidate = list(ok)
                candidate[i] = b
                bads.append(tuple(candidate))
        return bads


#: The usual momentum-coefficient rule: 0 <= beta < 1.
BETA = Range(0.0, 1.0, high_open=True)


@dataclass(frozen=True)
class OneOf:
    """One of a fixed set of choices (strings, booleans, ...)."""

    choices: tuple

    def check(self, name: str, value: Any) -> None:
        if not any(value is c or (type(value) is type(c) and value == c) for c in self.choices):
            raise ValueError(f"{name} must be one of {list(self.choices)}, got {value!r}")

    def bad_values(self) -> list[Any]:
        return ["not-a-choice"] if all(isinstance(c, bool) for c in self.choices) else ["not-a-choice", 3]


Rule = Range | Tuple | OneOf
