"""The formulation API: bad hyperparameters raise ValueError naming the field; violations are checked against the
declared constraints; per-sample dual gradients land on the observed examples only; projection, slack, proxy
(strict) violations, and the state_dict holds only tensors."""

from __future__ import annotations

import io

import pytest
import torch

from optimlab import constrained as C


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        (dict(name="a b"), "name"),
        (dict(name="c", kind="lessthan"), "kind"),
        (dict(name="c", size=0), "size"),
        (dict(name="c", kind="equality", resilience=1.0), "resilience"),
        (dict(name="c", resilience=0.0), "resilience"),
        (dict(name="c", init=-1.0), "init"),
    ],
)
def test_constraint_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        C.Constraint(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [(dict(lr=-1.0), "lr"), (dict(kp=-1.0), "kp"), (dict(ki=-0.5), "ki"), (dict(ema_nu=1.0), "ema_nu"),
     (dict(init="ones"), "init")],
)  # fmt: skip
def test_nupi_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        C.NuPI([torch.zeros(1, requires_grad=True)], **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [(dict(growth=0.5), "growth"), (dict(every=0), "every"), (dict(max=0.0), "max"),
     (dict(tolerance=-1.0), "tolerance")],
)  # fmt: skip
def test_penalty_schedule_validation(kwargs, field):
    with pytest.raises(ValueError, match=field):
        C.PenaltySchedule(**kwargs)


def test_formulation_and_primal_dual_validation():
    with pytest.raises(ValueError, match="constraints"):
        C.Lagrangian([])
    with pytest.raises(ValueError, match="names"):
        C.Lagrangian([C.Constraint("a"), C.Constraint("a")])
    with pytest.raises(ValueError, match="penalty"):
        C.AugmentedLagrangian([C.Constraint("a")], penalty=0.0)
    with pytest.raises(ValueError, match="epsilon"):
        C.FeasibleLearning(3, -0.1)
    form = C.Lagrangian([C.Constraint("a")])
    x = torch.nn.Parameter(torch.zeros(2))
    primal = torch.optim.SGD([x], lr=0.1)
    with pytest.raises(ValueError, match="method"):
        C.PrimalDual(form, primal, torch.optim.SGD(form.dual_parameters(), lr=0.1), method="gda")
    with pytest.raises(ValueError, match="dual_optimizer"):
        C.PrimalDual(form, primal)
    with pytest.raises(ValueError, match="dual_optimizer"):
        C.PrimalDual(form, primal, torch.optim.SGD([x], lr=0.1))
    with pytest.raises(ValueError, match="penalty_schedule"):
        dual = torch.optim.SGD(form.dual_parameters(), lr=0.1)
        C.PrimalDual(form, primal, dual, penalty_schedule=C.PenaltySchedule())
    with pytest.raises(ValueError, match="alternating"):
        C.PrimalDual(C.QuadraticPenalty([C.Constraint("a")]), primal, method="alternating")


def test_violations_are_checked_against_the_declaration():
    form = C.Lagrangian([C.Constraint("a", size=2), C.Constraint("s", size=5, per_sample=True)])
    ok_s = C.Violation(torch.ones(2), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="missing"):
        form.compute(None, {"a": torch.zeros(2)})
    with pytest.raises(ValueError, match="unknown"):
        form.compute(None, {"a": torch.zeros(2), "s": ok_s, "b": torch.zeros(1)})
    with pytest.raises(ValueError, match="expected 2"):
        form.compute(None, {"a": torch.zeros(3), "s": ok_s})
    with pytest.raises(ValueError, match="needs indices"):
        form.compute(None, {"a": torch.zeros(2), "s": torch.ones(2)})
    with pytest.raises(ValueError, match="same length"):
        form.compute(None, {"a": torch.zeros(2), "s": C.Violation(torch.ones(2), torch.tensor([1]))})


