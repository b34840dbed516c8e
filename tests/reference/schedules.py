"""Plain references of the schedules in optimlab.schedules, written from the papers' formulas.

* warm-up + decay: lr_t = lr·t/W during warm-up; stable at lr; then over the last D steps
  linear 1 − p, cosine ½(1 + cos πp), 1-sqrt 1 − √p, p = (t − (T − D))/D, mixed with the final ratio r as
  r + (1 − r)·shape (MiniCPM's WSD, arXiv:2404.06395; Hägele et al., arXiv:2405.18392);
* refined schedule (Defazio et al., arXiv:2310.07831, Algorithm 1): w_t = G_t^{-2}, η_t = w_t Σ_{p>t} w_p, η/max η.
"""

import math


def wsd_factor(t, total, warmup, decay, shape, final_ratio):
    if t < warmup:
        return t / warmup
    start = total - decay
    if t < start or decay == 0:
        return 1.0
    p = min((t - start) / decay, 1.0)
    d = {"linear": 1 - p, "cosine": 0.5 * (1 + math.cos(math.pi * p)), "1-sqrt": 1 - math.sqrt(p)}[shape]
    return final_ratio + (1 - final_ratio) * d


def refined(norms, power=2.0):
    w = [g ** (-power) for g in norms]
    eta = []
    for t in range(len(w)):
        eta.append(w[t] * sum(w[t + 1 :]))
    top = max(eta)
    return [e / top for e in eta]
