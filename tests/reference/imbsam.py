"""ImbSAM (Zhou et al. 2023): g = ∇L_H(w) + ∇L_T(w + ε_T), ε_T = ρ ∇L_T(w)/‖∇L_T(w)‖, then the base step.
The matrix's objective has no head/tail split: the whole loss is the tail part (ImbSAM = SAM there)."""

from tests.reference import whole_model
from tests.reference.sam import OWN, SAM_DEFAULTS, base_step, grads_at, sam_gradient


def imbsam_split(params, head_fn, tail_fn, states, hparams):
    hp = [{**SAM_DEFAULTS, **h} for h in hparams]
    head = grads_at(head_fn, params)
    tail = sam_gradient(params, tail_fn, hp)
    return base_step(params, [h + t for h, t in zip(head, tail)], states, hp, OWN)


@whole_model
def imbsam(params, loss_fn, states, hparams):
    return imbsam_split(params, lambda ps: 0.0 * sum(p.sum() for p in ps), loss_fn, states, hparams)
