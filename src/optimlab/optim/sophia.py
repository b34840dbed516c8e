"""Sophia: second-order clipped stochastic optimization (Sophia-H with Hutchinson, Sophia-G with Gauss–Newton–Bartlett).

Liu, Li, Hall, Liang & Ma (2023/2024), *Sophia: A Scalable Stochastic Second-order Optimizer for Language Model
Pre-training*, ICLR 2024, arXiv:2305.14342 (Algorithms 1–3). Official Sophia-G code: github.com/Liuhong99/Sophia;
the authors' JAX Sophia-H/G: stanford-crfm/levanter (``optim/sophia.py``).
"""

from __future__ import annotations

from typing import Any

import torch

import optimlab.curvature as C  # absolute: `from .. import curvature` would go through optimlab.__getattr__

from .. import registry as R
from . import _kernels as K
from ._rules import BETA, OneOf, Range, Tuple
from ._second_order import PROBE_RULES, SecondOrderOptimizer
from ._second_order import refresh_due as _due


def sophia_update_(
    p,
    grad,
    exp_avg,
    hessian,
    *,
    step: K.Scalar,
    lr: K.Scalar,
    beta1: K.Scalar,
    rho: K.Scalar,
    eps: K.Scalar,
    weight_decay: K.Scalar,
) -> None:
    """One Sophia step on one tensor (the Hessian EMA h was refreshed before, every k steps).

    m ← β1 m + (1 − β1) g;  p ← p(1 − lr·λ) − lr · clip(m / max(ρ·h, eps), −1, 1)  (Algorithm 3; ρ is the
    paper's γ). Every coordinate moves by at most lr (plus the decay term).
    """
    K.decoupled_decay_(p, lr, weight_decay)
    K.ema_(exp_avg, grad, beta1)
    ratio = (exp_avg / (hessian * rho).clamp_(min=eps)).clamp_(-1.0, 1.0)
    K.add_scaled_(p, ratio, -lr)


SOPHIA_RULES = {
    "lr": Range(0.0),
    "betas": Tuple(2, BETA),
    "rho": Range(0.0, low_open=True),
    "eps": Range(0.0, low_open=True),
    "weight_decay": Range(0.0),
    "update_period": Range(1, integer=True),
}


class _Sophia(SecondOrderOptimizer):
    """Shared by Sophia-H and Sophia-G: state m ("exp_avg") and the Hessian EMA h ("hessian", zero-initialized,
    no bias correction, refreshed at steps 1, k+1, 2k+1, ...: h ← β2 h + (1 − β2) ĥ)."""

    state_names = ("exp_avg", "hessian")

    def _estimates(self, due, loss, extras) -> list:
        raise NotImplementedError

    def prepare(self, entries, loss, extras, closure):
        due = [e for e in entries if _due(e.t, e.group["update_period"])]
        if due:
            for e, estimate in self._estimates(due, loss, extras):
                K.ema_(e.state["hessian"], estimate, e.group["betas"][1])
        return entries

    def refresh_due(self) -> bool:
        """Whether the next step refreshes the Hessian estimate of some parameter (Sophia-G: the closure must
        then return the logits with their graph, e.g. ``loss.backward(retain_graph=opt.refresh_due())``)."""
        for group in self.param_groups:
            for p in group["params"]:
                state = self.state.get(p)
                t = int(state["step"].item()) + 1 if state else 1
                if _due(t, group["update_period"]):
                    return True
        return False

    update = staticmethod(sophia_update_)


