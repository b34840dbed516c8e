"""Route a model's parameters to a matrix optimizer by role: hidden matrices to the matrix rule, the rest to its
fallback (Muon), to the right norm (Scion), or to diagonal preconditioning (Shampoo, SOAP, PSGD-Kron).

Muon's authors apply it to "hidden weight layers" only; "the input embedding, final output layer, and any internal
gains or biases should be optimized using a standard method such as AdamW" (KellerJordan/Muon). Scion instead
gives every layer its own norm (Pethick et al. 2025: spectral for hidden layers, column norm for embeddings,
sign for the output layer, RMS for biases). :func:`matrix_param_groups` builds the param groups for either from a
model, so that::

    opt = optimlab.Muon(matrix_param_groups(model, "muon"))                       # AdamW for non-hidden params
    opt = optimlab.Muon(matrix_param_groups(model, "muon", fallback_lr=3e-4))      # KJ: own lr for AdamW
    opt = optimlab.Scion(matrix_param_groups(model, "scion", options={"head": {"scale": 3000.0}}))

Roles (see :func:`param_roles`), decided per parameter, each shared parameter once:

* ``"embedding"``: parameters of ``nn.Embedding`` / ``nn.EmbeddingBag`` (an output head tied to the embedding
  matrix is the same tensor and stays an embedding), and learned tokens: ≥2-D parameters with a leading
  dimension of 1 not named ``weight`` (a ViT's ``cls_token`` (1, 1, D) and ``pos_embed`` (1, N, D), register and
  mask tokens), which are not matrices (a matrix rule would see them as one (1, N·D) row);
* ``"head"``: the ≥2-D weights of the output layer: ``head="auto"`` takes the modules whose attribute name is one
  of :data:`HEAD_NAMES`, or else the last ``nn.Linear`` registered in the model; or give module names / modules;
* ``"vector"``: parameters with fewer than 2 dimensions (biases, norm gains, scalars) and every parameter of a
  normalization layer (LayerNorm, RMSNorm, GroupNorm, BatchNorm, LocalResponseNorm);
* ``"conv"``: ≥3-D weights (convolution kernels);
* ``"hidden"``: the remaining ≥2-D weights (Linear layers inside the network, attention projections, ...).

Conv kernels (``conv="matrix"``, the default) go to the matrix rule, which every matrix optimizer in optimlab
applies to the matrix ``(out_channels, in_channels·kh·kw)`` (``weight.reshape(shape[0], -1)``): Muon orthogonalizes
it (as KJ's reference does for conv filters), Scion uses its ``spectral_conv`` norm, Shampoo/SOAP/PSGD precondition
its two sides. ``conv="fallback"`` gives them the embedding/head treatment instead (Muon's fallback, the diagonal
mode of Shampoo/SOAP/PSGD).

Group options per optimizer and role (override or extend any of them with ``options={role: {...}}``):

==============  =====================  ==================================  ================================
optimizer       hidden / conv          embedding / head                    vector
==============  =====================  ==================================  ================================
``muon``        ``use_muon=True``      ``use_muon=False``, ``fallback``    ``use_muon=False``, ``fallback``
``scion``       ``norm="spectral"`` /  ``"col"`` (transposed) /            ``norm="bias_rms"``
                ``"spectral_conv"``    ``"sign"``
``shampoo``     (defaults)             ``max_precond_dim=0``               (defaults)
``soap``        (defaults)             ``max_precond_dim=0``               (defaults: Adam for 1-D)
``psgd_kron``   (defaults)             ``preconditioner_max_size=0``       (defaults)
==============  =====================  ==================================  ================================

(``max_precond_dim=0`` / ``preconditioner_max_size=0``: the optimizer's diagonal mode, as its rule for sides too
long to precondition: a vocabulary-sized side is exactly that case.) Every group also carries ``"role"``.

**Weight orientation.** Muon's and Scion's shape-dependent scales (√max(1, d_out/d_in), √(d_out/d_in), 1/d_in)
read a weight as ``(out, in)``, torch's ``nn.Linear`` layout. Hugging Face's ``Conv1D`` (GPT-2 and its kin) stores
``(in, out)``: its weights get a group of their own with ``transpose=True``, which tells Muon and Scion to take the
scale from the transposed shape (the orthogonalized direction does not depend on it). Shampoo, SOAP and PSGD treat
both sides alike and need no flag.

**Weight decay** (:func:`param_groups`) honours timm's convention: the names a model (or any submodule) returns
from ``no_weight_decay()`` and every parameter whose name contains one of ``no_weight_decay_keywords()`` get none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from torch import nn

#: attribute names that mark an output layer for ``head="auto"``
HEAD_NAMES = ("lm_head", "head", "classifier", "fc_out", "output")
ROLES = ("hidden", "conv", "embedding", "head", "vector")
OPTIMIZERS = ("muon", "scion", "shampoo", "soap", "psgd_kron")

_EMBEDDINGS = (nn.Embedding, nn.EmbeddingBag)
_NORMS: tuple[type, ...] = (
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.modules.batchnorm._NormBase,
) + ((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ())


def _head_modules(model: nn.Module, head: Any) -> set[int]:
    if head is None:
        return set()
    if head == "auto":
        named = [m for name, m in model.named_modules() if name.rsplit(".", 1)[-1] in HEAD_NAMES]
        if not named:
            linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
            named = linears[-1:]
        return {id(m) for m in named}
    modules = dict(model.named_modules())
    ids = set()
    for item in head if isinstance(head, Iterable) and not isinstance(head, str) else [head]:
        if isinstance(item, str):
            if item not in modules:
                raise ValueError(f"head: the model has no module named {item!r}")
            item = modules[item]
        ids.add(id(item))
    return ids


def trainable_parameters(model: nn.Module) -> Iterator[tuple[str, nn.Parameter, nn.Module]]:
    """``(full name, parameter, owning module)`` of every trainable parameter, each once (a shared parameter under
    its first name); frozen parameters are left out."""
    seen: set[int] = set()
    for module_name, module in model.named_modules():
        for name, p in module.named_parameters(recurse=False):
            if p.requires_grad and id(p) not in seen:
                seen.add(id(p))
                yield (f"{module_name}.{name}" if module_name else name), p, module


def is_token(name: str, p: nn.Parameter) -> bool:
    """A learned token or position embedding: ≥2-D, leading dimension 1, not a layer's ``weight``."""
    return p.ndim >= 2 and p.shape[0] == 1 and name.rsplit(".", 1)[-1] != "weight"


