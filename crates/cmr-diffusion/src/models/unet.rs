//! Pixel-space conditional UNet (Ronneberger et al., arXiv 1505.04597, as the DDPM denoiser of Ho et al.,
//! arXiv 2006.11239, with the text cross-attention of Rombach et al., arXiv 2112.10752, §3.3): `ε_θ(x_t, t, text)`.
//! Tensor names are those of diffusers' `UNet2DConditionModel` (v0.42.1, `unet_2d_condition.py`): `conv_in`,
//! `time_embedding.linear_{1,2}`, `down_blocks.{i}`, `mid_block`, `up_blocks.{i}`, `conv_norm_out`, `conv_out`.
//!
//! Written on `cmr-nn` rather than candle-transformers' `UNet2DConditionModel`, which takes one timestep for the whole
//! batch, crashes with sliced attention and leaves 70 of its weights without gradient (issue 6).

use candle_core::{bail, DType, Module, Result, Tensor};
use candle_nn::VarBuilder;
use cmr_nn::layers::{
    Conv2d, Conv2dConfig, GroupNorm, GroupNormConfig, ResnetBlock2dConfig, TimestepEmbedding, TimestepEmbeddingConfig,
    Timesteps, TimestepsConfig,
};
use serde::{Deserialize, Serialize};

use super::blocks::{BlockSettings, DownBlock, MidBlock, TextContext, UpBlock, UpWidths};

/// Kind of a down block (diffusers' `down_block_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DownBlockType {
    /// Resnets only.
    DownBlock2D,
    /// Resnets each followed by a spatial transformer with text cross-attention.
    CrossAttnDownBlock2D,
}

/// Kind of an up block (diffusers' `up_block_types`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UpBlockType {
    /// Resnets only.
    UpBlock2D,
    /// Resnets each followed by a spatial transformer with text cross-attention.
    CrossAttnUpBlock2D,
}

/// Configuration of a [`UNet2dConditionModel`], serialised as the model's `config.json`. Field names and defaults
/// follow diffusers' `UNet2DConditionModel` except where noted: two image channels (ED, ES) in and out, a
/// 384-wide text context (all-MiniLM-L6-v2) and `num_attention_heads` named for what it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UNet2dConditionConfig {
    /// Channels of the noisy sample. Default `2` (ED, ES).
    pub in_channels: usize,
    /// Channels of the prediction. Default `2`.
    pub out_channels: usize,
    /// Width of each resolution level, highest resolution first. Default `[320, 640, 1280, 1280]`.
    pub block_out_channels: Vec<usize>,
    /// Block kind per level, highest resolution first. Default three cross-attention levels, then one without.
    pub down_block_types: Vec<DownBlockType>,
    /// Block kind per level, lowest resolution first (the mirror of `down_block_types`). Default the mirror of the
    /// default down blocks.
    pub up_block_types: Vec<UpBlockType>,
    /// Resnets per down block (up blocks have one more). Default `2`.
    pub layers_per_block: usize,
    /// Groups of every GroupNorm. Default `32`.
    pub norm_num_groups: usize,
    /// Epsilon of the resnets' and the output's GroupNorm. Default `1e-5`.
    pub norm_eps: f64,
    /// Width of the text context. Default `384` (all-MiniLM-L6-v2; diffusers: 1280).
    pub cross_attention_dim: usize,
    /// Attention heads of every transformer (diffusers calls this `attention_head_dim` for legacy reasons).
    /// Default `8`.
    pub num_attention_heads: usize,
    /// Transformer layers per attention block. Default `1`.
    pub transformer_layers_per_block: usize,
    /// Linear instead of 1×1-convolution projections into and out of the transformers. Default `false`.
    pub use_linear_projection: bool,
    /// Order of the sinusoidal time embedding's halves (`cos | sin` when `true`). Default `true`.
    pub flip_sin_to_cos: bool,
    /// Frequency shift of the time embedding. Default `0`.
    pub freq_shift: f64,
}

