"""W7 ``charlm_gpt``: a small character-level GPT on a frozen text shipped with the package.

Text: the first 300,000 characters of CPython's ``pydoc_data.topics`` (the language-reference topics of the
Python documentation), frozen in ``optimlab/bench/data/pydoc_topics.txt`` and checked against its sha256 before
use (provenance and the PSF licence in ``pydoc_topics.LICENSE.txt``). 90/10 contiguous train/validation split;
the character vocabulary is the file's. Model: a pre-LayerNorm GPT (Radford et al. 2019) with learned position
embeddings, GELU MLPs, causal self-attention, untied output head. Random contiguous windows as batches; the
metric is the validation cross-entropy in nats per character over a fixed set of validation windows.
"""

from __future__ import annotations

import functools
import hashlib
import math
from importlib import resources

import torch
import torch.nn.functional as F
from torch import nn

from ._base import Budget, Task, Workload, cross_entropy, generator

TEXT_FILE = "pydoc_topics.txt"
TEXT_SHA256 = "707f4ba84ed84f13ad4e84a32d9921d09391ba21e89e8d550710f0d4bff5b123"


@functools.lru_cache(maxsize=1)
def load_text() -> str:
    """The frozen corpus; raises if its sha256 is not the recorded one."""
    raw = resources.files("optimlab.bench").joinpath("data", TEXT_FILE).read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != TEXT_SHA256:
        raise RuntimeError(f"{TEXT_FILE}: sha256 {digest} does not match the frozen {TEXT_SHA256}")
    return raw.decode("utf-8")


@functools.lru_cache(maxsize=2)
def encoded(limit: int | None = None) -> tuple[torch.Tensor, torch.Tensor, int]:
    text = load_text()
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    if limit is not None:
        text = text[:limit]
    ids = torch.tensor([index[c] for c in text], dtype=torch.int64)
    split = int(0.9 * len(ids))
    return ids[:split], ids[split:], len(vocab)


class Block(nn.Module):
    def __init__(self, d: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc = nn.Linear(d, 4 * d)
        self.fc_out = nn.Linear(4 * d, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v))
        # explicit attention (not F.scaled_dot_product_attention): its CPU kernels lack the double backward that
        # Hessian-vector products need
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(q.shape[-1]))
        causal = torch.ones(t, t, dtype=torch.bool, device=x.device).tril()
        a = att.masked_fill(~causal, float("-inf")).softmax(-1) @ v
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc_out(F.gelu(self.fc(self.ln2(x))))


class GPT(nn.Module):
    def __init__(self, vocab: int, d: int, layers: int, heads: int, ctx: int) -> None:
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)
        for name, p in self.named_parameters():
            if p.ndim >= 2:
                std = 0.02 / math.sqrt(2 * layers) if name.endswith(("proj.weight", "fc_out.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx):
        t = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(t, device=idx.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


class CharLmGpt(Workload):
    id = "charlm_gpt"
    title = "Character GPT on frozen Python docs"
    stresses = "small transformer LM (Adam vs Muon/SOAP/Lion/Sophia territory)"
    data_source = f"frozen {TEXT_FILE} (300k chars of CPython pydoc_data.topics, sha256 {TEXT_SHA256[:12]}…)"
    model_desc = "GPT, 2 layers, d = 64, 4 heads, ctx 64, pre-LN, GELU (~117k parameters)"
    metric = "validation cross-entropy (nats/char)"
    provides_logits = True
    higher_is_better = False
    metric_scale = "linear"
    target = 2.01
    provisional = False
    batch_size = 16
    budget = Budget(step_hint=600, max_steps=900, eval_every=30)
    explosion_factor = 20.0
    d_model, layers, heads, ctx = 64, 2, 4, 64
    eval_windows = 128

    def data_arrays(self, smoke: bool = False):
        return {"text_sha256": TEXT_SHA256}

    def _build(self, seed: int, smoke: bool, device: torch.device) -> Task:
        train, val, vocab = encoded(20_000 if smoke else None)
        train, val = train.to(device), val.to(device)
        ctx = self.ctx
        model = GPT(vocab, self.d_model, self.layers, self.heads, ctx)
        gen = generator(seed, 1)
        n_eval = 8 if smoke else self.eval_windows
        starts = torch.linspace(0, len(val) - ctx - 2, n_eval).long()
        val_x = torch.stack([val[s : s + ctx] for s in starts])
        val_y = torch.stack([val[s + 1 : s + ctx + 1] for s in starts])
        offsets = torch.arange(ctx)

        def next_batch():
            s = torch.randint(0, len(train) - ctx - 1, (self.batch_size, 1), generator=gen).to(device)
            return train[s + offsets], train[s + offsets + 1]

        def logits_fn(m, batch):
            x, y = batch
            return m(x), y

        def eval_fn(m):
            return float(cross_entropy(m(val_x), val_y))

        return Task.classification(model, next_batch, logits_fn, eval_fn, {"head.weight": "head"})
