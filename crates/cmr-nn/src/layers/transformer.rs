//! The text-conditioned transformer of the diffusion UNet and ControlNet, as diffusers
//! (<https://github.com/huggingface/diffusers/blob/v0.30.0/src/diffusers/models/attention.py>,
//! `transformers/transformer_2d.py`):
//! - [`FeedForward`] — `net.0` (GEGLU or GELU with its `proj`), `net.2` (output linear); GEGLU is
//!   `x·W ⊙ GELU(x·V)` (Shazeer, arXiv 2002.05202, Eq. 6);
//! - [`BasicTransformerBlock`] — pre-norm self-attention `attn1`, cross-attention `attn2` over the prompt's token
//!   states with their padding mask, feed-forward `ff`, each with its own LayerNorm (`norm1`, `norm2`, `norm3`) and
//!   residual (Rombach et al., arXiv 2112.10752, §3.3);
//! - [`Transformer2dModel`] — GroupNorm `norm`, `proj_in`, `transformer_blocks.{i}`, `proj_out` around the blocks,
//!   with a residual over the whole: an image `(b, c, h, w)` attends as `h·w` tokens.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::activation::{gelu_erf, gelu_tanh};
use super::attention::{Attention, AttentionConfig};
use super::conv::{Conv2d, Conv2dConfig};
use super::linear::{Linear, LinearConfig};
use super::norm::{GroupNorm, GroupNormConfig, LayerNorm, LayerNormConfig};

/// The first stage of a [`FeedForward`], as diffusers' `activation_fn` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeedForwardActivation {
    /// `"geglu"`: `proj` to twice the inner width, split into `hidden | gate`, output `hidden · GELU(gate)`.
    #[default]
    Geglu,
    /// `"gelu"`: `GELU(proj(x))`, exact GELU.
    Gelu,
    /// `"gelu-approximate"`: `GELU_tanh(proj(x))`.
    GeluApproximate,
}

/// Configuration of a [`FeedForward`] block; defaults are diffusers'.
#[derive(Debug, Clone)]
pub struct FeedForwardConfig {
    /// Inner width as a multiple of the input width. Default `4`.
    pub mult: usize,
    /// First stage. Default [`FeedForwardActivation::Geglu`].
    pub activation: FeedForwardActivation,
}

impl Default for FeedForwardConfig {
    fn default() -> Self {
        Self { mult: 4, activation: FeedForwardActivation::Geglu }
    }
}

/// Position-wise feed-forward network `(…, dim) → (…, dim)`.
#[derive(Debug, Clone)]
pub struct FeedForward {
    proj: Linear,
    activation: FeedForwardActivation,
    out: Linear,
}

impl FeedForward {
    /// Creates (or loads) `net.0.proj` and `net.2`.
    pub fn new(vb: VarBuilder, dim: usize, cfg: FeedForwardConfig) -> Result<Self> {
        let inner = dim * cfg.mult;
        let proj_width = if cfg.activation == FeedForwardActivation::Geglu { 2 * inner } else { inner };
        Ok(Self {
            proj: Linear::new(vb.pp("net.0.proj"), dim, proj_width, LinearConfig::default())?,
            activation: cfg.activation,
            out: Linear::new(vb.pp("net.2"), inner, dim, LinearConfig::default())?,
        })
    }
}

impl Module for FeedForward {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let h = self.proj.forward(xs)?;
        let h = match self.activation {
            FeedForwardActivation::Geglu => crate::ops::geglu(&h)?,
            FeedForwardActivation::Gelu => gelu_erf(&h)?,
            FeedForwardActivation::GeluApproximate => gelu_tanh(&h)?,
        };
        self.out.forward(&h) // net.1 is a dropout with p = 0 upstream
    }
}

