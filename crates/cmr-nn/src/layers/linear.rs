//! Fully connected layer `y = x·Wᵀ + b`, initialised and named as `torch.nn.Linear` (`weight` `(out, in)`,
//! `bias` `(out,)`), so diffusers and timm checkpoints load unchanged.
//!
//! Upstream: <https://github.com/pytorch/pytorch/blob/v2.4.0/torch/nn/modules/linear.py> (`reset_parameters`).

use candle_core::{Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

/// Configuration of a [`Linear`] layer.
#[derive(Debug, Clone)]
pub struct LinearConfig {
    /// Whether the layer adds a learned bias `b` (tensor `bias`). Default `true`, as `torch.nn.Linear`.
    pub bias: bool,
}

impl Default for LinearConfig {
    fn default() -> Self {
        Self { bias: true }
    }
}

/// A fully connected layer over the last dimension of its input.
#[derive(Debug, Clone)]
pub struct Linear {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Linear {
    /// Creates (or loads) `weight` `(out_features, in_features)` and, if configured, `bias` `(out_features,)`.
    /// Fresh values follow torch: Kaiming-uniform with `a = √5`, i.e. `U(−1/√in, 1/√in)` for both.
    pub fn new(vb: VarBuilder, in_features: usize, out_features: usize, cfg: LinearConfig) -> Result<Self> {
        let bound = 1.0 / (in_features as f64).sqrt();
        let init = Init::Uniform { lo: -bound, up: bound };
        let weight = vb.get_with_hints((out_features, in_features), "weight", init)?;
        let bias = if cfg.bias { Some(vb.get_with_hints(out_features, "bias", init)?) } else { None };
        Ok(Self { weight, bias })
    }

    /// The weight `(out_features, in_features)`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `(out_features,)`, if the layer has one.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }
}

impl Module for Linear {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        linear(xs, &self.weight, self.bias.as_ref())
    }
}

/// `xs · wᵀ + bias` over any leading dimensions: `(…, in) × (out, in) → (…, out)`. Shared by [`Linear`] and the LoRA
/// layers, which apply it to detached or adapter weights.
pub fn linear(xs: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> Result<Tensor> {
    // (…, in) → (rows, in): one plain matmul instead of a broadcast one, which candle runs much slower.
    let dims = xs.dims();
    let (lead, in_features) = dims.split_at(dims.len().saturating_sub(1));
    let rows: usize = lead.iter().product();
    let xs = xs.reshape((rows, in_features.iter().product::<usize>()))?;
    let ys = match bias {
        Some(bias) => crate::ops::linear_biased(&xs, weight, bias)?,
        None => xs.matmul(&weight.t()?)?,
    }; // (rows, out)
    let mut out_dims = lead.to_vec();
    out_dims.push(weight.dim(0)?);
    ys.reshape(out_dims) // (…, out)
}
