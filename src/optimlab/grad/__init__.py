"""Gradient transforms applied between ``loss.backward()`` and ``optimizer.step()``.

Every clipping transform works in place on an iterable of parameters (their ``.grad``) or on a list of gradient
tensors (a tensor that requires grad is read as a parameter, any other tensor as a gradient) and returns the
pre-clip statistics as a :class:`ClipStats` (``total_norm``, ``threshold``, ``fraction_clipped``) for logging::

    loss.backward()
    stats = optimlab.grad.clip_grad_norm_(model.parameters(), 1.0)   # same numbers as torch's
    log(grad_norm=stats.total_norm, clipped=stats.fraction_clipped)
    optimizer.step()

Contents (one idea per module):

* :mod:`.clip` — global-norm and value clipping (bit-identical to ``torch.nn.utils``), non-finite policy;
* :mod:`.coordinate` — coordinate-wise clipping (Zhang et al., 2020) and quantile clipping (seed #221);
* :mod:`.agc` — adaptive gradient clipping, unit-wise ‖G_i‖/max(‖W_i‖, ε) ≤ λ (Brock et al., 2021);
* :mod:`.robust` — robust estimators from a stack of per-sample gradients: coordinate-wise/geometric median,
  median of means, clipped means, and the online median tracker (seeds #72, #185);
* :mod:`.dp` — per-sample gradients with ``torch.func`` and the DP-SGD gradient (Abadi et al., 2016, seed #133).
"""

from ._common import ClipStats, grads_of
from .agc import adaptive_clip_grad_, unitwise_norm
from .clip import clip_grad_norm_, clip_grad_value_
from .coordinate import clip_coordinate_, clip_quantile_, quantile_threshold
from .dp import DPSGDResult, clip_per_sample_, dp_sgd_grad, per_sample_grads, per_sample_norms
from .robust import clipped_mean, coordinate_median, geometric_median, median_of_means, median_tracking_step_

__all__ = [
    "ClipStats",
    "DPSGDResult",
    "adaptive_clip_grad_",
    "clip_coordinate_",
    "clip_grad_norm_",
    "clip_grad_value_",
    "clip_per_sample_",
    "clip_quantile_",
    "clipped_mean",
    "coordinate_median",
    "dp_sgd_grad",
    "geometric_median",
    "grads_of",
    "median_of_means",
    "median_tracking_step_",
    "per_sample_grads",
    "per_sample_norms",
    "quantile_threshold",
    "unitwise_norm",
]
