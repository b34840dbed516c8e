"""Parity with Cooper (cooper-optim, the authors' library; Gallego-Posada et al. 2025, arXiv:2504.01212) on a shared
problem where the conventions coincide: batch-level inequality and equality constraints, SGD on both players, 25
steps in float64 (and Feasible Learning's per-sample multipliers, bridging Cooper's batch sum and our batch mean
through the primal learning rate). Cases: simultaneous GDA, alternating dual-primal, extragradient (Cooper's ExtraSGD),
νPI duals (``init="zeros"``, where Cooper 1.0.1 and the paper agree; ν = 0.25 because Cooper holds the gains as
float32 tensors, so κ_P(1 − ν) is rounded to float32 unless exact), the augmented Lagrangian at ρ = 1 (Cooper's
dual gradient is g, ours ρg) and the quadratic penalty."""

from __future__ import annotations

import pytest
import torch

from optimlab import constrained as C

cooper = pytest.importorskip("cooper", reason="cooper-optim (the parity extra) is not installed")

STEPS, LR, DUAL_LR = 25, 0.05, 0.2


def _data():
    g = torch.Generator().manual_seed(7)
    a = torch.randn(6, 4, generator=g, dtype=torch.float64)
    b = torch.randn(6, generator=g, dtype=torch.float64)
    c = torch.randn(2, 4, generator=g, dtype=torch.float64)
    return a, b, c


def _measure(x):
    a, b, c = _data()
    f = 0.5 * ((a @ x - b) ** 2).mean() + 0.1 * (x**4).sum()  # not quadratic: the steps differ if anything does
    return f, c @ x - 0.1, (x.sum() - 0.5).reshape(1)


def _ours(form_cls, method, dual):
    kw = {"penalty": 1.0} if form_cls is not C.Lagrangian else {}
    cons = [C.Constraint("ineq", size=2, init=0.05), C.Constraint("eq", kind=C.EQUALITY)]
    if form_cls is C.QuadraticPenalty:
        cons = [C.Constraint("ineq", size=2), C.Constraint("eq", kind=C.EQUALITY)]
    form = form_cls(cons, dtype=torch.float64, **kw)
    x = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    dual_opt = None
    if form.dual_parameters():
        dual_opt = (
            C.NuPI(form.dual_parameters(), lr=DUAL_LR, kp=1.5, ki=1.0, ema_nu=0.25, maximize=True)
            if dual == "nupi"
            else torch.optim.SGD(form.dual_parameters(), lr=DUAL_LR, maximize=True)
        )
    pd = C.PrimalDual(form, torch.optim.SGD([x], lr=LR), dual_opt, method=method)

    def closure():
        f, g, h = _measure(x)
        return f, {"ineq": g, "eq": h}

    for _ in range(STEPS):
        pd.step(closure)
    lam = {n: p.detach() for n, p in form.multipliers.items()}
    return x.detach(), lam


def _cooper(form_name, method, dual):
    from cooper import formulations as F
    from cooper import multipliers as M
    from cooper import optim as O
    from cooper import penalty_coefficients as PC

    form = {"lagrangian": F.Lagrangian, "augmented": F.AugmentedLagrangian, "penalty": F.QuadraticPenalty}[form_name]
    uses_mult = form_name != "penalty"
    rho = {"penalty_coefficient": PC.DensePenaltyCoefficient(torch.tensor(1.0, dtype=torch.float64))}

    class Problem(cooper.ConstrainedMinimizationProblem):
        def __init__(self):
            super().__init__()
            for name, kind, n in (
                ("ineq", cooper.ConstraintType.INEQUALITY, 2),
                ("eq", cooper.ConstraintType.EQUALITY, 1),
            ):
                mult = None
                if uses_mult:
                    init = torch.full((n,), 0.05 if name == "ineq" else 0.0, dtype=torch.float64)
                    mult = M.DenseMultiplier(init=init, dtype=torch.float64)
                kw = rho if form_name != "lagrangian" else {}
                setattr(self, name, cooper.Constraint(kind, formulation_type=form, multiplier=mult, **kw))

        def compute_cmp_state(self, x):
            f, g, h = _measure(x)
            return cooper.CMPState(
                loss=f,
                observed_constraints={self.ineq: cooper.ConstraintState(g), self.eq: cooper.ConstraintState(h)},
            )

    problem = Problem()
    x = torch.nn.Parameter(torch.zeros(4, dtype=torch.float64))
    if method == "extragradient":
        primal = O.ExtraSGD([x], lr=LR)
        dual_opt = O.ExtraSGD(problem.dual_parameters(), lr=DUAL_LR, maximize=True)
        opt = O.ExtrapolationConstrainedOptimizer(problem, primal, dual_opt)
    elif not uses_mult:
        opt = O.UnconstrainedOptimizer(problem, torch.optim.SGD([x], lr=LR))
    else:
        dual_opt = (
            O.nuPI(
                problem.dual_parameters(),
                lr=DUAL_LR,
                Kp=1.5,
                Ki=1.0,
                ema_nu=0.25,
                maximize=True,
                init_type=O.nuPIInitType.ZEROS,
            )
            if dual == "nupi"
            else torch.optim.SGD(problem.dual_parameters(), lr=DUAL_LR, maximize=True)
        )
        cls = O.SimultaneousOptimizer if method == "simultaneous" else O.AlternatingDualPrimalOptimizer
        opt = cls(problem, torch.optim.SGD([x], lr=LR), dual_opt)
    for _ in range(STEPS):
        opt.roll(compute_cmp_state_kwargs={"x": x})
    lam = {n: m.weight.detach().reshape(-1) for n, m in problem.named_multipliers()} if uses_mult else {}
    return x.detach(), lam


