#!/usr/bin/env python3
"""Writes the PyTorch / diffusers reference values that crates/cmr-nn/tests/suite/layer_goldens.rs compares every layer of
cmr-nn against (issue 3, item 1). The JSON files are committed; torch is needed only to regenerate them.

Usage: scripts/torch-goldens.py    (rewrites crates/cmr-nn/tests/goldens/*.json; creates the venv via
                                   scripts/setup-torch.sh --with-diffusers and re-runs itself in it)

Each file holds {"generator", "torch", "diffusers", "cases": [...]}; a case has a "name", the layer's "config",
and "inputs", "params" (the module's state_dict, i.e. the upstream tensor names) and "outputs", each a map
name -> {"shape": [...], "data": [...]} of float64 values. Inputs and weights are drawn from fixed seeds and rounded
to float32 so that the Rust test can run them in f32 and f64 alike; the reference is computed in float64 (except
where upstream forces float32, noted in the case). The UNet blocks are diffusers' own modules; the ViT block and the
q/kv/proj attention are written here, with the names of the issue-7 foundation model.
"""

import json
import math
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    import torch
    import torch.nn.functional as F
    from torch import nn

    import diffusers
    from diffusers.models.attention import BasicTransformerBlock, FeedForward
    from diffusers.models.attention_processor import Attention
    from diffusers.models.downsampling import Downsample2D
    from diffusers.models.embeddings import TimestepEmbedding, get_timestep_embedding
    from diffusers.models.resnet import ResnetBlock2D
    from diffusers.models.transformers.transformer_2d import Transformer2DModel
    from diffusers.models.upsampling import Upsample2D
except ImportError:
    from torch_venv import reexec_in_torch_venv

    reexec_in_torch_venv(__file__, "--with-diffusers")
OUT = os.path.join(ROOT, "crates", "cmr-nn", "tests", "goldens")

# A JSON list holding only numbers (shapes, data): written on one line, for readable diffs.
NUMBER_LIST = re.compile(r"\[\s*([-+0-9.eE,\s]*?)\s*\]")

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)


def f32_exact(t):
    """Rounds to float32 and back, so f32 and f64 runs of the Rust test start from identical values."""
    return t.float().double()


