"""Bilevel optimization and implicit differentiation.

    min_λ F(λ) = f(w*(λ), λ)    s.t.    w*(λ) = argmin_w g(w, λ)

* :mod:`.implicit` — :func:`custom_root` / :func:`custom_argmin`: any solver's output gets implicit-function-theorem
  gradients through a ``torch.autograd.Function`` that composes with ``torch.func`` (``grad``, ``vjp``, ``jacrev``,
  ``jacfwd``, ``hessian``, ``vmap``) — Blondel et al. (2022), arXiv:2105.15183.
* :mod:`.linear_solve` — :func:`cg`, :func:`neumann` (Lorraine et al. 2020, arXiv:1911.02590), :func:`direct`.
* :mod:`.hypergradient` — :class:`BilevelProblem`, :func:`implicit_hypergradient` (IFT), :func:`unrolled_hypergradient`
  (truncated back-propagation, Shaban et al. 2019, arXiv:1810.10667), :func:`inner_descent`.
* Outer-loop methods (:class:`HyperMethod`: ``step()``, ``hypergradient()``, ``state_dict()``):
  :class:`AID` (IFT + CG / Neumann), :class:`TruncatedUnroll`, :class:`HOAG` (Pedregosa 2016, arXiv:1602.02355),
  :class:`F2SA` (Kwon et al. 2023, arXiv:2301.10945), :class:`PenaltyBilevel` (V-PBGD, Shen & Chen 2023,
  arXiv:2302.05185).

Example — the validation-loss gradient with respect to per-feature ridge penalties::

    inner = lambda w, lam: train_loss(w) + 0.5 * (lam.exp() * w**2).sum()
    problem = BilevelProblem(outer=lambda w, lam: val_loss(w), inner=inner)
    p = implicit_hypergradient(problem, w_star, lam, linear_solve=functools.partial(cg, maxiter=50))
    ps = torch.func.vmap(lambda l: implicit_hypergradient(problem, solve(l), l))(lams)   # a batch of λ
"""

from ._method import HyperMethod
from .aid import AID, TruncatedUnroll
from .f2sa import F2SA
from .hoag import HOAG, hoag_tolerance
from .hypergradient import BilevelProblem, implicit_hypergradient, inner_descent, unrolled_hypergradient
from .implicit import custom_argmin, custom_root
from .linear_solve import LinearSolve, MatVec, cg, direct, neumann
from .penalty import PenaltyBilevel

__all__ = [
    "AID",
    "F2SA",
    "HOAG",
    "BilevelProblem",
    "HyperMethod",
    "LinearSolve",
    "MatVec",
    "PenaltyBilevel",
    "TruncatedUnroll",
    "cg",
    "custom_argmin",
    "custom_root",
    "direct",
    "hoag_tolerance",
    "implicit_hypergradient",
    "inner_descent",
    "neumann",
    "unrolled_hypergradient",
]
