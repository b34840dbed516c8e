"""Curvature toolkit for second-order and orthogonalized optimizers (AdaHessian, Sophia-H/G, OASIS, SANIA,
FOSI, PSGD, Muon, Scion, ...).

* :mod:`~optimlab.curvature.hvp` — Hessian-vector products: double backward (:func:`hvp`) and ``torch.func``
  forward-over-reverse (:func:`functional_hvp`, :func:`functional_grad_and_hvp`).
* :mod:`~optimlab.curvature.hutchinson` — Hutchinson (1989) estimates of diag(H) and tr(H)
  (:func:`hutchinson_diagonal`, :func:`hutchinson_trace`) and AdaHessian's :func:`spatial_average`.
* :mod:`~optimlab.curvature.rng` — probes from a caller-supplied ``torch.Generator`` and the generator's state
  as a uint8 tensor for exact resume (:func:`generator_state`, :func:`set_generator_state`).
* :mod:`~optimlab.curvature.eigen` — top-k eigenpairs from HVPs: :func:`power_iteration`, :func:`lanczos`
  (full reorthogonalization), :func:`sharpness` (λ_max).
* :mod:`~optimlab.curvature.newton_schulz` — Newton–Schulz orthogonalization (Muon's quintic, the cubic, or
  custom coefficients; batched and flattened-conv forms; bf16 or fp32) and the exact :func:`polar_factor`.
* :mod:`~optimlab.curvature.gauss_newton` — Sophia-G's Gauss–Newton–Bartlett estimator
  (:func:`gauss_newton_bartlett`).
* :mod:`~optimlab.curvature.vectors` — lists of tensors as flat vectors (:func:`flatten`, :func:`unflatten`).

Every stochastic routine takes a ``torch.Generator``: results are deterministic given its state.
"""

from __future__ import annotations

from .eigen import EigenResult, lanczos, power_iteration, sharpness
from .gauss_newton import gauss_newton_bartlett, sample_labels
from .hutchinson import hutchinson_diagonal, hutchinson_trace, spatial_average
from .hvp import HVPFn, functional_grad_and_hvp, functional_hvp, hvp
from .newton_schulz import (
    COEFFICIENTS,
    QUINTIC_BAND,
    QUINTIC_BAND_THRESHOLD,
    QUINTIC_MAX,
    newton_schulz,
    newton_schulz_flattened,
    polar_factor,
)
from .rng import generator_state, make_generator, random_probe, random_probes, set_generator_state
from .vectors import dot, flatten, unflatten

__all__ = [
    "COEFFICIENTS",
    "QUINTIC_BAND",
    "QUINTIC_BAND_THRESHOLD",
    "QUINTIC_MAX",
    "EigenResult",
    "HVPFn",
    "dot",
    "flatten",
    "functional_grad_and_hvp",
    "functional_hvp",
    "gauss_newton_bartlett",
    "generator_state",
    "hutchinson_diagonal",
    "hutchinson_trace",
    "hvp",
    "lanczos",
    "make_generator",
    "newton_schulz",
    "newton_schulz_flattened",
    "polar_factor",
    "power_iteration",
    "random_probe",
    "random_probes",
    "sample_labels",
    "set_generator_state",
    "sharpness",
    "spatial_average",
    "unflatten",
]