def randn(seed, *shape, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return f32_exact(torch.randn(*shape, generator=g, dtype=torch.float64) * scale)


def randomize(module, seed, scale=0.5):
    """Replaces every parameter (norm scales and zero biases included) by seeded noise, so no tensor hides."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(module.named_parameters()):
            p.copy_(f32_exact(torch.randn(p.shape, generator=g, dtype=torch.float64) * scale))
    return module.double().eval()


def arr(t):
    t = t.detach().double().contiguous()
    return {"shape": list(t.shape), "data": t.flatten().tolist()}


def case(name, config, inputs, module, outputs):
    params = {k: arr(v) for k, v in sorted(module.state_dict().items())} if module is not None else {}
    return {
        "name": name,
        "config": config,
        "inputs": {k: arr(v) for k, v in inputs.items()},
        "params": params,
        "outputs": {k: arr(v) for k, v in outputs.items()},
    }


def linear_cases():
    out = []
    for name, (fin, fout, bias, shape) in {
        "linear": (5, 3, True, (2, 4, 5)),
        "linear_no_bias": (5, 3, False, (3, 5)),
    }.items():
        m = randomize(nn.Linear(fin, fout, bias=bias), 1)
        x = randn(2, *shape)
        out.append(case(name, {"in": fin, "out": fout, "bias": bias}, {"x": x}, m, {"y": m(x)}))
    return out


def conv_cases():
    out = []
    for name, (cin, cout, k, stride, pad, groups, bias, shape) in {
        "conv2d_3x3_pad1": (4, 6, 3, 1, 1, 1, True, (2, 4, 5, 6)),
        "conv2d_stride2_groups2": (4, 6, 3, 2, 1, 2, True, (2, 4, 7, 6)),
        "conv2d_1x1_no_bias": (4, 6, 1, 1, 0, 1, False, (2, 4, 3, 3)),
    }.items():
        m = randomize(nn.Conv2d(cin, cout, k, stride=stride, padding=pad, groups=groups, bias=bias), 3)
        x = randn(4, *shape)
        cfg = {"in": cin, "out": cout, "kernel": k, "stride": stride, "padding": pad, "groups": groups, "bias": bias}
        out.append(case(name, cfg, {"x": x}, m, {"y": m(x)}))
    for name, pad, shape in [("downsample2d", 1, (2, 4, 6, 6)), ("downsample2d_pad0", 0, (2, 4, 5, 6))]:
        # name="op" as the diffusers UNet builds it: the conv is registered once, as `conv`.
        m = randomize(Downsample2D(4, use_conv=True, out_channels=6, padding=pad, name="op"), 5)
        x = randn(6, *shape)
        out.append(case(name, {"in": 4, "out": 6, "padding": pad}, {"x": x}, m, {"y": m(x)}))
    m = randomize(Upsample2D(4, use_conv=True, out_channels=6), 7)
    x = randn(8, 2, 4, 3, 5)
    out.append(case("upsample2d", {"in": 4, "out": 6}, {"x": x}, m, {"y": m(x)}))
    return out


def norm_cases():
    out = []
    m = randomize(nn.GroupNorm(3, 6, eps=1e-5), 9)
    x = randn(10, 2, 6, 4, 5, scale=2.0) + 1.5
    out.append(case("group_norm", {"groups": 3, "channels": 6, "eps": 1e-5}, {"x": x}, m, {"y": m(x)}))
    m = randomize(nn.LayerNorm(8, eps=1e-5), 11)
    x = randn(12, 2, 3, 8, scale=3.0) - 2.0
    out.append(case("layer_norm", {"size": 8, "eps": 1e-5, "affine": True}, {"x": x}, m, {"y": m(x)}))
    m = nn.LayerNorm(8, eps=1e-6, elementwise_affine=False)
    out.append(case("layer_norm_no_affine", {"size": 8, "eps": 1e-6, "affine": False}, {"x": x}, m, {"y": m(x)}))
    return out


def activation_cases():
    x = f32_exact(torch.linspace(-6.0, 6.0, 64))
    logits = randn(13, 4, 16, scale=4.0) + 100.0  # large offset: exp without max-subtraction would overflow f32
    outputs = {
        "silu": F.silu(x),
        "gelu": F.gelu(x),
        "gelu_tanh": F.gelu(x, approximate="tanh"),
        "softmax": torch.softmax(logits, dim=-1),
    }
    return [case("activations", {}, {"x": x, "logits": logits}, None, outputs)]


class QKvProjAttention(nn.Module):
    """Multi-head attention with the issue-7 names: q, kv (keys then values), proj."""

    def __init__(self, dim, context_dim, heads, head_dim, qkv_bias):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.q = nn.Linear(dim, heads * head_dim, bias=qkv_bias)
        self.kv = nn.Linear(context_dim, 2 * heads * head_dim, bias=qkv_bias)
        self.proj = nn.Linear(heads * head_dim, dim)

    def forward(self, x, context=None, key_mask=None):
        context = x if context is None else context
        b, n, _ = x.shape
        m = context.shape[1]
        q = self.q(x).reshape(b, n, self.heads, self.head_dim).transpose(1, 2)
        k, v = self.kv(context).reshape(b, m, 2, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        mask = None if key_mask is None else key_mask.bool()[:, None, None, :]
        o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(o.transpose(1, 2).reshape(b, n, -1))


def key_mask(lengths, m):
    return torch.tensor([[1.0 if j < n else 0.0 for j in range(m)] for n in lengths])


def additive(mask):
    """diffusers' UNet turns a keep-mask into a bias: (1 - mask) * -10000, shape (b, 1, m)."""
    return ((1.0 - mask) * -10000.0)[:, None, :]


def attention_cases():
    out = []
    m = randomize(Attention(query_dim=12, heads=3, dim_head=4), 15)
    x = randn(16, 2, 5, 12)
    cfg = {"query_dim": 12, "heads": 3, "head_dim": 4, "cross_attention_dim": None}
    out.append(case("self_attention_diffusers", cfg, {"x": x}, m, {"y": m(x)}))

    m = randomize(Attention(query_dim=12, cross_attention_dim=10, heads=2, dim_head=6), 17)
    ctx, mask = randn(18, 2, 7, 10), key_mask([7, 4], 7)
    y = m(x, encoder_hidden_states=ctx, attention_mask=additive(mask))
    cfg = {"query_dim": 12, "heads": 2, "head_dim": 6, "cross_attention_dim": 10}
    out.append(case("cross_attention_diffusers_masked", cfg, {"x": x, "context": ctx, "mask": mask}, m, {"y": y}))

    m = randomize(QKvProjAttention(12, 10, 3, 4, qkv_bias=True), 19)
    y = m(x, ctx, mask)
    cfg = {"query_dim": 12, "heads": 3, "head_dim": 4, "cross_attention_dim": 10}
    out.append(case("cross_attention_qkv_masked", cfg, {"x": x, "context": ctx, "mask": mask}, m, {"y": y}))
    return out


def timestep_embedding_f64(t, dim, flip_sin_to_cos, shift, scale=1, max_period=10000):
    """diffusers.models.embeddings.get_timestep_embedding line by line, but in float64 (upstream forces float32)."""
    half_dim = dim // 2
    exponent = -math.log(max_period) * torch.arange(0, half_dim, dtype=torch.float64) / (half_dim - shift)
    emb = t[:, None].double() * torch.exp(exponent)[None, :]
    emb = scale * emb
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half_dim:], emb[:, :half_dim]], dim=-1)
    if dim % 2 == 1:
        emb = F.pad(emb, (0, 1, 0, 0))
    return emb