def is_in_out(p: nn.Parameter, module: nn.Module) -> bool:
    """Whether ``p`` is a weight stored ``(in, out)``: Hugging Face's ``Conv1D`` (weight of shape (nx, nf))."""
    nf = getattr(module, "nf", None)
    return (
        type(module).__name__ == "Conv1D" and p is getattr(module, "weight", None) and p.ndim == 2 and p.shape[1] == nf
    )


def no_weight_decay_names(model: nn.Module) -> tuple[set[str], set[str]]:
    """(full parameter names, name keywords) that ``model`` and its submodules exempt from weight decay through
    timm's ``no_weight_decay()`` (names relative to that module) and ``no_weight_decay_keywords()``."""
    names: set[str] = set()
    keywords: set[str] = set()
    for prefix, module in model.named_modules():
        for attr, into in (("no_weight_decay", names), ("no_weight_decay_keywords", keywords)):
            listed = getattr(module, attr, None)
            if callable(listed) and not isinstance(listed, nn.Module):
                listed = listed()
            if isinstance(listed, (set, frozenset, list, tuple)):
                for item in listed:
                    into.add(f"{prefix}.{item}" if prefix and into is names else str(item))
    return names, keywords


def _decay_exempt(model: nn.Module) -> Callable[[str], bool]:
    names, keywords = no_weight_decay_names(model)
    return lambda full: full in names or any(k in full for k in keywords)