impl Default for UNet2dConditionConfig {
    fn default() -> Self {
        use DownBlockType::*;
        use UpBlockType::*;
        Self {
            in_channels: 2,
            out_channels: 2,
            block_out_channels: vec![320, 640, 1280, 1280],
            down_block_types: vec![CrossAttnDownBlock2D, CrossAttnDownBlock2D, CrossAttnDownBlock2D, DownBlock2D],
            up_block_types: vec![UpBlock2D, CrossAttnUpBlock2D, CrossAttnUpBlock2D, CrossAttnUpBlock2D],
            layers_per_block: 2,
            norm_num_groups: 32,
            norm_eps: 1e-5,
            cross_attention_dim: 384,
            num_attention_heads: 8,
            transformer_layers_per_block: 1,
            use_linear_projection: false,
            flip_sin_to_cos: true,
            freq_shift: 0.0,
        }
    }
}

impl UNet2dConditionConfig {
    /// The CPU demo scale (64×64 pixels, ~4.2 M parameters): widths 32/64/128, one resnet per down block, 8 norm
    /// groups, 4 heads, text cross-attention at the lowest resolution only (16×16 for 64-px images; self-attention
    /// over the 1024 tokens of 32×32 costs more than the rest of the network on a CPU).
    pub fn demo() -> Self {
        use DownBlockType::*;
        use UpBlockType::*;
        Self {
            block_out_channels: vec![32, 64, 128],
            down_block_types: vec![DownBlock2D, DownBlock2D, CrossAttnDownBlock2D],
            up_block_types: vec![CrossAttnUpBlock2D, UpBlock2D, UpBlock2D],
            layers_per_block: 1,
            norm_num_groups: 8,
            num_attention_heads: 4,
            use_linear_projection: true,
            ..Self::default()
        }
    }

    /// Checks that the levels, widths, groups and heads fit together; the message names the field.
    pub fn validate(&self) -> Result<()> {
        let levels = self.block_out_channels.len();
        if levels == 0 || self.down_block_types.len() != levels || self.up_block_types.len() != levels {
            bail!(
                "UNet config: block_out_channels ({levels}), down_block_types ({}) and up_block_types ({}) must \
                 name the same number (≥ 1) of levels",
                self.down_block_types.len(),
                self.up_block_types.len()
            );
        }
        for (i, (down, up)) in self.down_block_types.iter().zip(self.up_block_types.iter().rev()).enumerate() {
            if (*down == DownBlockType::CrossAttnDownBlock2D) != (*up == UpBlockType::CrossAttnUpBlock2D) {
                bail!("UNet config: down_block_types[{i}] is {down:?} but its mirror in up_block_types is {up:?}");
            }
        }
        if self.layers_per_block == 0 || self.transformer_layers_per_block == 0 {
            bail!("UNet config: layers_per_block and transformer_layers_per_block must be ≥ 1");
        }
        for (i, &width) in self.block_out_channels.iter().enumerate() {
            if width == 0 || width % self.norm_num_groups != 0 || width % self.num_attention_heads != 0 {
                bail!(
                    "UNet config: block_out_channels[{i}] = {width} must be a positive multiple of norm_num_groups \
                     ({}) and num_attention_heads ({})",
                    self.norm_num_groups,
                    self.num_attention_heads
                );
            }
        }
        if self.in_channels == 0 || self.out_channels == 0 || self.cross_attention_dim == 0 {
            bail!("UNet config: in_channels, out_channels and cross_attention_dim must be positive");
        }
        Ok(())
    }

    /// Width of the time embedding: four times the first level's width, as diffusers.
    pub fn time_embed_dim(&self) -> usize {
        4 * self.block_out_channels[0]
    }

    /// Side lengths must be divisible by this (one halving per level below the first).
    pub fn size_multiple(&self) -> usize {
        1 << (self.block_out_channels.len() - 1)
    }

    pub(crate) fn block_settings(&self) -> BlockSettings {
        BlockSettings {
            resnet: ResnetBlock2dConfig {
                groups: self.norm_num_groups,
                eps: self.norm_eps,
                temb_channels: Some(self.time_embed_dim()),
                ..Default::default()
            },
            heads: self.num_attention_heads,
            transformer_layers: self.transformer_layers_per_block,
            cross_attention_dim: self.cross_attention_dim,
            use_linear_projection: self.use_linear_projection,
        }
    }
}

/// The ControlNet's additions to the UNet: one residual per skip state of the down path, and one for the mid block.
#[derive(Debug, Clone)]
pub struct ControlResiduals {
    /// Added to the skip states, in the order the down path produces them.
    pub down: Vec<Tensor>,
    /// Added to the mid block's output.
    pub mid: Tensor,
}

