"""Small problems and drivers shared by the tests of the Hessian-based optimizers (AdaHessian, Sophia, OASIS,
SANIA): unlike the generic matrix objective (separable, so its Hessian is diagonal and every Rademacher probe gives
the exact diagonal), these have cross terms, so results depend on the actual probes drawn."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests import _harness as H

#: W1, b1 | W2, b2: two param groups as in the generic matrix (first two tensors, then the rest)
MLP_SHAPES = [(5, 3), (5,), (3, 5), (3,)]


def mlp_params(dtype=torch.float64, seed=0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [(0.7 * torch.randn(s, generator=g, dtype=torch.float64)).to(dtype) for s in MLP_SHAPES]


def _data(t: int, n: int = 24):
    g = torch.Generator().manual_seed(500 + t)
    x = torch.randn(n, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (n,), generator=g)
    return x, y


def mlp_logits(params, t: int) -> torch.Tensor:
    """A tanh MLP on mini-batch t (a new batch each step)."""
    w1, b1, w2, b2 = params
    x, _ = _data(t)
    return torch.tanh(x.to(w1.dtype) @ w1.T + b1) @ w2.T + b2


def mlp_labels(t: int) -> torch.Tensor:
    return _data(t)[1]


def mlp_loss(params, t: int) -> torch.Tensor:
    return F.cross_entropy(mlp_logits(params, t), mlp_labels(t))


def run(opt, params, steps: int, start: int = 0, loss=mlp_loss, logits: bool = False, create_graph=None):
    """``steps`` closure-driven steps on mini-batches start, start+1, ...; ``logits=True`` makes the closure
    return (loss, logits) with the graph retained (Sophia-G's contract)."""
    if create_graph is None:
        create_graph = getattr(opt, "requires_hvp", False)
    for t in range(start, start + steps):

        def closure(t=t):
            opt.zero_grad()
            if logits:
                out = mlp_logits(params, t)
                value = F.cross_entropy(out, mlp_labels(t))
                value.backward(retain_graph=True, create_graph=create_graph)
                return value, out
            value = loss(params, t)
            value.backward(create_graph=create_graph)
            return value

        opt.step(closure)
    return opt


def make(cls, params, seed: int = 0, **hp):
    """The optimizer over ``params`` in the matrix's two groups (the second halves lr and weight decay)."""
    return cls(H.split_groups(params, hp), seed=seed, **hp)


def reference_run(ref, params0, hp: dict, steps: int, loss=mlp_loss):
    """A whole-model reference over the same mini-batches and groups as :func:`run` + :func:`make`."""
    params = [p.detach().clone() for p in params0]
    states: list[dict] = [{} for _ in params]
    per_param = [H.group_hparams(hp, 0 if i < 2 else 1) for i in range(len(params))]
    for t in range(steps):
        params, states = ref(params, lambda ps, t=t: loss(ps, t), states, per_param)
    return params, states


def assert_matches_reference(opt, params, ref_params, ref_states, rtol=1e-10, atol=1e-12):
    for i, (p, q) in enumerate(zip(params, ref_params)):
        torch.testing.assert_close(p.detach(), q, rtol=rtol, atol=atol, msg=f"param {i}")
    for i, p in enumerate(params):
        for key, value in opt.state[p].items():
            expected = ref_states[i][key]
            if key == "step":
                assert float(value) == expected
            else:
                torch.testing.assert_close(value, expected, rtol=rtol, atol=atol, msg=f"state {key} of param {i}")


def assert_exact_resume(make_opt, params0, n1: int, n2: int, **run_kw):
    """n1 steps, checkpoint through torch.save/load(weights_only=True), n2 more == n1 + n2 straight, bit for bit."""
    straight = [p.clone().requires_grad_(True) for p in params0]
    opt_s = run(make_opt(straight), straight, n1 + n2, **run_kw)
    first = [p.clone().requires_grad_(True) for p in params0]
    opt_1 = run(make_opt(first), first, n1, **run_kw)
    saved = H.roundtrip({"params": [p.detach() for p in first], "optim": opt_1.state_dict()})
    resumed = [p.clone().requires_grad_(True) for p in saved["params"]]
    opt_2 = make_opt(resumed)
    opt_2.load_state_dict(saved["optim"])
    run(opt_2, resumed, n2, start=n1, **run_kw)
    for p, q in zip(straight, resumed):
        assert torch.equal(p, q)
    for p, q in zip(straight, resumed):
        for key, value in opt_s.state[p].items():
            other = opt_2.state[q][key]
            assert value.dtype == other.dtype and torch.equal(value, other), key
    return straight
