"""Learning-rate schedules, the gradient-norm-refined schedule, weight averaging and adaptive batch sizes.

Everything here works beside any ``torch.optim.Optimizer`` (optimlab's or torch's) and resumes exactly from its
``state_dict()`` (tensors and plain numbers only, ``torch.load(weights_only=True)`` reads them)::

    sched = optimlab.schedules.WSD(opt, total_steps=10_000, warmup_steps=500, decay_steps=2_000, decay_shape="1-sqrt")
    ema = optimlab.schedules.EMA(model, decay=0.999)
    for batch in loader:
        ...; opt.step(); sched.step(); ema.update()
    with ema.swapped():
        evaluate(model)

* :mod:`.lr` — :class:`WarmupLinear`, :class:`WarmupCosine`, :class:`WSD` (linear / cosine / 1-sqrt decay),
  :class:`MultiplierSchedule` (a schedule given per step);
* :mod:`.refined` — :func:`refined_schedule` from a previous run's gradient norms and :class:`GradNormRecorder`
  (Defazio et al., 2023, arXiv:2310.07831, seed #225);
* :mod:`.averaging` — :class:`EMA` and :class:`SWA` of the parameters (match ``torch.optim.swa_utils``);
* :mod:`.batch_size` — :class:`AdaptiveBatchSize` with the norm and inner-product tests on per-example gradients
  (AdAdaGrad, Lau et al., 2024, arXiv:2402.11215, seed #54).
"""

from .averaging import EMA, SWA, ParameterAverage
from .batch_size import AdaptiveBatchSize, BatchSizeTest, inner_product_test, norm_test
from .lr import DECAY_SHAPES, WSD, MultiplierSchedule, WarmupCosine, WarmupLinear, decay_factor
from .refined import GradNormRecorder, median_filter, refined_schedule

__all__ = [
    "DECAY_SHAPES",
    "EMA",
    "SWA",
    "WSD",
    "AdaptiveBatchSize",
    "BatchSizeTest",
    "GradNormRecorder",
    "MultiplierSchedule",
    "ParameterAverage",
    "WarmupCosine",
    "WarmupLinear",
    "decay_factor",
    "inner_product_test",
    "median_filter",
    "norm_test",
    "refined_schedule",
]
