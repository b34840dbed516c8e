"""AdamW and Lion with low-precision states, written from their definitions with plain Python where it matters.

Each step runs the full-precision reference update (tests.reference.adam.adamw / tests.reference.lion.lion) on the
dequantized states and stores the new states back:

* bf16: every element goes through its fp32 bit pattern (``struct``): 16 hashed random bits are added to the 32-bit
  integer and the low 16 bits cleared (stochastic rounding), or it is cast to nearest. The hash is the 32-bit
  "lowbias32" finalizer on Python integers; the bits for element j of state s of the i-th parameter at step t are the
  top 16 bits of h((j + h(h(key mod 2³²) ^ (key >> 32) ^ h(2t + s))) mod 2³²), key = seed·1_000_003 + i·7_919.
* 8-bit (Dettmers et al. 2022, arXiv:2110.02861): blocks of B entries (zero-padded), N_b = max|T_b| stored in fp32,
  code = argmin_j |Q_j − T/N_b| (first index among ties; for Adam's second moment a positive T whose nearest Q is 0
  takes the smallest positive Q), value = Q[code]·N_b; Q is the 256-value dynamic map
  (0, 1 and ±10^(i−6)·midpoints of 2^i (signed) / 2^(i+1) (unsigned) equal intervals of [0.1, 1], i = 0..6, fp32) or
  the linear map ((k − 128)/127 signed, k/255 unsigned). Tensors with fewer than ``min_8bit_size`` entries keep
  full-precision states.
"""

import math
import struct

import torch

from tests.reference import whole_model
from tests.reference.adam import adamw
from tests.reference.lion import lion

M32 = 2**32 - 1


def _h(x):
    x &= M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    x ^= x >> 16
    return x


def _to_bf16(values, key, step, stream, rounding):
    flat = values.reshape(-1).to(torch.float32).tolist()
    seed = _h(_h(key & M32) ^ (key >> 32) ^ _h(2 * step + stream))
    out = []
    for j, x in enumerate(flat):
        if rounding == "nearest":
            out.append(x)
            continue
        bits = struct.unpack("<i", struct.pack("<f", x))[0]
        noise = _h(j + seed) >> 16
        y = ((bits + noise + 2**31) % 2**32 - 2**31) & -65536  # int32 wrap-around, then clear 16 bits
        y = struct.unpack("<f", struct.pack("<i", y))[0]
        out.append(y if math.isfinite(y) or not math.isfinite(x) else x)
    return torch.tensor(out, dtype=torch.float32).reshape(values.shape).to(torch.bfloat16)


def _run_bf16(base, moments, params, loss_fn, states, hparams, seed=0):
    leaves = [p.clone().requires_grad_(True) for p in params]
    grads = torch.autograd.grad(loss_fn(leaves), leaves)
    new_params, new_states = [], []
    for i, (p, g, state, hp) in enumerate(zip(params, grads, states, hparams)):
        hp = dict(hp)
        rounding = hp.pop("state_rounding")
        key = state.get("rng_key", torch.tensor(seed * 1_000_003 + i * 7_919, dtype=torch.int64))
        inner = {"step": state.get("step", 0), **{k: state[k].to(p.dtype) for k in moments if k in state}}
        q, s = base(p, g, inner, **hp)
        t = s["step"]
        new = {"step": t, "rng_key": key}
        for stream, name in enumerate(moments):
            new[name] = _to_bf16(s[name], int(key), t, stream, rounding)
        new_params.append(q)
        new_states.append(new)
    return new_params, new_states


@whole_model
def adamw_bf16(params, loss_fn, states, hparams):
    return _run_bf16(adamw, ("exp_avg", "exp_avg_sq"), params, loss_fn, states, hparams)


@whole_model
def lion_bf16(params, loss_fn, states, hparams):
    return _run_bf16(lion, ("exp_avg",), params, loss_fn, states, hparams)


def _map(kind, signed):
    if kind == "linear":
        return torch.tensor([(k - 128) / 127 if signed else k / 255 for k in range(256)], dtype=torch.float32)
    values = [0.0, 1.0]
    for i in range(7):
        n = 2**i if signed else 2 ** (i + 1)
        grid = torch.linspace(0.1, 1.0, n + 1, dtype=torch.float32)
        for a, b in zip(grid[:-1], grid[1:]):
            c = (a + b) / 2  # fp32 arithmetic throughout
            values.append(float(c * 10.0 ** (i - 6)))
            if signed:
                values.append(-values[-1])
    return torch.tensor(sorted(values), dtype=torch.float32)


def _quantize(x, block, qmap, keep_nonzero=False):
    n = x.numel()
    blocks = -(-n // block)
    flat = torch.zeros(blocks * block, dtype=x.dtype)
    flat[:n] = x.reshape(-1)
    flat = flat.reshape(blocks, block)
    absmax = flat.abs().max(dim=1).values.to(torch.float32)
    scale = absmax.to(x.dtype)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    normed = flat / scale[:, None]
    q = qmap.to(x.dtype)
    codes = torch.argmin((normed[..., None] - q).abs(), dim=-1)
    if keep_nonzero:  # a positive entry nearest to the value 0 takes the smallest positive value
        smallest_positive = int(torch.nonzero(q > 0)[0])
        codes = torch.where((normed > 0) & (q[codes] == 0), torch.full_like(codes, smallest_positive), codes)
    return codes.to(torch.uint8), absmax


def _dequantize(codes, absmax, qmap, like):
    values = qmap.to(like.dtype)[codes.long()] * absmax.to(like.dtype)[:, None]
    return values.reshape(-1)[: like.numel()].reshape(like.shape)


def _run_8bit(base, moments, param, grad, state, hp):
    hp = dict(hp)
    block, small, kind = hp.pop("block_size"), hp.pop("min_8bit_size"), hp.pop("quant_map")
    if param.numel() < small:
        return base(param, grad, state, **hp)
    signs = {"exp_avg": True, "exp_avg_sq": False}
    inner = {"step": state.get("step", 0)}
    for name in moments:
        if name in state:
            inner[name] = _dequantize(state[name], state[f"{name}_absmax"], _map(kind, signs[name]), param)
    q, s = base(param, grad, inner, **hp)
    new = {"step": s["step"]}
    for name in moments:
        # Adam's second moment never rounds to 0: a zero denominator under a nonzero m is an unbounded step
        new[name], new[f"{name}_absmax"] = _quantize(s[name], block, _map(kind, signs[name]), name == "exp_avg_sq")
    return q, new


def adamw_8bit(param, grad, state, **hp):
    return _run_8bit(adamw, ("exp_avg", "exp_avg_sq"), param, grad, state, hp)


def lion_8bit(param, grad, state, **hp):
    return _run_8bit(lion, ("exp_avg",), param, grad, state, hp)