/// Configuration of a [`BasicTransformerBlock`].
#[derive(Debug, Clone)]
pub struct BasicTransformerBlockConfig {
    /// Attention heads. Default `16` (diffusers `Transformer2DModel`).
    pub heads: usize,
    /// Channels per head; `heads · head_dim` must equal the block width. Default `88`.
    pub head_dim: usize,
    /// Width of the cross-attention context (the text encoder's hidden size); `None` builds no `norm2` / `attn2`.
    /// Default `None`.
    pub cross_attention_dim: Option<usize>,
    /// Whether `to_q`, `to_k`, `to_v` have a bias. Default `false`.
    pub attention_bias: bool,
    /// Epsilon of the three LayerNorms. Default `1e-5`.
    pub norm_eps: f64,
    /// The feed-forward `ff`. Default GEGLU, ×4.
    pub ff: FeedForwardConfig,
}

impl Default for BasicTransformerBlockConfig {
    fn default() -> Self {
        Self {
            heads: 16,
            head_dim: 88,
            cross_attention_dim: None,
            attention_bias: false,
            norm_eps: 1e-5,
            ff: FeedForwardConfig::default(),
        }
    }
}

/// Pre-norm transformer block over tokens `(b, n, dim)`.
#[derive(Debug, Clone)]
pub struct BasicTransformerBlock {
    norm1: LayerNorm,
    attn1: Attention,
    cross: Option<(LayerNorm, Attention)>,
    norm3: LayerNorm,
    ff: FeedForward,
}

impl BasicTransformerBlock {
    /// Creates (or loads) `norm1`, `attn1`, [`norm2`, `attn2`,] `norm3`, `ff`.
    pub fn new(vb: VarBuilder, dim: usize, cfg: BasicTransformerBlockConfig) -> Result<Self> {
        let norm = LayerNormConfig { eps: cfg.norm_eps, affine: true };
        let attn = AttentionConfig {
            heads: cfg.heads,
            head_dim: cfg.head_dim,
            qkv_bias: cfg.attention_bias,
            ..Default::default()
        };
        let cross = match cfg.cross_attention_dim {
            Some(context_dim) => Some((
                LayerNorm::new(vb.pp("norm2"), dim, norm.clone())?,
                Attention::new(
                    vb.pp("attn2"),
                    dim,
                    AttentionConfig { cross_attention_dim: Some(context_dim), ..attn.clone() },
                )?,
            )),
            None => None,
        };
        Ok(Self {
            norm1: LayerNorm::new(vb.pp("norm1"), dim, norm.clone())?,
            attn1: Attention::new(vb.pp("attn1"), dim, attn)?,
            cross,
            norm3: LayerNorm::new(vb.pp("norm3"), dim, norm)?,
            ff: FeedForward::new(vb.pp("ff"), dim, cfg.ff)?,
        })
    }

    /// Applies the block to `xs` `(b, n, dim)`; `context` `(b, m, cross_dim)` and its `context_mask` `(b, m)`
    /// (nonzero = real token) feed the cross-attention, which a block built without one ignores.
    pub fn forward(&self, xs: &Tensor, context: Option<&Tensor>, context_mask: Option<&Tensor>) -> Result<Tensor> {
        // 1. self-attention
        let xs = (self.attn1.forward(&self.norm1.forward(xs)?, None, None)? + xs)?;
        // 2. cross-attention (self-attention again when no context is given, as diffusers)
        let xs = match &self.cross {
            Some((norm2, attn2)) => (attn2.forward(&norm2.forward(&xs)?, context, context_mask)? + &xs)?,
            None => xs,
        };
        // 3. feed-forward
        self.ff.forward(&self.norm3.forward(&xs)?)? + &xs
    }
}

/// Configuration of a [`Transformer2dModel`]; defaults are diffusers'.
#[derive(Debug, Clone)]
pub struct Transformer2dModelConfig {
    /// Number of stacked [`BasicTransformerBlock`]s. Default `1`.
    pub num_layers: usize,
    /// Groups of the input GroupNorm (epsilon fixed at `1e-6` upstream). Default `32`.
    pub norm_num_groups: usize,
    /// `proj_in` / `proj_out` as linears over tokens instead of 1×1 convolutions. Default `false`.
    pub use_linear_projection: bool,
    /// The blocks; their width is `heads · head_dim`.
    pub block: BasicTransformerBlockConfig,
}

