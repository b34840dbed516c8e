"""The intentional differences from torch.optim that torch's own test inputs run into.

Each entry: (test, optimizer, input description) -> the row of docs/compatibility.md that explains it (the
"what" column, quoted exactly; tests/conformance/test_torch_suite.py checks that the row exists). A listed case is
expected to fail (strict xfail): when one starts to pass the entry must go.
"""

from __future__ import annotations

FOREACH_TENSOR = "lr or betas as tensors with foreach=True"
MIXED_BETAS = "betas mixing a float and a tensor"
MUON_SHAPES = "Muon takes parameters of any shape"
EARLY_COMPLEX = "unsupported complex parameters are refused at construction"
MUON_GROUP_KEY = "Muon's param groups name the scaling adjust_lr"

DIFFERENCES: dict[tuple[str, str, str], str] = {
    **{
        ("errors", name, "lr as Tensor doesn't work with foreach & not capturable"): FOREACH_TENSOR
        for name in ("Adam", "AdamW")
    },
    **{
        ("errors", name, r"betas\[0\] as a Tensor is not supported for capturable=False and foreach=True"): (
            FOREACH_TENSOR
        )
        for name in ("Adam", "AdamW")
    },
    **{("errors", name, "betas must be either both floats or both Tensors"): MIXED_BETAS for name in ("Adam", "AdamW")},
    ("errors", "Muon", "only support 2D parameters"): MUON_SHAPES,
    ("errors", "Muon", "does not support complex parameters"): EARLY_COMPLEX,
    ("errors", "Adafactor", "does not support complex parameters"): EARLY_COMPLEX,
    ("cross_load", "Muon", "optimlab->torch"): MUON_GROUP_KEY,
}


def difference(test: str, name: str, desc: str) -> str | None:
    return DIFFERENCES.get((test, name, desc))