def param_roles(model: nn.Module, *, head: Any = "auto") -> dict[str, str]:
    """``{parameter name: role}`` for every trainable parameter (roles in the module docstring); frozen
    parameters are left out, shared ones appear once (under their first name)."""
    heads = _head_modules(model, head)
    roles: dict[str, str] = {}
    for full, p, module in trainable_parameters(model):
        if isinstance(module, _EMBEDDINGS) or is_token(full, p):
            role = "embedding"
        elif p.ndim < 2 or isinstance(module, _NORMS):
            role = "vector"
        elif id(module) in heads:
            role = "head"
        elif p.ndim >= 3:
            role = "conv"
        else:
            role = "hidden"
        roles[full] = role
    return roles


def _role_options(optimizer: str, fallback: str, conv: str) -> dict[str, dict[str, Any]]:
    if optimizer == "muon":
        aside = {"use_muon": False, "fallback": fallback}
        matrix = {"use_muon": True}
        return {
            "hidden": matrix,
            "conv": matrix if conv == "matrix" else aside,
            "embedding": aside,
            "head": aside,
            "vector": aside,
        }
    if optimizer == "scion":
        if conv != "matrix":
            raise ValueError("scion has no fallback: choose the conv kernels' norm with options={'conv': {...}}")
        return {
            "hidden": {"norm": "spectral"},
            "conv": {"norm": "spectral_conv"},
            "embedding": {"norm": "col", "transpose": True},
            "head": {"norm": "sign"},
            "vector": {"norm": "bias_rms"},
        }
    diagonal = {"psgd_kron": {"preconditioner_max_size": 0}}.get(optimizer, {"max_precond_dim": 0})
    return {
        "hidden": {},
        "conv": {} if conv == "matrix" else diagonal,
        "embedding": diagonal,
        "head": diagonal,
        "vector": {},
    }