class SophiaH(_Sophia):
    """Sophia-H (Liu et al., 2023): EMA of the gradient divided by an EMA of a Hutchinson estimate of the Hessian
    diagonal (refreshed every ``update_period`` = k steps), clipped per coordinate to [−1, 1], with decoupled
    weight decay: p ← p(1 − lr·λ) − lr·clip(m / max(ρ·h, eps), 1).

    The closure must call ``loss.backward(create_graph=True)``. ``rho`` is the paper's γ (0.01 for Sophia-H).
    A negative or tiny curvature estimate makes max(ρh, eps) = eps, so that coordinate takes a full sign step
    lr·sign(m) (the paper's fallback). Probes: Gaussian u ~ N(0, I) (Algorithm 1), ``hessian_samples`` of them.
    """

    hyperparameters = {**SOPHIA_RULES, **PROBE_RULES}
    requires_hvp = True

    def __init__(
        self,
        params,
        lr: float = 6e-4,
        betas: tuple[float, float] = (0.96, 0.99),
        rho: float = 0.01,
        eps: float = 1e-12,
        weight_decay: float = 0.2,
        update_period: int = 10,
        hessian_samples: int = 1,
        hessian_distribution: str = "gaussian",
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            rho=rho,
            eps=eps,
            weight_decay=weight_decay,
            update_period=update_period,
            hessian_samples=hessian_samples,
            hessian_distribution=hessian_distribution,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    def _estimates(self, due, loss, extras):
        return self._hessian_diagonals(due)


ESTIMATORS = ("gnb", "squared_gradient")

_NEEDS_LOGITS = (
    "SophiaG estimates the Gauss-Newton diagonal from the model's logits (Gauss-Newton-Bartlett): the closure "
    "must return (loss, logits) or (loss, logits, mask), with logits of shape (..., num_classes) still attached "
    "to their graph, i.e. call loss.backward(retain_graph=True) (or retain_graph=opt.refresh_due()). For a loss "
    "without logits pass estimator='squared_gradient'."
)


class SophiaG(_Sophia):
    """Sophia-G (Liu et al., 2023): Sophia with the Gauss–Newton–Bartlett estimate of the Gauss–Newton diagonal.

    **Closure contract.** Every ``update_period`` steps (the first step included) the optimizer needs the model's
    logits for the current mini-batch. The closure computes the loss as usual, calls
    ``loss.backward(retain_graph=True)`` and returns ``(loss, logits)`` (or ``(loss, logits, mask)`` with a
    boolean mask of the label positions that count, e.g. no padding); ``step`` returns the loss. On a refresh
    step the optimizer samples labels ŷ ~ softmax(logits) (from the per-step probe generator), backpropagates the
    mean cross-entropy on ŷ through the same graph and sets ĥ = B · ĝ ⊙ ĝ with B the number of label positions
    (Algorithm 2; the official code multiplies B into the denominator instead, the same update). Between
    refreshes the closure may return the bare loss. :meth:`refresh_due` says whether the next step refreshes
    (``loss.backward(retain_graph=opt.refresh_due())`` keeps the graph only when needed).

    ``estimator="squared_gradient"`` uses ĥ = g ⊙ g of the closure's own gradient instead (what the official
    ``update_hessian()`` computes when called after an ordinary backward: an empirical-Fisher proxy, not the
    paper's estimator) for objectives that have no logits.

    ``rho`` is the paper's γ (0.05 for Sophia-G; the official code's ``rho``), the update is
    p ← p(1 − lr·λ) − lr·clip(m / max(ρ·h, eps), 1).
    """

    hyperparameters = {**SOPHIA_RULES, "estimator": OneOf(ESTIMATORS)}
    requires_logits = True

    def __init__(
        self,
        params,
        lr: float = 6e-4,
        betas: tuple[float, float] = (0.96, 0.99),
        rho: float = 0.05,
        eps: float = 1e-12,
        weight_decay: float = 0.2,
        update_period: int = 10,
        estimator: str = "gnb",
        *,
        maximize: bool = False,
        **options: Any,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            rho=rho,
            eps=eps,
            weight_decay=weight_decay,
            update_period=update_period,
            estimator=estimator,
            maximize=maximize,
        )
        super().__init__(params, defaults, **options)

    def _estimates(self, due, loss, extras):
        out = [(e, e.grad * e.grad) for e in due if e.group["estimator"] == "squared_gradient"]
        gnb = [e for e in due if e.group["estimator"] == "gnb"]
        if gnb:
            if not extras or not isinstance(extras[0], torch.Tensor):
                raise RuntimeError(_NEEDS_LOGITS)
            logits = extras[0]
            mask = extras[1] if len(extras) > 1 else None
            if logits.grad_fn is None:
                raise RuntimeError(_NEEDS_LOGITS)
            generator = self._generator(gnb[0].t, logits.device)
            try:
                with torch.enable_grad():
                    diag = C.gauss_newton_bartlett(logits, [e.p for e in gnb], generator, mask=mask)
            except RuntimeError as err:
                if "backward through the graph a second time" in str(err):
                    raise RuntimeError(_NEEDS_LOGITS) from err
                raise
            out += self._finite_estimates(gnb, diag)
        return out


_SOPHIA_PAPER = R.Paper(
    "Sophia: A Scalable Stochastic Second-order Optimizer for Language Model Pre-training",
    "Liu, Li, Hall, Liang, Ma",
    2023,
    "2305.14342",
    "#138",
)

#: conventions shared by Sophia-H and Sophia-G (docs/conventions.md)
_SOPHIA_CONVENTIONS = (
    R.Convention(
        point="β1",
        paper="0.96 (the ICLR version's setup)",
        elsewhere="the official (Sophia-G) PyTorch code: 0.965",
        switch="betas",
        choices=(((0.96, 0.99), "the paper"), ((0.965, 0.99), "the official code")),
    ),
    R.Convention(
        point="eps in the clipped ratio",
        paper="clip(m / max(γ·h, ε), 1)",
        elsewhere="the official (Sophia-G) PyTorch code: m / (ρ·B·h + ε), the same for h ≥ 0",
        fixed="the paper's max (a negative Hutchinson estimate gives a sign step instead of reversing the step)",
    ),
)

_SOPHIA_NOTES = (
    "Paper (ICLR version, Algorithm 3): θ ← θ − ηλθ; θ ← θ − η·clip(m_t / max{γ·h_t, ε}, 1), h refreshed when "
    "t mod k = 1, h initialized to 0, m and h not debiased; β1 = 0.96, β2 = 0.99, ε = 1e-12, k = 10 (paper's "
    "setup). γ = 0.01 (Sophia-H) / 0.05 (Sophia-G) as in the authors' levanter code; lr 6e-4 and weight decay 0.2 "
    "from the official README (GPT-2 125M). The official PyTorch code uses β1 = 0.965 and adds ε to ρ·B·h "
    "instead of taking the max (the same for h ≥ 0; with the max a negative Hutchinson estimate falls back to "
    "a sign step instead of reversing the step). Probes/labels are drawn from a per-step seeded generator, "
    "so resuming between two refreshes is exact without stored RNG state."
)

R.register(
    R.AlgorithmSpec(
        name="sophia_h",
        cls=SophiaH,
        family="second_order",
        paper=_SOPHIA_PAPER,
        summary="EMA of g over an EMA of a Hutchinson Hessian diagonal (every k steps), clipped per coordinate",
        hparams="lr betas rho eps weight_decay update_period hessian_samples hessian_distribution",
        search_space={
            "lr": R.LogUniform(1e-5, 1e-1),
            "rho": R.LogUniform(1e-3, 1.0),
            "beta1": R.OneMinusLogUniform(0.8, 0.99),
            "weight_decay": R.LogUniform(1e-4, 1.0),
        },
        state_tensors=2,
        notes=_SOPHIA_NOTES,
        conventions=_SOPHIA_CONVENTIONS,
    )
)

R.register(
    R.AlgorithmSpec(
        name="sophia_g",
        cls=SophiaG,
        family="second_order",
        paper=_SOPHIA_PAPER,
        summary="Sophia with the Gauss-Newton-Bartlett diagonal (labels sampled from the model's softmax)",
        hparams="lr betas rho eps weight_decay update_period estimator",
        search_space={
            "lr": R.LogUniform(1e-5, 1e-1),
            "rho": R.LogUniform(1e-3, 1.0),
            "beta1": R.OneMinusLogUniform(0.8, 0.99),
            "weight_decay": R.LogUniform(1e-4, 1.0),
        },
        state_tensors=2,
        notes=_SOPHIA_NOTES
        + " Sophia-G exists in no other library; its closure returns (loss, logits) (see the class docstring).",
        conventions=(
            *_SOPHIA_CONVENTIONS,
            R.Convention(
                point="the curvature estimate",
                paper="Gauss–Newton–Bartlett (Algorithm 2): ĥ = B·ĝ ⊙ ĝ, ĝ the gradient on labels sampled from the "
                "model's softmax",
                elsewhere="the official code's `update_hessian()`, called after an ordinary backward, squares the "
                "gradient of the true labels (an empirical-Fisher proxy)",
                switch="estimator",
                choices=(
                    ("gnb", "the paper (the closure returns logits)"),
                    ("squared_gradient", "g ⊙ g of the closure"),
                ),
            ),
        ),
    )
)
