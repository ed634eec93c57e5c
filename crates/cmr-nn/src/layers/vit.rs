//! The pre-norm Vision Transformer encoder block (Dosovitskiy et al., arXiv 2010.11929, Eq. 2–3:
//! `z' = MSA(LN(z)) + z`, `z = MLP(LN(z')) + z'`) of the foundation model and its MAE decoder, with the CineMA-style
//! names of issue 7: `norm1`, `attn.q`, `attn.kv`, `attn.proj`, `norm2`, `mlp.fc1`, `mlp.fc2`. Defaults follow timm's
//! `VisionTransformer` (<https://github.com/huggingface/pytorch-image-models/blob/v1.0.9/timm/models/vision_transformer.py>).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::activation::Activation;
use super::attention::{Attention, AttentionConfig, ProjectionNames};
use super::linear::{Linear, LinearConfig};
use super::norm::{LayerNorm, LayerNormConfig};

/// Configuration of a [`Mlp`].
#[derive(Debug, Clone)]
pub struct MlpConfig {
    /// Hidden width of `fc1`. No default upstream; [`ViTBlock`] passes `mlp_ratio · dim`. Default `3072` (ViT-B).
    pub hidden: usize,
    /// Activation between `fc1` and `fc2`. Default [`Activation::Gelu`] (exact, timm's `nn.GELU`).
    pub act: Activation,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self { hidden: 3072, act: Activation::Gelu }
    }
}

/// Two-layer perceptron `fc2(act(fc1(x)))`, `(…, dim) → (…, dim)`.
#[derive(Debug, Clone)]
pub struct Mlp {
    fc1: Linear,
    act: Activation,
    fc2: Linear,
}

impl Mlp {
    /// Creates (or loads) `fc1` `(dim → hidden)` and `fc2` `(hidden → dim)`.
    pub fn new(vb: VarBuilder, dim: usize, cfg: MlpConfig) -> Result<Self> {
        Ok(Self {
            fc1: Linear::new(vb.pp("fc1"), dim, cfg.hidden, LinearConfig::default())?,
            act: cfg.act,
            fc2: Linear::new(vb.pp("fc2"), cfg.hidden, dim, LinearConfig::default())?,
        })
    }
}

impl Module for Mlp {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.fc2.forward(&self.act.forward(&self.fc1.forward(xs)?)?)
    }
}

/// Configuration of a [`ViTBlock`]; defaults are timm's ViT.
#[derive(Debug, Clone)]
pub struct ViTBlockConfig {
    /// Attention heads; must divide the width. Default `12`.
    pub heads: usize,
    /// MLP hidden width as a multiple of the block width. Default `4.0`.
    pub mlp_ratio: f64,
    /// Whether `attn.q` and `attn.kv` have a bias. Default `true`.
    pub qkv_bias: bool,
    /// Epsilon of `norm1` and `norm2`. Default `1e-6`.
    pub norm_eps: f64,
}

impl Default for ViTBlockConfig {
    fn default() -> Self {
        Self { heads: 12, mlp_ratio: 4.0, qkv_bias: true, norm_eps: 1e-6 }
    }
}

/// Pre-norm encoder block over tokens `(b, n, dim)`.
#[derive(Debug, Clone)]
pub struct ViTBlock {
    norm1: LayerNorm,
    attn: Attention,
    norm2: LayerNorm,
    mlp: Mlp,
}

impl ViTBlock {
    /// Creates (or loads) `norm1`, `attn.{q,kv,proj}`, `norm2`, `mlp.{fc1,fc2}` for width `dim`.
    pub fn new(vb: VarBuilder, dim: usize, cfg: ViTBlockConfig) -> Result<Self> {
        if cfg.heads == 0 || dim % cfg.heads != 0 {
            candle_core::bail!("ViTBlock {}: {} heads must divide width {dim}", vb.prefix(), cfg.heads);
        }
        let norm = LayerNormConfig { eps: cfg.norm_eps, affine: true };
        let attn = AttentionConfig {
            heads: cfg.heads,
            head_dim: dim / cfg.heads,
            cross_attention_dim: None,
            qkv_bias: cfg.qkv_bias,
            out_bias: true,
            names: ProjectionNames::QKvProj,
        };
        let mlp = MlpConfig { hidden: (dim as f64 * cfg.mlp_ratio) as usize, act: Activation::Gelu };
        Ok(Self {
            norm1: LayerNorm::new(vb.pp("norm1"), dim, norm.clone())?,
            attn: Attention::new(vb.pp("attn"), dim, attn)?,
            norm2: LayerNorm::new(vb.pp("norm2"), dim, norm)?,
            mlp: Mlp::new(vb.pp("mlp"), dim, mlp)?,
        })
    }
}

impl Module for ViTBlock {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = (self.attn.forward(&self.norm1.forward(xs)?, None, None)? + xs)?;
        self.mlp.forward(&self.norm2.forward(&xs)?)? + &xs
    }
}
