"""optimlab.routing and other libraries' conventions: timm's ``no_weight_decay()`` / ``no_weight_decay_keywords()``,
learned tokens and position embeddings (leading dimension 1) as non-matrices, and Hugging Face ``Conv1D`` weights
stored (in, out), whose Muon/Scion scale must be that of the (out, in) matrix they are."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import optimlab
from optimlab.routing import matrix_param_groups, param_groups, param_roles


class TimmStyleViT(nn.Module):
    """The parameter layout of timm's VisionTransformer (patch conv, class token, position embedding, blocks),
    with its ``no_weight_decay()``; plus a relative-position table exempted by keyword (as timm's Swin)."""

    def __init__(self, d=8, patches=4):
        super().__init__()
        self.patch_embed = nn.Conv2d(3, d, 2, stride=2)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.randn(1, patches + 1, d) * 0.02)
        self.rel_pos_table = nn.Parameter(torch.zeros(5, 2))
        self.block = nn.Linear(d, d)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, 3)

    def no_weight_decay(self):
        return {"pos_embed", "cls_token"}

    def no_weight_decay_keywords(self):
        return {"rel_pos"}

    def forward(self, x):
        t = self.patch_embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([self.cls_token.expand(len(x), -1, -1), t], dim=1) + self.pos_embed
        t = self.norm(t + self.block(t))
        return self.head(t[:, 0]) + self.rel_pos_table.sum()


def _decay_of(groups):
    return {id(p): g["weight_decay"] for g in groups for p in g["params"]}


def test_param_groups_honour_no_weight_decay_and_its_keywords():
    model = TimmStyleViT()
    decay = _decay_of(param_groups(model, weight_decay=0.1))
    for p in (model.cls_token, model.pos_embed, model.rel_pos_table, model.block.bias, model.norm.weight):
        assert decay[id(p)] == 0.0
    for p in (model.block.weight, model.head.weight, model.patch_embed.weight):
        assert decay[id(p)] == 0.1


def test_no_weight_decay_of_a_submodule_is_prefixed_with_its_name():
    outer = nn.Module()
    outer.backbone = TimmStyleViT()
    decay = _decay_of(param_groups(outer, weight_decay=0.1))
    assert decay[id(outer.backbone.pos_embed)] == 0.0 and decay[id(outer.backbone.rel_pos_table)] == 0.0
    assert decay[id(outer.backbone.block.weight)] == 0.1


def test_tokens_and_position_embeddings_are_not_matrices():
    model = TimmStyleViT()
    roles = param_roles(model)
    assert roles["cls_token"] == roles["pos_embed"] == "embedding"
    assert roles["block.weight"] == "hidden" and roles["patch_embed.weight"] == "conv"
    groups = matrix_param_groups(model, "muon")
    use_muon = {id(p): g["use_muon"] for g in groups for p in g["params"]}
    assert not use_muon[id(model.cls_token)] and not use_muon[id(model.pos_embed)]
    # the matrix path of param_groups applies no_weight_decay too, also inside a matrix role
    decay = _decay_of(param_groups(model, weight_decay=0.1, matrix_optimizer="muon"))
    assert decay[id(model.rel_pos_table)] == 0.0 and decay[id(model.block.weight)] == 0.1
    opt = optimlab.Muon(groups, lr=0.02)
    model(torch.randn(2, 3, 4, 4)).sum().backward()
    opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_a_real_timm_vit_from_its_config():
    timm = pytest.importorskip("timm")
    model = timm.create_model("vit_tiny_patch16_224", pretrained=False, img_size=32, depth=1, num_classes=3)
    decay = _decay_of(param_groups(model, weight_decay=0.1))
    assert decay[id(model.cls_token)] == decay[id(model.pos_embed)] == 0.0
    use_muon = {id(p): g["use_muon"] for g in matrix_param_groups(model, "muon") for p in g["params"]}
    assert not use_muon[id(model.cls_token)] and not use_muon[id(model.pos_embed)]


# ----------------------------------------------------------------------------- Conv1D (in, out) weights
def _gpt2():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_embd=8, n_layer=1, n_head=2, n_positions=8, vocab_size=11)
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config)


@pytest.mark.parametrize("optimizer", ["muon", "scion"])
def test_gpt2_conv1d_weights_get_a_transposed_group(optimizer):
    model = _gpt2()
    groups = matrix_param_groups(model, optimizer)
    flagged = {id(p) for g in groups if g.get("transpose") and g["role"] == "hidden" for p in g["params"]}
    block = model.transformer.h[0]
    for conv in (block.attn.c_attn, block.attn.c_proj, block.mlp.c_fc, block.mlp.c_proj):
        assert id(conv.weight) in flagged
        assert conv.weight.shape == (conv.nx, conv.nf)  # stored (in, out)
    assert id(model.transformer.wte.weight) not in flagged
    opt = optimlab.create(optimizer, groups)
    model(torch.randint(0, 11, (2, 5)), labels=torch.randint(0, 11, (2, 5))).loss.backward()
    opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize(
    "optimizer,options",
    [
        ("muon", {"adjust_lr": "original"}),
        ("muon", {"adjust_lr": "match_rms_adamw"}),
        ("scion", {"norm": "spectral"}),
        ("scion", {"norm": "spectral_max"}),
        ("scion", {"norm": "sign"}),
    ],
)
def test_a_transposed_weight_steps_as_the_transpose_of_its_out_in_twin(optimizer, options):
    """transpose=True on an (in, out) weight gives exactly the transposed step of the (out, in) weight."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(3, 7, generator=g, dtype=torch.float64)  # (out, in): the scale differs with orientation
    grads = [torch.randn(3, 7, generator=g, dtype=torch.float64) for _ in range(3)]
    out_in = w.clone().requires_grad_(True)
    in_out = w.T.clone().requires_grad_(True)
    extra = {"ns_dtype": "float64"}
    a = optimlab.create(optimizer, [{"params": [out_in], **options}], **extra)
    b = optimlab.create(optimizer, [{"params": [in_out], "transpose": True, **options}], **extra)
    for grad in grads:
        out_in.grad, in_out.grad = grad.clone(), grad.T.clone()
        a.step()
        b.step()
    torch.testing.assert_close(in_out.detach().T, out_in.detach(), rtol=1e-12, atol=1e-12)
    if options.get("adjust_lr") == "match_rms_adamw":
        return  # 0.2·√max(rows, cols) does not depend on the orientation
    # without the flag the (in, out) weight gets the other orientation's scale
    plain = w.T.clone().requires_grad_(True)
    c = optimlab.create(optimizer, [{"params": [plain], **options}], **extra)
    for grad in grads:
        plain.grad = grad.T.clone()
        c.step()
    assert not torch.allclose(plain.detach().T, out_in.detach())