def embedding_cases():
    out = []
    t = torch.tensor([0.0, 1.0, 7.5, 42.0, 99.0, 999.0])
    for name, dim, flip, shift in [("timesteps_unet", 8, True, 0.0), ("timesteps_default_odd", 7, False, 1.0)]:
        outputs = {
            "y": timestep_embedding_f64(t, dim, flip, shift),
            "y_f32": get_timestep_embedding(t.float(), dim, flip_sin_to_cos=flip, downscale_freq_shift=shift),
        }
        cfg = {"dim": dim, "flip_sin_to_cos": flip, "downscale_freq_shift": shift,
               "note": "y: float64 copy of get_timestep_embedding; y_f32: diffusers itself (float32 only)"}
        out.append(case(name, cfg, {"t": t}, None, outputs))

    m = randomize(TimestepEmbedding(8, 16), 21)
    x = randn(22, 3, 8)
    out.append(case("timestep_embedding", {"in": 8, "time_embed_dim": 16}, {"x": x}, m, {"y": m(x)}))

    conv = randomize(nn.Conv3d(2, 6, kernel_size=(2, 2, 2), stride=(2, 2, 2)), 23)
    x = randn(24, 2, 2, 4, 4, 6)
    y = conv(x).flatten(2).transpose(1, 2)
    # The Rust layer is a linear map of unfolded patches: its weight is the Conv3d kernel flattened.
    proj = nn.Linear(2 * 2 * 2 * 2, 6)
    with torch.no_grad():
        proj.weight.copy_(conv.weight.reshape(6, -1))
        proj.bias.copy_(conv.bias)
    holder = nn.Module()
    holder.proj = proj
    cfg = {"in": 2, "embed_dim": 6, "patch_size": 2, "patch_depth": 2,
           "note": "reference: Conv3d(kernel=stride=(2,2,2)) then flatten(2).transpose(1,2)"}
    out.append(case("patch_embed_3d", cfg, {"x": x}, holder, {"y": y}))
    return out


def resnet_cases():
    out = []
    m = randomize(ResnetBlock2D(in_channels=4, out_channels=6, temb_channels=5, groups=2), 25)
    x, temb = randn(26, 2, 4, 5, 5), randn(27, 2, 5)
    cfg = {"in": 4, "out": 6, "temb_channels": 5, "groups": 2, "output_scale_factor": 1.0}
    out.append(case("resnet_block_temb", cfg, {"x": x, "temb": temb}, m, {"y": m(x, temb)}))

    m = randomize(ResnetBlock2D(in_channels=4, out_channels=4, temb_channels=None, groups=2, output_scale_factor=2.0), 28)
    x = randn(29, 2, 4, 4, 3)
    cfg = {"in": 4, "out": 4, "temb_channels": None, "groups": 2, "output_scale_factor": 2.0}
    out.append(case("resnet_block_no_temb", cfg, {"x": x}, m, {"y": m(x, None)}))
    return out


