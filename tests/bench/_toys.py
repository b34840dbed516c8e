"""Toy optimizers that exercise the harness's closure and HVP paths (not registered anywhere)."""

from __future__ import annotations

import torch

from optimlab.bench.adapters import AlgorithmHandle


class ToySAM(torch.optim.Optimizer):
    """SAM-like: gradient at p + ρ g/‖g‖ (second closure call), step from p. Two gradient evaluations per step."""

    requires_closure = True

    def __init__(self, params, lr=1e-2, rho=0.05):
        super().__init__(params, dict(lr=lr, rho=rho))

    @torch.no_grad()
    def step(self, closure=None):
        if closure is None:
            raise RuntimeError("ToySAM needs a closure")
        with torch.enable_grad():
            loss = closure()
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None]
        norm = torch.sqrt(sum((p.grad**2).sum() for p in params)) + 1e-12
        rho = self.param_groups[0]["rho"]
        eps = {id(p): rho * p.grad / norm for p in params}
        for p in params:
            p.add_(eps[id(p)])
        with torch.enable_grad():
            closure()
        for group in self.param_groups:
            for p in group["params"]:
                if id(p) in eps:
                    p.sub_(eps[id(p)])
                if p.grad is not None:
                    p.add_(p.grad, alpha=-group["lr"])
        return loss


class ToyHutchinson(torch.optim.Optimizer):
    """Diagonal-preconditioned step with a Hutchinson estimate |v ⊙ Hv|: one HVP per step."""

    requires_hvp = True

    def __init__(self, params, lr=1e-3):
        super().__init__(params, dict(lr=lr))

    def step(self, closure=None):
        params = [p for g in self.param_groups for p in g["params"] if p.grad is not None and p.grad.requires_grad]
        if params:
            vs = [torch.randint_like(p, 2) * 2 - 1 for p in params]
            hvs = torch.autograd.grad([p.grad for p in params], params, grad_outputs=vs, allow_unused=True)
        else:
            vs, hvs = [], []
        curv = {id(p): (v * hv).abs() if hv is not None else None for p, v, hv in zip(params, vs, hvs)}
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    d = curv.get(id(p))
                    denom = 1.0 if d is None else d + 1.0
                    p.add_(-group["lr"] * p.grad.detach() / denom)
        return None


def handle(cls, name: str) -> AlgorithmHandle:
    return AlgorithmHandle(
        id=name,
        library="tests",
        library_version="0",
        factory=cls,
        requires_closure=getattr(cls, "requires_closure", False),
        requires_hvp=getattr(cls, "requires_hvp", False),
        source_hash=name,
        typed_groups=True,
    )
