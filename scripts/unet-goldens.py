#!/usr/bin/env python3
"""Writes the diffusers reference that crates/cmr-diffusion/tests/suite/models.rs compares the whole UNet and
ControlNet against (issue 6, items 2 and 4): a tiny diffusers UNet2DConditionModel and ControlNetModel with random
weights, fixed inputs, and their outputs, all in one safetensors file (weights and inputs drawn as float32
values and stored as float32, outputs computed and stored in float64, so the Rust test can run in f32 and f64).

Usage: scripts/unet-goldens.py    (rewrites crates/cmr-diffusion/tests/goldens/unet_controlnet.safetensors; creates
                                  the venv via scripts/setup-torch.sh --with-diffusers and re-runs itself in it)

Tensors: "unet.<name>" and "controlnet.<name>" are the modules' state_dicts (diffusers' names); "input.sample"
(2, 2, 8, 8), "input.timesteps" (2,), "input.context" (2, 5, 6), "input.context_mask" (2, 5), "input.condition"
(2, 8, 16, 16); "output.unet" is the UNet without control, "output.down.<k>" / "output.mid" the ControlNet's
residuals (conditioning scale 0.7; diffusers' ControlNetModel takes no text padding mask, so the context is
attended to in full there), "output.controlled" the UNet with them added. The ControlNet's zero convolutions
are given random values so that the comparison tests something. The configuration is repeated in the metadata.
"""

import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    import torch
    import diffusers
    from diffusers import ControlNetModel, UNet2DConditionModel
    from safetensors.torch import save_file
except ImportError:
    from torch_venv import reexec_in_torch_venv

    reexec_in_torch_venv(__file__, "--with-diffusers")

OUT = os.path.join(ROOT, "crates", "cmr-diffusion", "tests", "goldens", "unet_controlnet.safetensors")

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)

CONFIG = dict(
    sample_size=8,
    in_channels=2,
    out_channels=2,
    block_out_channels=(8, 16),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    layers_per_block=1,
    norm_num_groups=4,
    norm_eps=1e-5,
    cross_attention_dim=6,
    attention_head_dim=2,  # diffusers' legacy name: the number of heads
    use_linear_projection=True,
    flip_sin_to_cos=True,
    freq_shift=0,
)


def f32_exact(t):
    return t.float().double()


def randn(seed, *shape, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return f32_exact(torch.randn(*shape, generator=g) * scale)


def randomize(module, seed, scale):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(f32_exact(torch.randn(p.shape, generator=g) * scale))


def main():
    unet = UNet2DConditionModel(**CONFIG).double().eval()
    randomize(unet, 1, 0.2)
    controlnet = ControlNetModel.from_unet(
        unet, conditioning_channels=8, conditioning_embedding_out_channels=(4, 8)
    ).double().eval()
    randomize(controlnet, 2, 0.2)  # zero convolutions included

    sample = randn(3, 2, 2, 8, 8)
    timesteps = torch.tensor([10.0, 977.0])
    context = randn(4, 2, 5, 6)
    context_mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.float64)
    condition = randn(5, 2, 8, 16, 16)
    scale = 0.7

    with torch.no_grad():
        plain = unet(sample, timesteps, encoder_hidden_states=context, encoder_attention_mask=context_mask).sample
        down, mid = controlnet(
            sample,
            timesteps,
            encoder_hidden_states=context,
            controlnet_cond=condition,
            conditioning_scale=scale,
            return_dict=False,
        )
        controlled = unet(
            sample,
            timesteps,
            encoder_hidden_states=context,
            encoder_attention_mask=context_mask,
            down_block_additional_residuals=down,
            mid_block_additional_residual=mid,
        ).sample

    tensors = {f"unet.{k}": v for k, v in unet.state_dict().items()}
    tensors.update({f"controlnet.{k}": v for k, v in controlnet.state_dict().items()})
    tensors.update(
        {
            "input.sample": sample,
            "input.timesteps": timesteps,
            "input.context": context,
            "input.context_mask": context_mask,
            "input.condition": condition,
            "output.unet": plain,
            "output.mid": mid,
            "output.controlled": controlled,
        }
    )
    tensors.update({f"output.down.{k}": d for k, d in enumerate(down)})
    # weights and inputs are float32 values already: stored as float32; outputs keep float64
    tensors = {k: v.contiguous().double() if k.startswith("output.") else v.contiguous().float() for k, v in tensors.items()}
    metadata = {
        "generator": "scripts/unet-goldens.py",
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "config": json.dumps(CONFIG),
        "conditioning_scale": str(scale),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    save_file(tensors, OUT, metadata=metadata)
    print(f"wrote {OUT}: {len(tensors)} tensors, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