impl Default for Transformer2dModelConfig {
    fn default() -> Self {
        Self { num_layers: 1, norm_num_groups: 32, use_linear_projection: false, block: Default::default() }
    }
}

#[derive(Debug, Clone)]
enum Projection {
    Conv(Conv2d),
    Linear(Linear),
}

/// Spatial transformer `(b, c, h, w) → (b, c, h, w)`: an image as `h·w` tokens through transformer blocks.
#[derive(Debug, Clone)]
pub struct Transformer2dModel {
    norm: GroupNorm,
    proj_in: Projection,
    blocks: Vec<BasicTransformerBlock>,
    proj_out: Projection,
}

impl Transformer2dModel {
    /// Creates (or loads) `norm`, `proj_in`, `transformer_blocks.{i}`, `proj_out` for `in_channels` channels.
    pub fn new(vb: VarBuilder, in_channels: usize, cfg: Transformer2dModelConfig) -> Result<Self> {
        let inner = cfg.block.heads * cfg.block.head_dim;
        let projection = |name: &str, from: usize, to: usize| -> Result<Projection> {
            Ok(if cfg.use_linear_projection {
                Projection::Linear(Linear::new(vb.pp(name), from, to, LinearConfig::default())?)
            } else {
                Projection::Conv(Conv2d::new(vb.pp(name), from, to, 1, Conv2dConfig::default())?)
            })
        };
        let blocks = (0..cfg.num_layers)
            .map(|i| BasicTransformerBlock::new(vb.pp("transformer_blocks").pp(i), inner, cfg.block.clone()))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self {
            norm: GroupNorm::new(
                vb.pp("norm"),
                cfg.norm_num_groups,
                in_channels,
                GroupNormConfig { eps: 1e-6, affine: true },
            )?,
            proj_in: projection("proj_in", in_channels, inner)?,
            blocks,
            proj_out: projection("proj_out", inner, in_channels)?,
        })
    }

    /// Applies the transformer to `xs` `(b, c, h, w)` with an optional text `context` `(b, m, cross_dim)` and its
    /// padding mask `(b, m)`.
    pub fn forward(&self, xs: &Tensor, context: Option<&Tensor>, context_mask: Option<&Tensor>) -> Result<Tensor> {
        let (_, _, h, w) = xs.dims4()?;
        let normed = self.norm.forward(xs)?;
        // 1. to tokens (b, h·w, inner)
        let tokens = match &self.proj_in {
            Projection::Conv(conv) => to_tokens(&conv.forward(&normed)?)?,
            Projection::Linear(linear) => linear.forward(&to_tokens(&normed)?)?,
        };
        // 2. blocks
        let mut tokens = tokens;
        for block in &self.blocks {
            tokens = block.forward(&tokens, context, context_mask)?;
        }
        // 3. back to an image (b, c, h, w), residual
        let out = match &self.proj_out {
            Projection::Conv(conv) => conv.forward(&to_image(&tokens, h, w)?)?,
            Projection::Linear(linear) => to_image(&linear.forward(&tokens)?, h, w)?,
        };
        out + xs
    }
}

/// `(b, c, h, w) → (b, h·w, c)`.
fn to_tokens(xs: &Tensor) -> Result<Tensor> {
    let (b, c, h, w) = xs.dims4()?;
    xs.permute((0, 2, 3, 1))?.reshape((b, h * w, c))
}

/// `(b, h·w, c) → (b, c, h, w)`.
fn to_image(xs: &Tensor, h: usize, w: usize) -> Result<Tensor> {
    let (b, _, c) = xs.dims3()?;
    xs.reshape((b, h, w, c))?.permute((0, 3, 1, 2))?.contiguous()
}
