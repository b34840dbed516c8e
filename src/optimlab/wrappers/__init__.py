"""Optimizers that wrap a base optimizer (sharpness-aware family, ⊥Grad), and SAF's trajectory loss.

One module per method; every wrapper shares its base's param groups (a scheduler on the wrapper drives the
base), checkpoints its own state and the base's in one ``state_dict()`` (plain tensors), and takes the base
as a registry name, an optimizer class or an instance:

* :mod:`.sam` — SAM, ASAM, USAM and SAM-ON (``norm_layer_param_groups``), m-sharpness;
* :mod:`.fsam` — FSAM (Fisher-masked SAM); :mod:`.imbsam` — ImbSAM (closure returns head and tail losses);
* :mod:`.amp` — adversarial model perturbation; :mod:`.fdgr` — finite-difference gradient regularization;
* :mod:`.orthograd` — ⊥Grad (single pass);
* :mod:`.saf` — SAF's trajectory loss (an ``nn.Module`` used with any plain optimizer, not a wrapper).

The perturb → re-evaluate → restore wrappers share one driver (:mod:`._twopass`): ``step(closure)``,
``step(closure, micro_batches=m)`` with ``closure(k)`` (m-sharpness), ``step(closure, no_sync=ddp_model)``
(local first pass under DDP), the two-call API ``first_step()`` / ``second_step()`` for gradient
accumulation and clipping between passes, and ``scaler=`` for ``torch.amp.GradScaler`` (each pass unscaled
once). See :mod:`.sam`'s docstring for the patterns.
"""
