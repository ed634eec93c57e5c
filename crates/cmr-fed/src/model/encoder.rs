//! The 3D ViT encoder of the foundation model (Dosovitskiy et al., arXiv 2010.11929, Eq. 1–4) over the subject
//! tensor `(b, c, S, H, W)`: `patch_embed.proj` (a linear map of unfolded `d×p×p` patches, [`PatchEmbed3d`]), a fixed
//! 3D sin-cos position embedding, `cls_token`, pre-norm `blocks.{i}` ([`ViTBlock`], CineMA names `attn.q`, `attn.kv`,
//! `attn.proj`, `mlp.fc1`, `mlp.fc2`) and a final `norm`.
//!
//! The position embedding is not trained (MAE, He et al., arXiv 2111.06377, Appendix A.1: "we use the fixed 2D
//! sine-cosine positional embeddings"), extended here to three axes: the width is split into three equal
//! even parts (slice, row, column), each the 1D embedding `[sin(pos·ω_i), cos(pos·ω_i)]`, `ω_i = 10000^(−i/(a/2))`,
//! of MAE's `get_1d_sincos_pos_embed_from_grid`; the `dim mod 6` leftover channels are zero. It is recomputed from
//! the config, so it is not a tensor of the checkpoint; the cls token has none (MAE prepends a zero row).
//!
//! With LoRA in the last K blocks ([`EncoderLora`]) everything before the first adapted block runs without
//! gradient: the token stream is detached on entering it, so backpropagation stops there.

use candle_core::{bail, DType, Device, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};
use cmr_nn::layers::{LayerNorm, LayerNormConfig, PatchEmbed3d, PatchEmbed3dConfig, ViTBlock, ViTBlockConfig};
use cmr_nn::lora::{BlockLora, LoraLinear, LoraScheme};

use super::config::ViTConfig;

/// LoRA in the last `blocks` encoder blocks (Med-DualLoRA, arXiv 2603.10967: "adapting only the last two transformer
/// blocks").
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderLora {
    /// Adapted blocks, counted from the last; at most the depth.
    pub blocks: usize,
    /// Adapter configuration and targets of each adapted block.
    pub lora: BlockLora,
}

/// The encoder; see the module docs.
#[derive(Debug, Clone)]
pub struct VitEncoder {
    cfg: ViTConfig,
    in_channels: usize,
    patch_embed: PatchEmbed3d,
    /// (1, n, dim), fixed.
    pos_embed: Tensor,
    /// (1, 1, dim)
    cls_token: Tensor,
    blocks: Vec<ViTBlock>,
    norm: LayerNorm,
    /// Index of the first adapted block: the token stream is detached before it.
    first_adapted: Option<usize>,
}

impl VitEncoder {
    /// Creates (or loads) the encoder of `cfg` for `in_channels` input channels (the pretrained model's
    /// `cfg.in_channels`, or more for a shape prior), with LoRA in its last blocks when `lora` is given.
    ///
    /// # Errors
    /// `cfg` invalid, or `lora.blocks` not in `1..=depth` (the message names `lora_blocks`).
    pub fn new(vb: VarBuilder, cfg: &ViTConfig, in_channels: usize, lora: Option<&EncoderLora>) -> Result<Self> {
        cfg.validate().map_err(candle_core::Error::wrap)?;
        let first_adapted = match lora {
            Some(l) if l.blocks == 0 || l.blocks > cfg.depth => {
                bail!("option `lora_blocks`: {} adapted blocks, the encoder has 1 to {} blocks", l.blocks, cfg.depth)
            }
            Some(l) => Some(cfg.depth - l.blocks),
            None => None,
        };
        let embed = PatchEmbed3dConfig { patch_size: cfg.patch_size, patch_depth: cfg.patch_depth, bias: true };
        let mut blocks = Vec::with_capacity(cfg.depth);
        for i in 0..cfg.depth {
            let adapted = first_adapted.is_some_and(|first| i >= first);
            let block = ViTBlockConfig {
                heads: cfg.heads,
                mlp_ratio: cfg.mlp_ratio,
                qkv_bias: true,
                norm_eps: cfg.norm_eps,
                lora: lora.filter(|_| adapted).map(|l| l.lora.clone()),
            };
            blocks.push(ViTBlock::new(vb.pp("blocks").pp(i), cfg.dim, block)?);
        }
        Ok(Self {
            cfg: cfg.clone(),
            in_channels,
            patch_embed: PatchEmbed3d::new(vb.pp("patch_embed"), in_channels, cfg.dim, embed)?,
            pos_embed: sincos_3d(cfg.grid(), cfg.dim, vb.dtype(), vb.device())?,
            cls_token: vb.get_with_hints((1, 1, cfg.dim), "cls_token", Init::Randn { mean: 0.0, stdev: 0.02 })?,
            blocks,
            norm: LayerNorm::new(vb.pp("norm"), cfg.dim, LayerNormConfig { eps: cfg.norm_eps, affine: true })?,
            first_adapted,
        })
    }

