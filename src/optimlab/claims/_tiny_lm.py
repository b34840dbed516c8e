"""The tiny language-model setting of C1 and C2: a decoder-only transformer that is twice differentiable and a
synthetic Zipf–Markov text whose entropy rate is known."""

from __future__ import annotations

import math

import torch
from torch import nn


class _Attention(nn.Module):
    """Causal multi-head self-attention written out (softmax(QKᵀ/√d_h + mask)V), so that it is twice
    differentiable (torch's fused CPU attention kernel has no double backward, which the HVPs need)."""

    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.heads) + mask, dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(b, n, d))


class _Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = _Attention(d, heads)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), mask)
        return x + self.mlp(self.ln2(x))


class TinyTransformer(nn.Module):
    """Decoder-only transformer: token + learned position embeddings, pre-LN blocks, causal attention."""

    def __init__(self, vocab: int, d: int = 64, heads: int = 4, layers: int = 2, context: int = 32) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(context, d)
        self.blocks = nn.ModuleList(_Block(d, heads) for _ in range(layers))
        self.ln = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        n = idx.shape[1]
        mask = torch.triu(torch.full((n, n), float("-inf")), diagonal=1)
        x = self.tok(idx) + self.pos(torch.arange(n))
        for block in self.blocks:
            x = block(x, mask)
        return self.head(self.ln(x))


class ZipfMarkovText:
    """A synthetic char-level language: a first-order Markov chain over ``vocab`` symbols in which the next symbol
    follows a Zipf law (probability ∝ rank^−s) over a symbol-specific random ordering — heavy-tailed token
    frequencies, as in natural text. The first symbol is drawn from the stationary distribution π, so every
    position's optimal loss is the entropy rate H = −Σ_a π_a Σ_b P_ab log P_ab, and losses are reported as the
    excess over H."""

    def __init__(self, vocab: int, seed: int, exponent: float = 1.0) -> None:
        g = torch.Generator().manual_seed(300_000 + seed)
        weights = torch.arange(1, vocab + 1, dtype=torch.float64) ** (-exponent)
        weights = weights / weights.sum()
        self.vocab = vocab
        self.P = torch.zeros(vocab, vocab, dtype=torch.float64)
        for a in range(vocab):
            self.P[a, torch.randperm(vocab, generator=g)] = weights
        pi = torch.full((vocab,), 1.0 / vocab, dtype=torch.float64)
        for _ in range(1000):
            pi = pi @ self.P
        self.pi = pi
        self.entropy = float(-(pi[:, None] * self.P * self.P.log()).sum())

    def batch(self, n: int, length: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs, next-symbol targets), each (n, length)."""
        seq = [torch.multinomial(self.pi.float(), n, replacement=True, generator=generator)]
        probs = self.P.float()
        for _ in range(length):
            seq.append(torch.multinomial(probs[seq[-1]], 1, generator=generator)[:, 0])
        s = torch.stack(seq, dim=1)
        return s[:, :-1], s[:, 1:]
