//! Multi-head scaled dot-product attention, self- and cross-, with a key padding mask (Vaswani et al.,
//! arXiv 1706.03762, §3.2: "Attention(Q, K, V) = softmax(QKᵀ/√d_k)V", heads concatenated and projected).
//!
//! Two naming schemes for the projections, picked by [`AttentionConfig::names`], so that upstream checkpoints load:
//! - [`ProjectionNames::Diffusers`]: `to_q`, `to_k`, `to_v`, `to_out.0` — diffusers' `Attention`
//!   (<https://github.com/huggingface/diffusers/blob/v0.30.0/src/diffusers/models/attention_processor.py>), used by the
//!   UNet and ControlNet;
//! - [`ProjectionNames::QKvProj`]: `q`, `kv` (keys then values, one linear), `proj` — the CineMA-style ViT naming
//!   of issue 7, whose projections LoRA can adapt ([`AttentionConfig::lora`]).
//!
//! The attention itself is [`crate::ops::attention`]: one fused op each way on CPU without a key mask, else candle
//! matmuls and cmr-nn's softmax (candle's fused `softmax_last_dim` records no gradient on CPU).

use candle_core::{bail, Module, Result, Tensor, D};
use candle_nn::VarBuilder;

use super::linear::{Linear, LinearConfig};
use crate::lora::{BlockLora, LoraLinear, LoraTarget, Projection};
use crate::ops;

/// How the projections of an [`Attention`] block are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ProjectionNames {
    /// `to_q`, `to_k`, `to_v`, `to_out.0` (diffusers).
    #[default]
    Diffusers,
    /// `q`, `kv`, `proj` (CineMA / timm-style ViT): `kv` maps the context to `2·heads·head_dim` channels, keys first.
    QKvProj,
}

/// Configuration of an [`Attention`] block.
#[derive(Debug, Clone)]
pub struct AttentionConfig {
    /// Number of heads. Default `8` (diffusers `Attention`).
    pub heads: usize,
    /// Channels per head; queries, keys and values have `heads · head_dim` channels. Default `64`.
    pub head_dim: usize,
    /// Width of the context that keys and values are computed from; `None` means the query width (self-attention,
    /// or cross-attention over a context as wide as the queries). Default `None`.
    pub cross_attention_dim: Option<usize>,
    /// Whether the query, key and value projections have a bias. Default `false` (diffusers `bias=False`;
    /// timm's ViT uses `qkv_bias=True`).
    pub qkv_bias: bool,
    /// Whether the output projection has a bias. Default `true`.
    pub out_bias: bool,
    /// Tensor naming scheme. Default [`ProjectionNames::Diffusers`].
    pub names: ProjectionNames,
    /// LoRA on the targets `q`, `kv`, `proj` (needs [`ProjectionNames::QKvProj`]); with it, the non-adapted
    /// projections are frozen. `None` (default): plain trainable projections.
    pub lora: Option<BlockLora>,
}

impl Default for AttentionConfig {
    fn default() -> Self {
        Self {
            heads: 8,
            head_dim: 64,
            cross_attention_dim: None,
            qkv_bias: false,
            out_bias: true,
            names: ProjectionNames::Diffusers,
            lora: None,
        }
    }
}

#[derive(Debug, Clone)]
enum KeyValue {
    Separate { k: Linear, v: Linear },
    Fused(Projection),
}

/// Multi-head attention `(b, n, query_dim) × context (b, m, cross_dim) → (b, n, query_dim)`.
#[derive(Debug, Clone)]
pub struct Attention {
    q: Projection,
    kv: KeyValue,
    out: Projection,
    heads: usize,
    head_dim: usize,
}

impl Attention {
    /// Creates (or loads) the projections for queries of width `query_dim`, named as `cfg.names` says.
    pub fn new(vb: VarBuilder, query_dim: usize, cfg: AttentionConfig) -> Result<Self> {
        if cfg.heads == 0 || cfg.head_dim == 0 {
            bail!("Attention {}: heads ({}) and head_dim ({}) must be positive", vb.prefix(), cfg.heads, cfg.head_dim);
        }
        let inner = cfg.heads * cfg.head_dim;
        let context_dim = cfg.cross_attention_dim.unwrap_or(query_dim);
        let qkv = LinearConfig { bias: cfg.qkv_bias };
        let out = LinearConfig { bias: cfg.out_bias };
        let lora = cfg.lora.as_ref();
        let (q, kv, out) = match cfg.names {
            ProjectionNames::Diffusers if lora.is_some() => {
                bail!("Attention {}: LoRA adapts q, kv, proj; use ProjectionNames::QKvProj", vb.prefix())
            }
            ProjectionNames::Diffusers => (
                Projection::Linear(Linear::new(vb.pp("to_q"), query_dim, inner, qkv.clone())?),
                KeyValue::Separate {
                    k: Linear::new(vb.pp("to_k"), context_dim, inner, qkv.clone())?,
                    v: Linear::new(vb.pp("to_v"), context_dim, inner, qkv)?,
                },
                Projection::Linear(Linear::new(vb.pp("to_out").pp("0"), inner, query_dim, out)?),
            ),
            ProjectionNames::QKvProj => (
                Projection::new(vb.pp("q"), query_dim, inner, qkv.clone(), LoraTarget::Q, lora)?,
                KeyValue::Fused(Projection::new(vb.pp("kv"), context_dim, 2 * inner, qkv, LoraTarget::Kv, lora)?),
                Projection::new(vb.pp("proj"), inner, query_dim, out, LoraTarget::Proj, lora)?,
            ),
        };
        Ok(Self { q, kv, out, heads: cfg.heads, head_dim: cfg.head_dim })
    }