def transformer_cases():
    out = []
    m = randomize(BasicTransformerBlock(8, 2, 4, cross_attention_dim=6), 31)
    x, ctx, mask = randn(32, 2, 5, 8), randn(33, 2, 4, 6), key_mask([4, 2], 4)
    y = m(x, encoder_hidden_states=ctx, encoder_attention_mask=additive(mask))
    cfg = {"dim": 8, "heads": 2, "head_dim": 4, "cross_attention_dim": 6}
    out.append(case("basic_transformer_block_cross_masked", cfg, {"x": x, "context": ctx, "mask": mask}, m, {"y": y}))

    m = randomize(FeedForward(8, mult=2, activation_fn="gelu-approximate"), 34)
    out.append(case("feed_forward_gelu_approximate", {"dim": 8, "mult": 2}, {"x": x}, m, {"y": m(x)}))

    m = randomize(Transformer2DModel(num_attention_heads=2, attention_head_dim=4, in_channels=8, norm_num_groups=4,
                                     cross_attention_dim=6), 35)
    img = randn(36, 2, 8, 3, 3)
    y = m(img, encoder_hidden_states=ctx, encoder_attention_mask=mask, return_dict=False)[0]
    cfg = {"in": 8, "heads": 2, "head_dim": 4, "groups": 4, "cross_attention_dim": 6, "linear": False, "layers": 1}
    out.append(case("transformer_2d_conv_cross", cfg, {"x": img, "context": ctx, "mask": mask}, m, {"y": y}))

    m = randomize(Transformer2DModel(num_attention_heads=2, attention_head_dim=4, in_channels=8, norm_num_groups=4,
                                     num_layers=2, use_linear_projection=True), 37)
    y = m(img, return_dict=False)[0]
    cfg = {"in": 8, "heads": 2, "head_dim": 4, "groups": 4, "cross_attention_dim": None, "linear": True, "layers": 2}
    out.append(case("transformer_2d_linear_self", cfg, {"x": img}, m, {"y": y}))
    return out


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class ViTBlock(nn.Module):
    """timm's pre-norm ViT block with the issue-7 (CineMA-style) attention names."""

    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = QKvProjAttention(dim, dim, heads, dim // heads, qkv_bias=True)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


def vit_cases():
    m = randomize(ViTBlock(12, 3, 2.0), 41)
    x = randn(42, 2, 5, 12)
    return [case("vit_block", {"dim": 12, "heads": 3, "mlp_ratio": 2.0}, {"x": x}, m, {"y": m(x)})]


def main():
    os.makedirs(OUT, exist_ok=True)
    families = {
        "linear": linear_cases,
        "conv": conv_cases,
        "norm": norm_cases,
        "activation": activation_cases,
        "attention": attention_cases,
        "embedding": embedding_cases,
        "resnet": resnet_cases,
        "transformer": transformer_cases,
        "vit": vit_cases,
    }
    with torch.no_grad():
        for family, make in families.items():
            doc = {
                "generator": "scripts/torch-goldens.py",
                "torch": torch.__version__,
                "diffusers": diffusers.__version__,
                "cases": make(),
            }
            path = os.path.join(OUT, f"{family}.json")
            text = json.dumps(doc, indent=1)
            # one line per number array: readable diffs without a line per value
            text = re.sub(NUMBER_LIST, lambda m: "[" + ", ".join(v.strip() for v in m.group(1).split(",")) + "]", text)
            with open(path + ".tmp", "w") as f:
                f.write(text + "\n")
            os.replace(path + ".tmp", path)
            print(f"{path}: {len(doc['cases'])} cases", file=sys.stderr)


if __name__ == "__main__":
    main()
