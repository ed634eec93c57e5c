//! The pre-norm Vision Transformer encoder block (Dosovitskiy et al., arXiv 2010.11929, Eq. 2–3:
//! `z' = MSA(LN(z)) + z`, `z = MLP(LN(z')) + z'`) of the foundation model and its MAE decoder, with the CineMA-style
//! names of issue 7: `norm1`, `attn.q`, `attn.kv`, `attn.proj`, `norm2`, `mlp.fc1`, `mlp.fc2`. Defaults follow timm's
//! `VisionTransformer` (<https://github.com/huggingface/pytorch-image-models/blob/v1.0.9/timm/models/vision_transformer.py>).
//!
//! With [`ViTBlockConfig::lora`] the block's projections named in [`BlockLora::targets`] become [`LoraLinear`] layers
//! (same base tensor names, so a checkpoint without adapters loads) and the rest of the block is frozen: this is the
//! adapted block of Med-DualLoRA (arXiv 2603.10967) and of the LoRA baselines of issue 7.

use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use super::activation::Activation;
use super::attention::{Attention, AttentionConfig, ProjectionNames};
use super::linear::LinearConfig;
use super::norm::{LayerNorm, LayerNormConfig};
use crate::lora::{BlockLora, LoraLinear, LoraScheme, LoraTarget, Projection};

/// Configuration of a [`Mlp`].
#[derive(Debug, Clone)]
pub struct MlpConfig {
    /// Hidden width of `fc1`. No default upstream; [`ViTBlock`] passes `mlp_ratio · dim`. Default `3072` (ViT-B).
    pub hidden: usize,
    /// Activation between `fc1` and `fc2`. Default [`Activation::Gelu`] (exact, timm's `nn.GELU`).
    pub act: Activation,
    /// LoRA on the targets `fc1`, `fc2`; with it, a non-adapted layer is frozen. `None` (default): plain layers.
    pub lora: Option<BlockLora>,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self { hidden: 3072, act: Activation::Gelu, lora: None }
    }
}

/// Two-layer perceptron `fc2(act(fc1(x)))`, `(…, dim) → (…, dim)`.
#[derive(Debug, Clone)]
pub struct Mlp {
    fc1: Projection,
    act: Activation,
    fc2: Projection,
}

impl Mlp {
    /// Creates (or loads) `fc1` `(dim → hidden)` and `fc2` `(hidden → dim)`.
    pub fn new(vb: VarBuilder, dim: usize, cfg: MlpConfig) -> Result<Self> {
        let (linear, lora) = (LinearConfig::default(), cfg.lora.as_ref());
        Ok(Self {
            fc1: Projection::new(vb.pp("fc1"), dim, cfg.hidden, linear.clone(), LoraTarget::Fc1, lora)?,
            act: cfg.act,
            fc2: Projection::new(vb.pp("fc2"), cfg.hidden, dim, linear, LoraTarget::Fc2, lora)?,
        })
    }

    /// The LoRA-adapted layers, in the order `fc1`, `fc2`.
    pub fn adapters(&self) -> Vec<&LoraLinear> {
        [&self.fc1, &self.fc2].into_iter().filter_map(Projection::adapter).collect()
    }

    /// The LoRA-adapted layers, mutably (to switch which factors train).
    pub fn adapters_mut(&mut self) -> Vec<&mut LoraLinear> {
        [&mut self.fc1, &mut self.fc2].into_iter().filter_map(Projection::adapter_mut).collect()
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
    /// LoRA adapters on some of `q`, `kv`, `proj`, `fc1`, `fc2`, everything else of the block frozen. `None`
    /// (default): a plain block, every parameter trainable.
    pub lora: Option<BlockLora>,
}

impl Default for ViTBlockConfig {
    fn default() -> Self {
        Self { heads: 12, mlp_ratio: 4.0, qkv_bias: true, norm_eps: 1e-6, lora: None }
    }
}

/// `norm1` / `norm2`: a [`LayerNorm`] whose scale and shift (`weight`, `bias`) are detached in a LoRA block.
#[derive(Debug, Clone)]
struct BlockNorm {
    normalize: LayerNorm,
    weight: Tensor,
    bias: Tensor,
    frozen: bool,
}

impl BlockNorm {
    fn new(vb: VarBuilder, dim: usize, eps: f64, frozen: bool) -> Result<Self> {
        Ok(Self {
            normalize: LayerNorm::new(vb.clone(), dim, LayerNormConfig { eps, affine: false })?,
            weight: vb.get_with_hints(dim, "weight", Init::Const(1.0))?,
            bias: vb.get_with_hints(dim, "bias", Init::Const(0.0))?,
            frozen,
        })
    }
}

impl Module for BlockNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let (weight, bias) = if self.frozen {
            (self.weight.detach(), self.bias.detach())
        } else {
            (self.weight.clone(), self.bias.clone())
        };
        self.normalize.forward(xs)?.broadcast_mul(&weight)?.broadcast_add(&bias)
    }
}

/// Pre-norm encoder block over tokens `(b, n, dim)`.
#[derive(Debug, Clone)]
pub struct ViTBlock {
    norm1: BlockNorm,
    attn: Attention,
    norm2: BlockNorm,
    mlp: Mlp,
}

impl ViTBlock {
    /// Creates (or loads) `norm1`, `attn.{q,kv,proj}`, `norm2`, `mlp.{fc1,fc2}` for width `dim`.
    pub fn new(vb: VarBuilder, dim: usize, cfg: ViTBlockConfig) -> Result<Self> {
        if cfg.heads == 0 || dim % cfg.heads != 0 {
            candle_core::bail!("ViTBlock {}: {} heads must divide width {dim}", vb.prefix(), cfg.heads);
        }
        let frozen = cfg.lora.is_some();
        let attn = AttentionConfig {
            heads: cfg.heads,
            head_dim: dim / cfg.heads,
            cross_attention_dim: None,
            qkv_bias: cfg.qkv_bias,
            out_bias: true,
            names: ProjectionNames::QKvProj,
            lora: cfg.lora.clone(),
        };
        let mlp = MlpConfig { hidden: (dim as f64 * cfg.mlp_ratio) as usize, act: Activation::Gelu, lora: cfg.lora };
        Ok(Self {
            norm1: BlockNorm::new(vb.pp("norm1"), dim, cfg.norm_eps, frozen)?,
            attn: Attention::new(vb.pp("attn"), dim, attn)?,
            norm2: BlockNorm::new(vb.pp("norm2"), dim, cfg.norm_eps, frozen)?,
            mlp: Mlp::new(vb.pp("mlp"), dim, mlp)?,
        })
    }

    /// The block's LoRA layers, in the order `q`, `kv`, `proj`, `fc1`, `fc2` (those adapted).
    pub fn adapters(&self) -> Vec<&LoraLinear> {
        let mut out = self.attn.adapters();
        out.extend(self.mlp.adapters());
        out
    }

    /// Sets which adapter factors train in every LoRA layer of the block, as `scheme` prescribes
    /// ([`LoraLinear::apply_scheme`]). A block without LoRA is unchanged.
    pub fn apply_scheme(&mut self, scheme: LoraScheme) {
        for layer in self.attn.adapters_mut().into_iter().chain(self.mlp.adapters_mut()) {
            layer.apply_scheme(scheme);
        }
    }
}

impl Module for ViTBlock {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let xs = (self.attn.forward(&self.norm1.forward(xs)?, None, None)? + xs)?;
        self.mlp.forward(&self.norm2.forward(&xs)?)? + &xs
    }
}