/// `conv_in`, the time embedding and the down path: the part of the UNet the ControlNet copies.
#[derive(Debug, Clone)]
pub(crate) struct Encoder {
    conv_in: Conv2d,
    time_proj: Timesteps,
    time_embedding: TimestepEmbedding,
    down_blocks: Vec<DownBlock>,
    mid_block: MidBlock,
    dtype: DType,
}

/// What [`Encoder::forward`] hands on: the mid block's output, every skip state and the time embedding.
pub(crate) struct Encoded {
    pub mid: Tensor,
    pub skips: Vec<Tensor>,
    pub temb: Tensor,
}

impl Encoder {
    pub fn new(vb: &VarBuilder, cfg: &UNet2dConditionConfig) -> Result<Self> {
        cfg.validate()?;
        let widths = &cfg.block_out_channels;
        let settings = cfg.block_settings();
        let conv_in = Conv2d::new(vb.pp("conv_in"), cfg.in_channels, widths[0], 3, padded())?;
        let time_proj = Timesteps::new(
            widths[0],
            TimestepsConfig {
                flip_sin_to_cos: cfg.flip_sin_to_cos,
                downscale_freq_shift: cfg.freq_shift,
                ..Default::default()
            },
        )?;
        let time_embedding = TimestepEmbedding::new(
            vb.pp("time_embedding"),
            widths[0],
            cfg.time_embed_dim(),
            TimestepEmbeddingConfig::default(),
        )?;
        let mut down_blocks = Vec::with_capacity(widths.len());
        for (i, &out) in widths.iter().enumerate() {
            let input = if i == 0 { widths[0] } else { widths[i - 1] };
            let attention = cfg.down_block_types[i] == DownBlockType::CrossAttnDownBlock2D;
            let downsample = i + 1 < widths.len();
            let vb = vb.pp("down_blocks").pp(i);
            down_blocks.push(DownBlock::new(
                vb,
                (input, out),
                cfg.layers_per_block,
                (attention, downsample),
                &settings,
            )?);
        }
        let mid_block = MidBlock::new(vb.pp("mid_block"), widths[widths.len() - 1], &settings)?;
        Ok(Self { conv_in, time_proj, time_embedding, down_blocks, mid_block, dtype: vb.dtype() })
    }

    /// Widths of the skip states, in the order the down path produces them (the first is `conv_in`'s output).
    pub fn skip_widths(cfg: &UNet2dConditionConfig) -> Vec<usize> {
        let mut widths = vec![cfg.block_out_channels[0]];
        for (i, &out) in cfg.block_out_channels.iter().enumerate() {
            let per_block = cfg.layers_per_block + usize::from(i + 1 < cfg.block_out_channels.len());
            widths.extend(std::iter::repeat_n(out, per_block));
        }
        widths
    }

    /// Time embedding `(b, time_embed_dim)` of one timestep per sample `(b,)`.
    pub fn embed_time(&self, timesteps: &Tensor, batch: usize) -> Result<Tensor> {
        if timesteps.dims() != [batch] {
            bail!("UNet: expected one timestep per sample, shape ({batch}), got {:?}", timesteps.shape());
        }
        let t_emb = self.time_proj.forward(timesteps)?.to_dtype(self.dtype)?;
        self.time_embedding.forward(&t_emb)
    }

    /// `conv_in(sample) (+ hint)`, the down path and the mid block. `hint`, the ControlNet's embedded condition, is
    /// added right after `conv_in`.
    pub fn forward(
        &self,
        sample: &Tensor,
        timesteps: &Tensor,
        text: Option<TextContext>,
        hint: Option<&Tensor>,
    ) -> Result<Encoded> {
        let (b, _, h, w) = sample.dims4()?;
        let multiple = 1 << (self.down_blocks.len() - 1);
        if h % multiple != 0 || w % multiple != 0 {
            bail!("UNet: sample size {h}×{w} must be divisible by {multiple} (one halving per level)");
        }
        // 1. time
        let temb = self.embed_time(timesteps, b)?;
        // 2. pre-process
        let mut xs = self.conv_in.forward(sample)?;
        if let Some(hint) = hint {
            xs = (xs + hint)?;
        }
        // 3. down
        let mut skips = vec![xs.clone()];
        for block in &self.down_blocks {
            let (out, states) = block.forward(&xs, &temb, text)?;
            skips.extend(states);
            xs = out;
        }
        // 4. mid
        let mid = self.mid_block.forward(&xs, &temb, text)?;
        Ok(Encoded { mid, skips, temb })
    }
}