    /// The architecture.
    pub fn config(&self) -> &ViTConfig {
        &self.cfg
    }

    /// Patch tokens with their position embedding: `(b, c, S, H, W) → (b, n, dim)`.
    pub fn embed(&self, xs: &Tensor) -> Result<Tensor> {
        let (_, c, s, h, w) = xs.dims5()?;
        if c != self.in_channels || [s, h, w] != self.cfg.volume {
            bail!(
                "ViT encoder: input is {c} channels × {s}×{h}×{w}, the model takes {} channels × {:?}",
                self.in_channels,
                self.cfg.volume
            );
        }
        self.patch_embed.forward(xs)?.broadcast_add(&self.pos_embed)
    }

    /// Prepends the cls token to `tokens` `(b, t, dim)` (all patch tokens, or the visible ones) and runs the blocks
    /// and the final norm: `→ (b, 1 + t, dim)`.
    pub fn encode(&self, tokens: &Tensor) -> Result<Tensor> {
        let (b, _, dim) = tokens.dims3()?;
        let cls = self.cls_token.broadcast_as((b, 1, dim))?;
        let mut xs = Tensor::cat(&[&cls, tokens], 1)?; // (b, 1 + t, dim)
        for (i, block) in self.blocks.iter().enumerate() {
            if self.first_adapted == Some(i) {
                xs = xs.detach(); // 2. frozen prefix: no gradient flows further back
            }
            xs = block.forward(&xs)?;
        }
        self.norm.forward(&xs)
    }

    /// Every LoRA layer of the encoder, block by block.
    pub fn adapters(&self) -> Vec<&LoraLinear> {
        self.blocks.iter().flat_map(ViTBlock::adapters).collect()
    }

    /// Sets which adapter factors train in every adapted block ([`ViTBlock::apply_scheme`]).
    pub fn apply_scheme(&mut self, scheme: LoraScheme) {
        for block in &mut self.blocks {
            block.apply_scheme(scheme);
        }
    }

    /// Index of the first LoRA block (blocks before it run without gradient); `None` without LoRA.
    pub fn first_adapted(&self) -> Option<usize> {
        self.first_adapted
    }
}

impl Module for VitEncoder {
    /// `(b, c, S, H, W) → (b, 1 + n, dim)`, the cls token first.
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.encode(&self.embed(xs)?)
    }
}

/// The fixed 3D sin-cos position embedding `(1, n, dim)` of a `[S/d, H/p, W/p]` grid, tokens in slice, row, column
/// order (see the module docs).
pub fn sincos_3d(grid: [usize; 3], dim: usize, dtype: DType, device: &Device) -> Result<Tensor> {
    let half = dim / 6; // frequencies per axis
    let omegas: Vec<f64> = (0..half).map(|i| 1.0 / 10_000f64.powf(i as f64 / half as f64)).collect();
    let n: usize = grid.iter().product();
    let mut values = Vec::with_capacity(n * dim);
    for z in 0..grid[0] {
        for y in 0..grid[1] {
            for x in 0..grid[2] {
                for pos in [z, y, x] {
                    values.extend(omegas.iter().map(|w| (pos as f64 * w).sin()));
                    values.extend(omegas.iter().map(|w| (pos as f64 * w).cos()));
                }
                values.resize(values.len() + dim - 6 * half, 0.0);
            }
        }
    }
    Tensor::from_vec(values, (1, n, dim), device)?.to_dtype(dtype)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sincos_rows_follow_mae_per_axis_and_pad_with_zeros() -> Result<()> {
        // dim 14: 2 frequencies per axis (12 channels), 2 zero channels
        let pe = sincos_3d([2, 3, 4], 14, DType::F64, &Device::Cpu)?.squeeze(0)?.to_vec2::<f64>()?;
        assert_eq!(pe.len(), 24);
        // token (1, 2, 3) = 1·12 + 2·4 + 3
        let row = &pe[12 + 8 + 3];
        let w1 = 1.0 / 10_000f64.powf(0.5);
        let axis = |pos: f64| [pos.sin(), (pos * w1).sin(), pos.cos(), (pos * w1).cos()];
        let want: Vec<f64> = [axis(1.0), axis(2.0), axis(3.0)].concat().into_iter().chain([0.0, 0.0]).collect();
        assert_eq!(row, &want);
        Ok(())
    }
}