def matrix_param_groups(
    model: nn.Module,
    optimizer: str = "muon",
    *,
    fallback: str | None = None,
    fallback_lr: float | None = None,
    head: Any = "auto",
    conv: str = "matrix",
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """Param groups of ``model`` for a matrix optimizer, one per non-empty role (module docstring).

    Args:
        model: the network.
        optimizer: ``"muon"``, ``"scion"``, ``"shampoo"``, ``"soap"`` or ``"psgd_kron"`` (the registry names).
        fallback: Muon only: the registered elementwise algorithm for non-hidden parameters (``"adamw"``).
        fallback_lr: if given, the ``lr`` of the embedding, head and vector groups (and of conv kernels with
            ``conv="fallback"``). KJ's reference uses 3e-4 for AdamW next to Muon's 0.02; by default these groups
            take the optimizer's lr, as Moonlight does (with its 0.2·√max(A, B) scaling).
        head: ``"auto"``, ``None`` (no head role), or module names / modules.
        conv: ``"matrix"`` (conv kernels to the matrix rule, reshaped to (out, in·kh·kw)) or ``"fallback"`` (the
            embedding/head treatment: Muon's fallback, Shampoo/SOAP/PSGD's diagonal mode; not for Scion).
        options: extra group options per role, e.g. ``{"head": {"scale": 3000.0}}`` for Scion.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"optimizer must be one of {list(OPTIMIZERS)}, got {optimizer!r}")
    if fallback is not None and optimizer != "muon":
        raise ValueError(f"fallback applies to muon only; {optimizer} routes non-hidden parameters by group options")
    options = dict(options or {})
    unknown = set(options) - set(ROLES)
    if unknown:
        raise ValueError(f"options: unknown roles {sorted(unknown)}; roles are {list(ROLES)}")
    if conv not in ("matrix", "fallback"):
        raise ValueError(f"conv must be 'matrix' or 'fallback', got {conv!r}")
    roles = param_roles(model, head=head)
    owners = {full: (p, module) for full, p, module in trainable_parameters(model)}
    per_role = _role_options(optimizer, fallback or "adamw", conv)
    matrix_roles = ("hidden", "conv") if conv == "matrix" else ("hidden",)
    oriented = optimizer in ("muon", "scion")  # their scales read the weight's orientation
    groups = []
    for role in ROLES:
        names = [name for name, r in roles.items() if r == role]
        in_out = [n for n in names if oriented and role in matrix_roles and is_in_out(*owners[n])]
        for members, extra in (([n for n in names if n not in in_out], {}), (in_out, {"transpose": True})):
            if not members:
                continue
            group = {"params": [owners[n][0] for n in members], "role": role, **per_role[role], **extra}
            if fallback_lr is not None and role not in matrix_roles:
                group["lr"] = fallback_lr
            group.update(options.get(role, {}))
            groups.append(group)
    return groups


# ----------------------------------------------------------------------------- weight-decay groups
_NO_DECAY_MODULES: tuple[type, ...] = (
    nn.Embedding,
    nn.EmbeddingBag,
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.modules.batchnorm._NormBase,
)


def param_groups(
    model: nn.Module,
    weight_decay: float = 0.0,
    *,
    no_decay: Callable[[str, nn.Parameter, nn.Module], bool] | None = None,
    matrix_optimizer: str | None = None,
    fallback: str | None = None,
    **group_options: Any,
) -> list[dict[str, Any]]:
    """Two param groups: weights with ``weight_decay``, and biases/norm/embedding parameters without.

    A parameter goes to the no-decay group when it is 0- or 1-dimensional (biases, norm scales), when it belongs
    to an embedding or normalization module, when it is a learned token or position embedding (:func:`is_token`),
    when the model lists it in ``no_weight_decay()`` or its name contains one of ``no_weight_decay_keywords()``
    (timm's convention, on the model or any submodule), or when ``no_decay(name, param, module)`` says so. Frozen
    parameters are left out. Extra keyword arguments are copied into every group.

    With ``matrix_optimizer="muon"`` (or ``"scion"``, ``"shampoo"``, ``"soap"``, ``"psgd_kron"``) the groups are
    routed by role instead (:func:`matrix_param_groups`: hidden matrices to the matrix rule,
    embeddings/head/vectors to ``fallback`` for Muon, default AdamW); hidden and conv weights get
    ``weight_decay``, the other roles none unless ``no_decay`` is overridden by ``group_options``.
    """
    listed = _decay_exempt(model)
    if matrix_optimizer is not None:
        exempt_ids = {id(p) for full, p, _ in trainable_parameters(model) if listed(full)}
        groups = []
        for group in matrix_param_groups(model, matrix_optimizer, fallback=fallback):
            decayed = group["role"] in ("hidden", "conv")
            kept = [p for p in group["params"] if decayed and id(p) in exempt_ids]
            rest = [p for p in group["params"] if not (decayed and id(p) in exempt_ids)]
            for params, wd in ((rest, weight_decay if decayed else 0.0), (kept, 0.0)):
                if params:
                    groups.append({**group, "params": params, "weight_decay": wd, **group_options})
        return groups
    if fallback is not None:
        raise ValueError("fallback is only meaningful with matrix_optimizer")
    decay, keep = [], []
    for full, p, module in trainable_parameters(model):
        exempt = p.ndim <= 1 or isinstance(module, _NO_DECAY_MODULES) or is_token(full, p) or listed(full)
        if no_decay is not None and no_decay(full, p, module):
            exempt = True
        (keep if exempt else decay).append(p)
    groups = []
    if decay:
        groups.append({"params": decay, "weight_decay": weight_decay, **group_options})
    if keep:
        groups.append({"params": keep, "weight_decay": 0.0, **group_options})
    return groups