CASES = {
    "gda": (C.Lagrangian, "lagrangian", "simultaneous", "sgd"),
    "alternating": (C.Lagrangian, "lagrangian", "alternating", "sgd"),
    "extragradient": (C.Lagrangian, "lagrangian", "extragradient", "sgd"),
    "nupi": (C.Lagrangian, "lagrangian", "simultaneous", "nupi"),
    "augmented_rho1": (C.AugmentedLagrangian, "augmented", "simultaneous", "sgd"),
    "quadratic_penalty": (C.QuadraticPenalty, "penalty", "simultaneous", "sgd"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_matches_cooper(case):
    ours_cls, cooper_name, method, dual = CASES[case]
    x, lam = _ours(ours_cls, method, dual)
    cx, clam = _cooper(cooper_name, method, dual)
    torch.testing.assert_close(x, cx, rtol=1e-12, atol=1e-14)
    assert set(lam) == set(clam)
    for n in lam:
        torch.testing.assert_close(lam[n], clam[n], rtol=1e-12, atol=1e-14)
    assert float((x - torch.zeros(4, dtype=torch.float64)).abs().max()) > 1e-2  # the run moved


def test_feasible_learning_matches_cooper_indexed_multipliers():
    """Per-sample constraints (Feasible Learning, f ≡ 0): Cooper's IndexedMultiplier sums λ_i g_i over the batch where
    we average, so with plain SGD on the model the two coincide when our primal lr is B times Cooper's; the dual
    steps (SGD ascent on the observed examples' multipliers, projected) coincide as they are."""
    from cooper import multipliers as M
    from cooper import optim as O

    g = torch.Generator().manual_seed(11)
    n, batch = 12, 4
    feats = torch.randn(n, 3, generator=g, dtype=torch.float64)
    target = torch.randn(n, generator=g, dtype=torch.float64)
    eps = 0.3
    batches = [torch.randperm(n, generator=torch.Generator().manual_seed(t))[:batch] for t in range(STEPS)]

    def losses(w, idx):
        return (feats[idx] @ w - target[idx]) ** 2

    form = C.FeasibleLearning(n, eps, init=0.5, dtype=torch.float64)
    w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    dual = torch.optim.SGD(form.dual_parameters(), lr=DUAL_LR, maximize=True)
    pd = C.PrimalDual(form, torch.optim.SGD([w], lr=LR * batch), dual)
    for idx in batches:
        pd.step(lambda idx=idx: (None, form.violations(losses(w, idx), idx)))

    class FL(cooper.ConstrainedMinimizationProblem):
        def __init__(self):
            super().__init__()
            mult = M.IndexedMultiplier(init=torch.full((n,), 0.5, dtype=torch.float64), dtype=torch.float64)
            self.fl = cooper.Constraint(cooper.ConstraintType.INEQUALITY, multiplier=mult)

        def compute_cmp_state(self, w, idx):
            state = cooper.ConstraintState(violation=losses(w, idx) - eps, constraint_features=idx)
            return cooper.CMPState(loss=None, observed_constraints={self.fl: state})

    problem = FL()
    cw = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    cdual = torch.optim.SGD(problem.dual_parameters(), lr=DUAL_LR, maximize=True)
    opt = O.SimultaneousOptimizer(problem, torch.optim.SGD([cw], lr=LR), cdual)
    for idx in batches:
        opt.roll(compute_cmp_state_kwargs={"w": cw, "idx": idx})
    torch.testing.assert_close(w.detach(), cw.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(form.weights, problem.fl.multiplier.weight.detach().reshape(-1), rtol=1e-12, atol=1e-14)
    assert float(w.detach().abs().max()) > 1e-2 and float((form.weights - 0.5).abs().max()) > 1e-2