def test_per_sample_dual_gradient_is_the_violation_at_the_observed_examples():
    form = C.FeasibleLearning(6, epsilon=0.5, init=1.0, dtype=torch.float64)
    losses = torch.tensor([0.2, 1.0, 0.7], dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([4, 1, 4])  # a repeated example accumulates
    terms = form.compute(None, form.violations(losses, idx))
    expected = torch.tensor([0, 0.5, 0, 0, -0.3 + 0.2, 0], dtype=torch.float64)
    torch.testing.assert_close(terms.dual_grads["loss"], expected)
    terms.primal.backward()  # mean over the batch of λ_i (ℓ_i − ε)
    torch.testing.assert_close(losses.grad, torch.full((3,), 1 / 3, dtype=torch.float64))


def test_resilient_slack_and_projection():
    form = C.FeasibleLearning(3, epsilon=0.1, resilience=4.0, dtype=torch.float64)
    lam = form.multipliers["loss"]
    with torch.no_grad():
        lam.copy_(torch.tensor([2.0, -1.0, 0.0], dtype=torch.float64))
    form.project_()
    torch.testing.assert_close(lam.detach(), torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64))
    torch.testing.assert_close(form.slack("loss"), torch.tensor([0.5, 0.0, 0.0], dtype=torch.float64))
    terms = form.compute(None, form.violations(torch.full((3,), 0.6, dtype=torch.float64), torch.arange(3)))
    # g − λ/α = 0.5 − slack
    torch.testing.assert_close(terms.dual_grads["loss"], torch.tensor([0.0, 0.5, 0.5], dtype=torch.float64))


def test_equality_multipliers_are_free_and_strict_violations_drive_the_dual():
    form = C.Lagrangian([C.Constraint("h", kind=C.EQUALITY, init=0.0), C.Constraint("g")])
    x = torch.nn.Parameter(torch.tensor([0.0]))
    pd = C.PrimalDual(form, torch.optim.SGD([x], lr=0.0), torch.optim.SGD(form.dual_parameters(), lr=1.0))
    info = pd.step(lambda: (None, {"h": x - 1.0, "g": C.Violation(x - 1.0, strict=torch.tensor([-0.25]))}))
    # minimizing dual optimizer: grad −∂L/∂λ; h = −1 → μ = −1 (free sign); g uses the strict −0.25 → λ = 0 (projected)
    assert float(form.multipliers["h"].detach()) == -1.0 and float(form.multipliers["g"].detach()) == 0.0
    assert float(info.violations["g"]) == -0.25


def test_state_dict_is_tensors_only():
    form = C.AugmentedLagrangian([C.Constraint("a", size=3)], penalty=2.0)
    buf = io.BytesIO()
    torch.save(form.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert set(state) == {"multipliers.a", "penalty"}
    assert float(C.AugmentedLagrangian([C.Constraint("a", size=3)]).penalty) == 1.0


@pytest.mark.parametrize(
    ("init", "nu", "expected"),
    [("zeros", 0.0, [2.0, 7.0]), ("sgd", 0.0, [1.0, 6.0]), ("zeros", 0.5, [1.5, 5.75])],
)
def test_nupi_known_steps(init, nu, expected):
    """Errors e₀ = 1, e₁ = 3, κ_P = κ_I = 1, lr 1: λ₁ = κ_I e₀ + κ_P (ξ₀ − ξ₋₁), λ₂ = λ₁ + κ_I e₁ + κ_P (ξ₁ − ξ₀)."""
    p = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = C.NuPI([p], lr=1.0, kp=1.0, ki=1.0, ema_nu=nu, init=init, maximize=True)
    seen = []
    for e in (1.0, 3.0):
        p.grad = torch.full((1,), e, dtype=torch.float64)
        opt.step()
        seen.append(float(p.detach()))
    assert seen == expected


@pytest.mark.parametrize(("method", "evaluations"), [("simultaneous", 1), ("alternating", 1), ("extragradient", 2),
                                                      ("extrapolation_from_past", 1)])  # fmt: skip
def test_evaluations_per_step_and_the_extrapolation_leaves_no_trace_in_optimizer_state(method, evaluations):
    """Closure calls per step; the extrapolation of extragradient / extrapolation-from-the-past is undone, so a
    stateful primal optimizer (Adam) counts one step per PrimalDual step and the dual one too."""
    form = C.Lagrangian([C.Constraint("g")], dtype=torch.float64)
    x = torch.nn.Parameter(torch.tensor([2.0, -1.0], dtype=torch.float64))
    adam = torch.optim.Adam([x], lr=0.1)
    dual = torch.optim.Adam(form.dual_parameters(), lr=0.1, maximize=True)
    pd = C.PrimalDual(form, adam, dual, method=method)
    calls = []

    def closure():
        calls.append(1)
        return (x**2).sum(), {"g": (1 - x.sum()).reshape(1)}

    for step in range(1, 4):
        pd.step(closure)
        assert len(calls) == evaluations * step
        assert float(adam.state[x]["step"]) == step
        assert float(dual.state[form.multipliers["g"]]["step"]) == step