    /// Attends from `xs` `(b, n, query_dim)` to `context` `(b, m, cross_dim)` (to `xs` itself when `None`).
    ///
    /// `key_mask` `(b, m)`, any dtype: nonzero marks a real key, zero a padding key that receives no attention
    /// (a tokenizer's attention mask). A row whose keys are all padding attends uniformly instead of producing NaN.
    pub fn forward(&self, xs: &Tensor, context: Option<&Tensor>, key_mask: Option<&Tensor>) -> Result<Tensor> {
        let context = context.unwrap_or(xs);
        let inner = self.heads * self.head_dim;
        let q = self.q.forward(xs)?; // (b, n, h·d)
        let (k, v) = match &self.kv {
            KeyValue::Separate { k, v } => (k.forward(context)?, v.forward(context)?), // (b, m, h·d) each
            KeyValue::Fused(kv) => {
                let kv = kv.forward(context)?; // (b, m, 2·h·d)
                (kv.narrow(D::Minus1, 0, inner)?, kv.narrow(D::Minus1, inner, inner)?)
            }
        };
        self.out.forward(&ops::attention(&q, &k, &v, self.heads, key_mask)?)
    }

    /// The LoRA-adapted projections, in the order `q`, `kv`, `proj`.
    pub fn adapters(&self) -> Vec<&LoraLinear> {
        let kv = match &self.kv {
            KeyValue::Fused(kv) => Some(kv),
            KeyValue::Separate { .. } => None,
        };
        [Some(&self.q), kv, Some(&self.out)].into_iter().flatten().filter_map(Projection::adapter).collect()
    }

    /// The LoRA-adapted projections, mutably (to switch which factors train).
    pub fn adapters_mut(&mut self) -> Vec<&mut LoraLinear> {
        let kv = match &mut self.kv {
            KeyValue::Fused(kv) => Some(kv),
            KeyValue::Separate { .. } => None,
        };
        [Some(&mut self.q), kv, Some(&mut self.out)].into_iter().flatten().filter_map(Projection::adapter_mut).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    fn attention(varmap: &VarMap) -> Result<Attention> {
        let vb = VarBuilder::from_varmap(varmap, DType::F32, &Device::Cpu);
        Attention::new(vb, 4, AttentionConfig { heads: 2, head_dim: 2, ..Default::default() })
    }

    #[test]
    fn a_fully_masked_row_attends_uniformly() -> Result<()> {
        let attn = attention(&VarMap::new())?;
        let x = Tensor::arange(0f32, 8.0, &Device::Cpu)?.reshape((1, 2, 4))?;
        let context = (Tensor::arange(0f32, 12.0, &Device::Cpu)?.reshape((1, 3, 4))? / 7.0)?;
        let none = Tensor::zeros((1, 3), DType::U8, &Device::Cpu)?;
        let masked = attn.forward(&x, Some(&context), Some(&none))?;
        // uniform weights: the output is the projection of the mean value, the same for every query
        let rows = masked.squeeze(0)?.to_vec2::<f32>()?;
        assert!(rows.iter().flatten().all(|v| v.is_finite()));
        assert_eq!(rows[0], rows[1]);
        Ok(())
    }

    #[test]
    fn a_mask_of_the_wrong_shape_is_an_error() -> Result<()> {
        let attn = attention(&VarMap::new())?;
        let x = Tensor::zeros((2, 3, 4), DType::F32, &Device::Cpu)?;
        let mask = Tensor::ones((2, 5), DType::U8, &Device::Cpu)?;
        let err = attn.forward(&x, None, Some(&mask)).expect_err("3 keys, mask of 5");
        assert!(err.to_string().contains("key mask must be (batch 2, keys 3)"), "{err}");
        Ok(())
    }
}
