"""Scion / uScion (Pethick et al. 2025, arXiv:2502.07529, Algorithms 1–2 and Table 2), with the norms' scalings
as in the authors' ``scion.py`` (Spectral, SpectralConv, Sign, ColNorm, RowNorm, BiasRMS, Auto)."""

import math

import torch

from tests.reference.muon import newton_schulz

DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}


def _unit(d, norm, transpose, eps, ns_dtype):
    """argmax over the unit ball of ⟨d, u⟩."""
    if norm == "auto":
        norm = "spectral_conv" if d.ndim >= 3 else ("spectral" if d.ndim == 2 else "bias_rms")
    if norm == "bias_rms":
        return d / (torch.sqrt(torch.mean(d**2)) + eps)
    if norm == "euclidean":
        return d / (torch.sqrt(torch.sum(d**2)) + eps)
    if norm == "sign_unnormalized":
        return torch.sign(d)
    d_out, d_in = d.shape[0], math.prod(d.shape[1:])
    m = d.reshape(d_out, d_in)
    if norm.startswith("spectral"):
        u = newton_schulz(m, (3.4445, -4.7750, 2.0315), 5, 1e-7, "add", DTYPES[ns_dtype]).reshape(d.shape)
        if norm == "spectral_conv":
            if d.ndim == 2:
                return u
            k = d.shape[2]
            return u * math.sqrt(d.shape[0] / d.shape[1]) / k ** (d.ndim - 2)
        s = math.sqrt(d_out / d_in)
        return u * (max(1.0, s) if norm == "spectral_max" else s)
    if norm == "sign":
        return torch.sign(d) / d_in
    if transpose:
        m = m.T
    if norm.startswith("col"):  # each column to RMS 1 (÷ d_in more when normalized)
        out = m / (
            torch.sqrt(torch.sum(m**2, dim=0, keepdim=True) / m.shape[0])
            * (m.shape[1] if norm == "col_normalized" else 1)
            + eps
        )
    else:  # each row to ℓ2 norm 1 (÷ √d_in when normalized)
        out = m / (
            torch.sqrt(torch.sum(m**2, dim=1, keepdim=True)) * (math.sqrt(m.shape[1]) if norm == "row" else 1) + eps
        )
    return (out.T if transpose else out).reshape(d.shape)


def scion(
    param, grad, state, *, lr, momentum, scale, norm, unconstrained, transpose=False, eps=1e-8, ns_dtype="bfloat16"
):
    t = state.get("step", 0) + 1
    d = (1 - momentum) * state.get("momentum_buffer", torch.zeros_like(param)) + momentum * grad
    step = lr * scale * _unit(d, norm, transpose, eps, ns_dtype)
    new = param - step if unconstrained else (1 - lr) * param - step
    return new, {"step": t, "momentum_buffer": d}
