"""diffusers twin of crates/cmr-diffusion/benches/diffusion.rs: builds the same UNet2DConditionModel and ControlNetModel
(configuration read from that bench's JSON on stdin), times the same three operations the same way (one warm-up, median
of at least 3 and up to 15 calls or 20 s), f32 on CPU with the given thread count, and prints
{"threads", "torch", "diffusers", "results": [{"name", "ms"}]} as JSON.

Usage: cargo bench -p cmr-diffusion --bench diffusion -- --json | python bench_diffusion_torch.py
"""

import json
import sys
import time

import diffusers
import torch
from diffusers import ControlNetModel, UNet2DConditionModel


def median(f):
    f()
    times, start = [], time.perf_counter()
    while len(times) < 3 or (len(times) < 15 and time.perf_counter() - start < 20):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    spec = json.load(sys.stdin)
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    u = spec["unet"]
    unet = UNet2DConditionModel(
        sample_size=spec["size"],
        in_channels=u["in_channels"],
        out_channels=u["out_channels"],
        block_out_channels=tuple(u["block_out_channels"]),
        down_block_types=tuple(u["down_block_types"]),
        up_block_types=tuple(u["up_block_types"]),
        layers_per_block=u["layers_per_block"],
        norm_num_groups=u["norm_num_groups"],
        norm_eps=u["norm_eps"],
        cross_attention_dim=u["cross_attention_dim"],
        attention_head_dim=u["num_attention_heads"],  # diffusers' legacy name: the number of heads
        use_linear_projection=u["use_linear_projection"],
        flip_sin_to_cos=u["flip_sin_to_cos"],
        freq_shift=int(u["freq_shift"]),
    )
    controlnet = ControlNetModel.from_unet(
        unet,
        conditioning_channels=8,
        conditioning_embedding_out_channels=tuple(spec["conditioning_embedding_out_channels"]),
    )
    for k in range(1, len(controlnet.controlnet_cond_embedding.blocks), 2):
        controlnet.controlnet_cond_embedding.blocks[k].stride = (1, 1)  # pixel space, as the Rust ControlNet
    b, s, n = spec["batch"], spec["size"], spec["tokens"]
    x, target = torch.randn(b, 2, s, s), torch.randn(b, 2, s, s)
    condition = (torch.randn(b, 8, s, s) > 1).float()
    context = torch.randn(b, n, u["cross_attention_dim"])
    t = torch.full((b,), 500)

    base_opt = torch.optim.AdamW(unet.parameters(), lr=1e-5, weight_decay=0.0)

    def base_step():
        base_opt.zero_grad(set_to_none=True)
        loss = (unet(x, t, encoder_hidden_states=context).sample - target).pow(2).mean()
        loss.backward()
        base_opt.step()

    control_opt = torch.optim.AdamW(controlnet.parameters(), lr=1e-5, weight_decay=0.0)

    def control_step():
        control_opt.zero_grad(set_to_none=True)
        down, mid = controlnet(x, t, encoder_hidden_states=context, controlnet_cond=condition, return_dict=False)
        pred = unet(
            x, t, encoder_hidden_states=context, down_block_additional_residuals=down, mid_block_additional_residual=mid
        ).sample
        (pred - target).pow(2).mean().backward()
        control_opt.step()

    x2, cond2, ctx2, t2 = torch.cat([x, x]), torch.cat([condition, condition]), torch.cat([context, context]), torch.full((2 * b,), 500)

    @torch.no_grad()
    def sample_step():
        down, mid = controlnet(x2, t2, encoder_hidden_states=ctx2, controlnet_cond=cond2, return_dict=False)
        out = unet(
            x2, t2, encoder_hidden_states=ctx2, down_block_additional_residuals=down, mid_block_additional_residual=mid
        ).sample
        u_, c_ = out.chunk(2)
        return u_ + 4.0 * (c_ - u_)

    base_ms = median(base_step)
    unet.requires_grad_(False)  # the ControlNet stage trains on a frozen base
    control_ms = median(control_step)
    sample_ms = median(sample_step)
    names = [r["name"] for r in spec["results"]]
    print(
        json.dumps(
            {
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
                "diffusers": diffusers.__version__,
                "results": [{"name": name, "ms": ms} for name, ms in zip(names, [base_ms, control_ms, sample_ms])],
            }
        )
    )


if __name__ == "__main__":
    main()