/// `conv_in` with a 3×3 kernel and size-preserving padding, as every UNet entry and exit convolution.
pub(crate) fn padded() -> Conv2dConfig {
    Conv2dConfig { padding: 1, ..Default::default() }
}

/// The conditional denoiser `(b, in, h, w), t (b,), text → (b, out, h, w)`.
#[derive(Debug, Clone)]
pub struct UNet2dConditionModel {
    encoder: Encoder,
    up_blocks: Vec<UpBlock>,
    conv_norm_out: GroupNorm,
    conv_out: Conv2d,
    config: UNet2dConditionConfig,
}

impl UNet2dConditionModel {
    /// Creates (training, from a `VarMap`) or loads (sampling, from safetensors) the UNet described by `cfg`.
    pub fn new(vb: VarBuilder, cfg: UNet2dConditionConfig) -> Result<Self> {
        let encoder = Encoder::new(&vb, &cfg)?;
        let settings = cfg.block_settings();
        let reversed: Vec<usize> = cfg.block_out_channels.iter().rev().copied().collect();
        let mut up_blocks = Vec::with_capacity(reversed.len());
        for (i, &out) in reversed.iter().enumerate() {
            let widths = UpWidths {
                prev_out: if i == 0 { out } else { reversed[i - 1] },
                skip_in: reversed[(i + 1).min(reversed.len() - 1)],
                out,
            };
            let attention = cfg.up_block_types[i] == UpBlockType::CrossAttnUpBlock2D;
            let upsample = i + 1 < reversed.len();
            let vb = vb.pp("up_blocks").pp(i);
            up_blocks.push(UpBlock::new(vb, widths, cfg.layers_per_block + 1, (attention, upsample), &settings)?);
        }
        let first = cfg.block_out_channels[0];
        let conv_norm_out = GroupNorm::new(
            vb.pp("conv_norm_out"),
            cfg.norm_num_groups,
            first,
            GroupNormConfig { eps: cfg.norm_eps, affine: true },
        )?;
        let conv_out = Conv2d::new(vb.pp("conv_out"), first, cfg.out_channels, 3, padded())?;
        Ok(Self { encoder, up_blocks, conv_norm_out, conv_out, config: cfg })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &UNet2dConditionConfig {
        &self.config
    }

    /// Predicts from the noisy `sample` `(b, in, h, w)` at `timesteps` `(b,)` given the `text` (`None`: no context,
    /// the transformers attend to the image only).
    pub fn forward(&self, sample: &Tensor, timesteps: &Tensor, text: Option<TextContext>) -> Result<Tensor> {
        self.forward_inner(sample, timesteps, text, None)
    }

    /// As [`Self::forward`], with a ControlNet's residuals added to the skip states and the mid block's output.
    pub fn forward_with_additional_residuals(
        &self,
        sample: &Tensor,
        timesteps: &Tensor,
        text: Option<TextContext>,
        residuals: &ControlResiduals,
    ) -> Result<Tensor> {
        self.forward_inner(sample, timesteps, text, Some(residuals))
    }

    fn forward_inner(
        &self,
        sample: &Tensor,
        timesteps: &Tensor,
        text: Option<TextContext>,
        residuals: Option<&ControlResiduals>,
    ) -> Result<Tensor> {
        // 1.–4. time, conv_in, down, mid
        let Encoded { mut mid, mut skips, temb } = self.encoder.forward(sample, timesteps, text, None)?;
        // 5. ControlNet residuals
        if let Some(residuals) = residuals {
            if residuals.down.len() != skips.len() {
                bail!("UNet: ControlNet gave {} down residuals for {} skip states", residuals.down.len(), skips.len());
            }
            skips = skips.iter().zip(&residuals.down).map(|(s, r)| s + r).collect::<Result<_>>()?;
            mid = (mid + &residuals.mid)?;
        }
        // 6. up
        let mut xs = mid;
        for block in &self.up_blocks {
            xs = block.forward(&xs, &mut skips, &temb, text)?;
        }
        // 7. post-process
        self.conv_out.forward(&self.conv_norm_out.forward_silu(&xs)?)
    }
}
