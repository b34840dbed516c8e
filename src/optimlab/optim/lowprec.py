"""AdamW and Lion with low-precision optimizer states: bf16 states with stochastic rounding, and 8-bit block-wise
quantized states.

The math is not copied: every step dequantizes the states to the compute dtype (fp32, or fp64 for fp64 parameters),
calls the shared update function (:func:`optimlab.optim.adam.adam_update_` with decoupled decay, or
:func:`optimlab.optim.lion.lion_update_`) on those full-precision copies, and stores the results back.

**bf16 states** (``AdamWBf16``, ``LionBf16``): m (and v) are bfloat16 tensors, 2 bytes per entry. Writing back rounds
stochastically by default (``state_rounding="stochastic"``: E[stored] = value, so small EMA increments are not lost to
round-to-nearest; ``"nearest"`` is plain casting). The random bits come from a counter-based hash of (the parameter's
key, the step, the state's index, the element's index), not from a generator, so a resumed run draws the same bits and
stays bit-exact, and the rounding compiles (no generator in the graph). The key is a 0-d int64 state tensor
``rng_key`` = seed·1_000_003 + i·7_919 for the i-th parameter to get state (the ``seed=`` option of the base class), so
tensors of the same shape get different bits. Hash: the 32-bit "lowbias32" integer finalizer (x ^= x >> 16;
x *= 0x7feb352d; x ^= x >> 15; x *= 0x846ca68b; x ^= x >> 16, all mod 2³²), the top 16 bits of
h(element + h(h(key_lo) ^ key_hi ^ h(2·step + state))) are added below bf16's mantissa before truncation (the
per-element hash runs in wrapping int32 arithmetic, the per-call seed in int64). Values that
are not fp32 (fp64 math) are first rounded to fp32 (nearest), then stochastically to bf16.

**8-bit states** (``AdamW8bit``, ``Lion8bit``; Dettmers, Lewis, Shleifer & Zettlemoyer (2022), *8-bit Optimizers via
Block-wise Quantization*, arXiv:2110.02861): each state tensor is flattened, split into blocks of ``block_size``
entries (the last block zero-padded), and each block stores its absolute maximum N_b (fp32) and one uint8 code per
entry, the index of the nearest value of a 256-entry quantization map to x/N_b (ties to the lower code); dequantized
values are map[code]·N_b. Codes are stored as a (blocks × block_size) uint8 tensor (so the block size is known from
the shape; the padding is < block_size bytes per tensor), scales as ``<name>_absmax``. Maps (``quant_map``):

* ``"dynamic"`` (default, the paper's dynamic tree quantization as in bitsandbytes): 0, 1 and, for i = 0..6, the
  values 10^(i−6)·c for c the midpoints of a uniform grid of 2^i (signed map, each sign) or 2^(i+1) (unsigned map)
  intervals on [0.1, 1], computed in fp32 — equal bit for bit to ``bitsandbytes.functional.create_dynamic_map``.
  The first moment (signed) uses the signed map, Adam's second moment (≥ 0) the unsigned one.
* ``"linear"``: signed codes (i − 128)/127, unsigned codes i/255.

The nearest code is exact (a 65536-entry lookup on the value's top 16 bits, then one comparison with the neighbouring
decision boundaries; 2–3× faster on CPU than a binary search). bitsandbytes' CPU kernel picks a different code for
~1–3% of the entries (next to decision boundaries, and values below ~1e-5·N_b in the unsigned map);
``tests/test_lowprec.py`` checks that ours is never farther from the value and that the two optimizers'
trajectories agree. **Adam's second moment never rounds to zero**: a positive v whose nearest code is 0 gets the
smallest positive code. With plain nearest rounding an entry whose gradient stopped (a dead ReLU unit) keeps a small
m while its v, far below its block's maximum, rounds to 0, and the next step m̂/(√v̂ + eps) is ~1e5·lr (measured: a
64×64 weight moved 7.8 in 4 steps at lr=1e-2 where AdamW moves 0.04). bitsandbytes' CPU kernel avoids the zero in
its own way (values below ~1e-5·N_b go to 1.56e-5·N_b); tests/test_lowprec.py checks that both keep each step near
lr on such a model. As in bitsandbytes, tensors with fewer than ``min_8bit_size`` entries (default 4096) keep fp32
states. The paper's block size is 2048 (bitsandbytes uses 256). Quantization is round-to-nearest (no stochastic
rounding, as in bitsandbytes).

States are not fp32 here by design, so the registry records declare fp32/fp64 parameters only (the generic bf16-
parameter test asserts fp32 states); bf16 parameters work and are tested in ``tests/test_lowprec.py``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .. import registry as R
from ._layout import LAYOUT, PerParamLayout
from ._rules import BETA, OneOf, Range, Tuple
from .adam import adam_update_
from .lion import lion_update_

MASK32 = 0xFFFFFFFF


# ----------------------------------------------------------------------------- counter-based random bits
def _mul32(x: Tensor, c: int) -> Tensor:
    """(x·c) mod 2³² for int64 tensors 0 ≤ x < 2³² without int64 overflow (16-bit halves)."""
    lo = x & 0xFFFF
    hi = x >> 16
    return (lo * c + ((hi * c) & 0xFFFF) * 65536) & MASK32


def hash32(x: Tensor) -> Tensor:
    """The lowbias32 finalizer on int64 tensors holding 32-bit values (used for the per-call seed)."""
    x = x & MASK32
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def hash32_wrapping(x: Tensor) -> Tensor:
    """The same finalizer on int32 tensors, with two's-complement wrap-around arithmetic (7× faster than the int64
    form; the logical shifts are arithmetic shifts masked to the shifted width)."""
    x = x ^ ((x >> 16) & 0xFFFF)
    x = x * 0x7FEB352D
    x = x ^ ((x >> 15) & 0x1FFFF)
    x = x * -0x7B935975  # 0x846CA68B as a signed 32-bit integer
    return x ^ ((x >> 16) & 0xFFFF)


def random_bits16(numel: int, key: Tensor, step: Any, stream: int, device: torch.device) -> Tensor:
    """``numel`` pseudo-random 16-bit integers (int32) determined by (key, step, stream)."""
    key = key.to(torch.int64)
    step_i = torch.as_tensor(step).to(torch.int64)
    seed = hash32(hash32(key & MASK32) ^ ((key >> 32) & MASK32) ^ hash32(2 * step_i + stream))
    seed = (((seed + 2**31) & MASK32) - 2**31).to(torch.int32)  # the same 32 bits as a signed int32
    idx = torch.arange(numel, device=device, dtype=torch.int32)
    return (hash32_wrapping(idx + seed.to(device)) >> 16) & 0xFFFF


def store_bf16_(dst: Tensor, src: Tensor, key: Tensor, step: Any, stream: int, rounding: str) -> None:
    """dst (bf16) ← src, rounded stochastically with the hashed bits or to nearest."""
    x = src.float().contiguous()
    if rounding == "nearest":
        dst.copy_(x)
        return
    noise = random_bits16(x.numel(), key, step, stream, x.device).view(x.shape)
    rounded = ((x.view(torch.int32) + noise) & -65536).view(torch.float32)
    # overflow of a finite value past bf16's largest: keep nearest. (±inf stays ±inf and NaN stays NaN through the
    # addition, so testing ``rounded`` alone is the same choice as testing both; 1 pass instead of 5.)
    rounded = torch.where(torch.isinf(rounded), x, rounded)
    dst.copy_(rounded)


# ----------------------------------------------------------------------------- block-wise 8-bit quantization
def dynamic_map(signed: bool) -> Tensor:
    """The 256-value dynamic tree quantization map (see the module docstring), sorted, fp32."""
    values = [0.0, 1.0]
    for i in range(7):
        intervals = 2**i if signed else 2 ** (i + 1)
        edges = torch.linspace(0.1, 1.0, intervals + 1, dtype=torch.float32)
        mids = (edges[:-1] + edges[1:]) / 2
        values += (10.0 ** (i - 6) * mids).tolist()
        if signed:
            values += (-(10.0 ** (i - 6)) * mids).tolist()
    return torch.tensor(sorted(values), dtype=torch.float32)


def linear_map(signed: bool) -> Tensor:
    i = torch.arange(256, dtype=torch.float64)
    return ((i - 128) / 127 if signed else i / 255).to(torch.float32)


class Codebook(NamedTuple):
    """A quantization map with a lookup table for the nearest code: ``lut[top 16 bits of the fp32 value]`` is the
    nearest code of that bucket's midpoint; every bucket holds at most one decision boundary (checked when the
    table is built), so one comparison with the neighbouring boundaries (``bounds``, padded with ∓inf) gives the
    exact nearest code. 2–3× faster on CPU than a binary search over the 255 boundaries."""

    values: Tensor  # 256 sorted fp32 values
    lut: Tensor  # 65536 int32 candidate codes
    bounds: Tensor  # 257 fp32: -inf, the 255 midpoints between consecutive values, +inf
    low: Tensor  # 65536 int32: the code of the smallest value of each bucket (fp32 fast path)
    edge: Tensor  # 65536 fp32: the boundary inside each bucket (+inf if none): code = low + (x > edge)


def codebook(values: Tensor) -> Codebook:
    mids = (values[1:] + values[:-1]) / 2
    prefix = torch.arange(65536, dtype=torch.int64)
    middle = ((prefix << 16) | 0x8000).to(torch.int32).view(torch.float32)
    middle = torch.nan_to_num(middle, nan=0.0, posinf=3.0, neginf=-3.0)
    lo = (prefix << 16).to(torch.int32).view(torch.float32)
    hi = ((prefix << 16) | 0xFFFF).to(torch.int32).view(torch.float32)
    finite = torch.isfinite(lo) & torch.isfinite(hi)
    spread = (torch.bucketize(hi, mids) - torch.bucketize(lo, mids)).abs()
    if bool((spread[finite] > 1).any()):
        raise AssertionError("a 16-bit bucket holds two quantization boundaries")
    inf = torch.tensor([math.inf])
    lut = torch.bucketize(middle, mids).to(torch.int32)
    smallest = torch.where(finite, torch.minimum(lo, hi), middle)
    low = torch.where(finite, torch.bucketize(smallest, mids), lut.long())
    has_edge = finite & (spread > 0)
    edge = torch.where(has_edge, mids[low.clamp(max=mids.numel() - 1)], inf)
    return Codebook(values, lut, torch.cat([-inf, mids, inf]), low.to(torch.int32), edge)


CODEBOOKS = {
    ("dynamic", True): codebook(dynamic_map(True)),
    ("dynamic", False): codebook(dynamic_map(False)),
    ("linear", True): codebook(linear_map(True)),
    ("linear", False): codebook(linear_map(False)),
}


def nearest_codes(x: Tensor, book: Codebook, keep_nonzero: bool = False) -> Tensor:
    """The index of the nearest value of ``book`` for every entry of ``x`` (ties to the lower index), int32; with
    ``keep_nonzero`` (unsigned maps), a positive entry whose nearest value is 0 gets the smallest positive one."""
    flat = x.reshape(-1)
    if x.dtype == torch.float32:  # two lookups on the value's top 16 bits and one comparison
        prefix = (flat.view(torch.int32) >> 16) & 0xFFFF
        low, edge = book.low.to(x.device), book.edge.to(x.device)
        # index_select with int32 indices: ~5x faster on CPU than advanced indexing (which wants int64 indices)
        c = low.index_select(0, prefix)
        c += flat > edge.index_select(0, prefix)
        if keep_nonzero:
            c.masked_fill_((flat > 0) & (c == 0), 1)
        return c.view(x.shape)
    lut = book.lut.to(x.device)
    bounds = book.bounds.to(device=x.device)
    if x.dtype != bounds.dtype:  # midpoints in the compute dtype (fp64 math compares with fp64 midpoints)
        values = book.values.to(device=x.device, dtype=x.dtype)
        bounds = torch.cat([bounds[:1].to(x.dtype), (values[1:] + values[:-1]) / 2, bounds[-1:].to(x.dtype)])
    prefix = (flat.float().view(torch.int32) >> 16) & 0xFFFF
    c = lut.index_select(0, prefix)
    up, down = flat > bounds.index_select(0, c + 1), flat <= bounds.index_select(0, c)
    c += up
    c.sub_(down.view(torch.uint8))  # bool holds 0/1 bytes; torch refuses to subtract a bool tensor
    if keep_nonzero:
        c.masked_fill_((flat > 0) & (c == 0), 1)
    return c.view(x.shape)


def quantize_(codes: Tensor, absmax: Tensor, x: Tensor, book: Codebook, keep_nonzero: bool = False) -> None:
    """codes (blocks × B, uint8), absmax (blocks, fp32) ← the block-wise quantization of ``x`` (nearest codes; see
    :func:`nearest_codes` for ``keep_nonzero``)."""
    blocks, size = codes.shape
    flat = x.reshape(-1)
    padded = torch.nn.functional.pad(flat, (0, blocks * size - flat.numel())).view(blocks, size)
    absmax.copy_(padded.abs().amax(dim=1))
    scale = absmax.to(x.dtype)
    normed = padded / torch.where(scale > 0, scale, torch.ones_like(scale))[:, None]
    codes.copy_(nearest_codes(normed.contiguous(), book, keep_nonzero).to(torch.uint8))


def dequantize(codes: Tensor, absmax: Tensor, book: Codebook, like: Tensor) -> Tensor:
    """The values of quantized state as a tensor shaped and typed like ``like``."""
    table = book.values.to(device=codes.device, dtype=like.dtype)
    values = table.index_select(0, codes.view(-1).int()).view(codes.shape).mul_(absmax.to(like.dtype)[:, None])
    return values.view(-1)[: like.numel()].view(like.shape)


# ----------------------------------------------------------------------------- update functions
def _adamw_(p, grad, m, v, *, step, lr, beta1, beta2, eps, weight_decay) -> None:
    adam_update_(
        p, grad, m, v, step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, decoupled=True
    )


def _lion_(p, grad, m, *, step, lr, beta1, beta2, weight_decay) -> None:
    lion_update_(p, grad, m, step=step, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay)


def adamw_bf16_update_(
    p, grad, exp_avg, exp_avg_sq, rng_key, *, step, lr, beta1, beta2, eps, weight_decay, state_rounding
) -> None:
    """AdamW with bf16 m and v: upcast, ``adam_update_``, round back (stochastically by default)."""
    m, v = exp_avg.to(grad.dtype), exp_avg_sq.to(grad.dtype)
    _adamw_(p, grad, m, v, step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)
    store_bf16_(exp_avg, m, rng_key, step, 0, state_rounding)
    store_bf16_(exp_avg_sq, v, rng_key, step, 1, state_rounding)


def lion_bf16_update_(p, grad, exp_avg, rng_key, *, step, lr, beta1, beta2, weight_decay, state_rounding) -> None:
    """Lion with a bf16 m: upcast, ``lion_update_``, round back (stochastically by default)."""
    m = exp_avg.to(grad.dtype)
    _lion_(p, grad, m, step=step, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay)
    store_bf16_(exp_avg, m, rng_key, step, 0, state_rounding)


def adamw_8bit_update_(p, grad, *state, step, lr, beta1, beta2, eps, weight_decay, quant_map) -> None:
    """AdamW with block-quantized m (signed map) and v (unsigned map); fp32 states for small tensors."""
    hyper = dict(step=step, lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay)
    if len(state) == 2:
        _adamw_(p, grad, *state, **hyper)
        return
    m_codes, m_absmax, v_codes, v_absmax = state
    signed, unsigned = CODEBOOKS[(quant_map, True)], CODEBOOKS[(quant_map, False)]
    m = dequantize(m_codes, m_absmax, signed, grad)
    v = dequantize(v_codes, v_absmax, unsigned, grad)
    _adamw_(p, grad, m, v, **hyper)
    quantize_(m_codes, m_absmax, m, signed)
    quantize_(v_codes, v_absmax, v, unsigned, keep_nonzero=True)  # a nonzero v never becomes 0: bounded steps


def lion_8bit_update_(p, grad, *state, step, lr, beta1, beta2, weight_decay, quant_map) -> None:
    """Lion with a block-quantized m (signed map); fp32 state for small tensors."""
    hyper = dict(step=step, lr=lr, beta1=beta1, beta2=beta2, weight_decay=weight_decay)
    if len(state) == 1:
        _lion_(p, grad, *state, **hyper)
        return
    m_codes, m_absmax = state
    signed = CODEBOOKS[(quant_map, True)]
    m = dequantize(m_codes, m_absmax, signed, grad)
    _lion_(p, grad, m, **hyper)
    quantize_(m_codes, m_absmax, m, signed)


# ----------------------------------------------------------------------------- classes
_ADAM_RULES = {"lr": Range(0.0), "betas": Tuple(2, BETA), "eps": Range(0.0), "weight_decay": Range(0.0)}
_LION_RULES = {"lr": Range(0.0), "betas": Tuple(2, BETA), "weight_decay": Range(0.0)}
_BF16_RULES = {"state_rounding": OneOf(("stochastic", "nearest"))}
_8BIT_RULES = {
    "block_size": Range(1, integer=True),
    "min_8bit_size": Range(0, integer=True),
    "quant_map": OneOf(("dynamic", "linear")),
}


class _Bf16State(PerParamLayout):
    """Shared parts of the bf16-state optimizers: ``moments`` bf16 tensors plus the ``rng_key``."""

    shard_local = False  # sharded parameters: gather, update the full tensor, keep the shard

    moments: tuple[str, ...] = ()
    supports_complex = True

    def layout(self, p: Tensor, group: dict[str, Any]) -> str:
        return "bf16"

    def layout_state_keys(self, layout: str, group: dict[str, Any]) -> tuple[str, ...]:
        return (*self.moments, "rng_key")

    def init_state(self, p: Tensor, group: dict[str, Any]) -> list[Tensor]:
        index = len(self.state) - 1  # parameters that got state before this one (this one's entry exists already)
        key = torch.tensor((self.seed * 1_000_003 + index * 7_919) % (2**62), dtype=torch.int64)
        return [torch.zeros(p.shape, dtype=torch.bfloat16, device=p.device) for _ in self.moments] + [key]


class AdamWBf16(_Bf16State):
    """AdamW (Loshchilov & Hutter, 2019) with bfloat16 m and v, rounded back stochastically (see the module
    docstring); the update itself is :func:`adam_update_` in fp32. Same arguments and defaults as AdamW, plus
    ``state_rounding`` ("stochastic" or "nearest")."""

    hyperparameters = {**_ADAM_RULES, **_BF16_RULES}
    moments = ("exp_avg", "exp_avg_sq")

    def __init__(
        self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, *, state_rounding="stochastic", **kw
    ):
        maximize = kw.pop("maximize", False)
        defaults = dict(
            lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, state_rounding=state_rounding, maximize=maximize
        )
        super().__init__(params, defaults, **kw)

    update = staticmethod(adamw_bf16_update_)


class LionBf16(_Bf16State):
    """Lion (Chen et al., 2023) with a bfloat16 momentum, rounded back stochastically; the update is
    :func:`lion_update_` in fp32. Same arguments and defaults as Lion, plus ``state_rounding``."""

    hyperparameters = {**_LION_RULES, **_BF16_RULES}
    moments = ("exp_avg",)

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0, *, state_rounding="stochastic", **kw):
        maximize = kw.pop("maximize", False)
        defaults = dict(lr=lr, betas=betas, weight_decay=weight_decay, state_rounding=state_rounding, maximize=maximize)
        super().__init__(params, defaults, **kw)

    update = staticmethod(lion_bf16_update_)


class _8bitState(PerParamLayout):
    """Shared parts of the 8-bit optimizers: per moment a (blocks × block_size) uint8 code tensor and fp32 block
    scales, or fp32 states for tensors with fewer than ``min_8bit_size`` entries."""

    shard_local = False  # sharded parameters: gather, update the full tensor, keep the shard

    moments: tuple[str, ...] = ()
    supports_complex = True

    def layout(self, p: Tensor, group: dict[str, Any]) -> str:
        state = self.state.get(p)
        if state:
            return "8bit" if f"{self.moments[0]}_absmax" in state else "fp32"
        numel = p.numel() * (2 if p.is_complex() else 1)  # the update sees the real view
        return "8bit" if numel >= group["min_8bit_size"] and numel > 0 else "fp32"

    def layout_state_keys(self, layout: str, group: dict[str, Any]) -> tuple[str, ...]:
        if layout == "fp32":
            return self.moments
        return tuple(name for m in self.moments for name in (m, f"{m}_absmax"))

    def init_state(self, p: Tensor, group: dict[str, Any]) -> list[Tensor]:
        if group[LAYOUT] == "fp32":
            return [torch.zeros_like(p) for _ in self.moments]
        size = group["block_size"]
        blocks = -(-p.numel() // size)
        out = []
        for _ in self.moments:
            out.append(torch.zeros((blocks, size), dtype=torch.uint8, device=p.device))
            out.append(torch.zeros(blocks, dtype=torch.float32, device=p.device))
        return out


class AdamW8bit(_8bitState):
    """AdamW (Loshchilov & Hutter, 2019) with block-wise 8-bit m and v (Dettmers et al., 2022; see the module
    docstring); the update is :func:`adam_update_` on the dequantized states. Same arguments and defaults as AdamW,
    plus ``block_size`` (2048), ``min_8bit_size`` (4096) and ``quant_map`` ("dynamic" or "linear")."""

    hyperparameters = {**_ADAM_RULES, **_8BIT_RULES}
    moments = ("exp_avg", "exp_avg_sq")

    def __init__(
        self,
        params,
        lr=1e-3,
        betas=(0.9, 0.999),
        eps=1e-8,
        weight_decay=1e-2,
        *,
        block_size=2048,
        min_8bit_size=4096,
        quant_map="dynamic",
        **kw,
    ):
        maximize = kw.pop("maximize", False)
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            block_size=block_size,
            min_8bit_size=min_8bit_size,
            quant_map=quant_map,
            maximize=maximize,
        )
        super().__init__(params, defaults, **kw)

    update = staticmethod(adamw_8bit_update_)


class Lion8bit(_8bitState):
    """Lion (Chen et al., 2023) with a block-wise 8-bit momentum (signed map); the update is :func:`lion_update_`
    on the dequantized state. Same arguments and defaults as Lion, plus ``block_size``, ``min_8bit_size`` and
    ``quant_map``."""

    hyperparameters = {**_LION_RULES, **_8BIT_RULES}
    moments = ("exp_avg",)

    def __init__(
        self,
        params,
        lr=1e-4,
        betas=(0.9, 0.99),
        weight_decay=0.0,
        *,
        block_size=2048,
        min_8bit_size=4096,
        quant_map="dynamic",
        **kw,
    ):
        maximize = kw.pop("maximize", False)
        defaults = dict(
            lr=lr,
            betas=betas,
            weight_decay=weight_decay,
            block_size=block_size,
            min_8bit_size=min_8bit_size,
            quant_map=quant_map,
            maximize=maximize,
        )
        super().__init__(params, defaults, **kw)

    update = staticmethod(lion_8bit_update_)


# ----------------------------------------------------------------------------- registry records
def _numel(shape, dtype) -> int:
    return math.prod(shape) * (2 if dtype.is_complex else 1)


def bf16_state_bytes(moments: int):
    def formula(shape, dtype, hp) -> int:
        """``moments`` bf16 tensors, the int64 rng key and the fp32 step."""
        return moments * _numel(shape, dtype) * 2 + 8 + 4

    return formula


def q8_state_bytes(moments: int):
    def formula(shape, dtype, hp) -> int:
        """Per moment: blocks·block_size uint8 codes + blocks fp32 scales (fp32 moments below min_8bit_size)."""
        n = _numel(shape, dtype)
        if n < hp["min_8bit_size"] or n == 0:
            return R.dense_state_bytes(shape, dtype, moments)
        blocks = -(-n // hp["block_size"])
        return moments * (blocks * hp["block_size"] + 4 * blocks) + 4

    return formula


_ADAMW_PAPER = R.Paper("Decoupled Weight Decay Regularization", "Loshchilov, Hutter", 2019, "1711.05101")
_8BIT_PAPER = R.Paper(
    "8-bit Optimizers via Block-wise Quantization", "Dettmers, Lewis, Shleifer, Zettlemoyer", 2022, "2110.02861"
)
_LION_PAPER = R.Paper("Symbolic Discovery of Optimization Algorithms", "Chen et al.", 2023, "2302.06675", "#26")
_ADAM_SPACE = {
    "lr": R.LogUniform(1e-5, 1e-1),
    "beta1": R.OneMinusLogUniform(0.5, 0.99),
    "beta2": R.OneMinusLogUniform(0.9, 0.9999),
    "weight_decay": R.LogUniform(1e-6, 1.0),
}
_LION_SPACE = {
    "lr": R.LogUniform(1e-6, 1e-2),
    "beta1": R.OneMinusLogUniform(0.5, 0.99),
    "beta2": R.OneMinusLogUniform(0.9, 0.9999),
    "weight_decay": R.LogUniform(1e-4, 10.0),
}

# state_tensors (the catalogue's "state/param" column): fp32-equivalent parameter-sized tensors for a 1024 × 1024
# fp32 matrix at the defaults; the exact bytes for any shape come from state_formula.
#: the quantization block (adamw_8bit and lion_8bit)
BLOCK_SIZE = R.Convention(
    point="quantization block size",
    paper="blocks of 2048 values, one absmax scale each",
    elsewhere="bitsandbytes: blocks of 256",
    switch="block_size",
    choices=((2048, "the paper"), (256, "bitsandbytes")),
)


R.register(
    R.AlgorithmSpec(
        name="adamw_bf16",
        cls=AdamWBf16,
        family="memory",
        paper=_ADAMW_PAPER,
        summary="AdamW with bfloat16 m and v, stochastically rounded back with hashed bits (exact resume)",
        hparams="lr betas eps weight_decay state_rounding",
        search_space=_ADAM_SPACE,
        state_tensors=1,
        state_formula=bf16_state_bytes(2),
        notes="States are bf16 by design: the records list fp32/fp64 params (the generic bf16-param test wants fp32 "
        "states); bf16 params are tested in tests/test_lowprec.py.",
    )
)

R.register(
    R.AlgorithmSpec(
        name="lion_bf16",
        cls=LionBf16,
        family="memory",
        paper=_LION_PAPER,
        summary="Lion with a bfloat16 momentum, stochastically rounded back with hashed bits (exact resume)",
        hparams="lr betas weight_decay state_rounding",
        search_space=_LION_SPACE,
        state_tensors=0.5,
        state_formula=bf16_state_bytes(1),
        notes="Lion's defaults (authors' code). States bf16 by design (see adamw_bf16).",
    )
)

R.register(
    R.AlgorithmSpec(
        name="adamw_8bit",
        cls=AdamW8bit,
        family="memory",
        paper=_8BIT_PAPER,
        summary="AdamW with block-wise 8-bit m, v (dynamic map, fp32 absmax per block); fp32 for small tensors",
        hparams="lr betas eps weight_decay block_size min_8bit_size quant_map",
        search_space=_ADAM_SPACE,
        state_tensors=0.502,
        state_formula=q8_state_bytes(2),
        notes="Paper block size 2048 (bitsandbytes: 256); bitsandbytes' dynamic maps and min_8bit_size=4096. Codes "
        "stored as (blocks × block_size) uint8. Compared with bitsandbytes.optim.AdamW8bit in tests/test_lowprec.py.",
        conventions=(BLOCK_SIZE,),
    )
)

R.register(
    R.AlgorithmSpec(
        name="lion_8bit",
        cls=Lion8bit,
        family="memory",
        paper=_8BIT_PAPER,
        summary="Lion with a block-wise 8-bit momentum (signed dynamic map, fp32 absmax per block)",
        hparams="lr betas weight_decay block_size min_8bit_size quant_map",
        search_space=_LION_SPACE,
        state_tensors=0.251,
        state_formula=q8_state_bytes(1),
        notes="Lion's defaults; quantization as adamw_8bit. Compared with bitsandbytes.optim.Lion8bit.",
        conventions=(BLOCK_SIZE,),
    )
)
