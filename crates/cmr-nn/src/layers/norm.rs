//! Group normalisation (Wu & He, arXiv 1803.08494) and layer normalisation (Ba et al., arXiv 1607.06450), written
//! from differentiable primitives: `(x − mean) / √(var + ε)`, with the biased variance, then an optional per-channel
//! affine map — as `torch.nn.GroupNorm` / `torch.nn.LayerNorm`, tensors `weight` and `bias`.
//!
//! Candle's fused `candle_nn::ops::layer_norm` (used by `candle_nn::LayerNorm` on contiguous input) records no
//! gradient on CPU in candle 0.11.1, so a model built on it silently stops training its norms and everything
//! below them; `tests/suite/candle_gaps.rs` measures it. An affine GroupNorm over `(b, c, h, w, …)` and an affine
//! LayerNorm run as one fused op with a tested gradient, [`crate::ops::group_norm`] and [`crate::ops::layer_norm`].

use candle_core::{bail, Module, Result, Tensor, D};
use candle_nn::{Init, VarBuilder};

/// Configuration of a [`GroupNorm`] layer.
#[derive(Debug, Clone)]
pub struct GroupNormConfig {
    /// Added to the variance before the square root. Default `1e-5` (torch; diffusers blocks pass `1e-6`).
    pub eps: f64,
    /// Whether to apply a learned per-channel scale `weight` (init 1) and shift `bias` (init 0). Default `true`.
    pub affine: bool,
}

impl Default for GroupNormConfig {
    fn default() -> Self {
        Self { eps: 1e-5, affine: true }
    }
}

/// Normalises `(b, c, …)` over each group of `c / groups` channels and all trailing dimensions.
#[derive(Debug, Clone)]
pub struct GroupNorm {
    affine: Option<(Tensor, Tensor)>,
    num_groups: usize,
    num_channels: usize,
    eps: f64,
}

impl GroupNorm {
    /// Creates (or loads) `weight` and `bias` `(num_channels,)` when affine.
    pub fn new(vb: VarBuilder, num_groups: usize, num_channels: usize, cfg: GroupNormConfig) -> Result<Self> {
        if num_groups == 0 || num_channels % num_groups != 0 {
            bail!("GroupNorm {}: {num_groups} groups must divide {num_channels} channels", vb.prefix());
        }
        let affine = if cfg.affine { Some(affine_params(&vb, num_channels)?) } else { None };
        Ok(Self { affine, num_groups, num_channels, eps: cfg.eps })
    }
}

impl GroupNorm {
    /// The normalisation followed by SiLU (`x·σ(x)`), the pair of every ResNet block: one fused op for an affine
    /// norm of `(b, c, h, …)` ([`crate::ops::group_norm_silu`]).
    pub fn forward_silu(&self, xs: &Tensor) -> Result<Tensor> {
        match &self.affine {
            Some((weight, bias)) if xs.rank() > 2 && xs.dim(1)? == self.num_channels => {
                crate::ops::group_norm_silu(xs, self.num_groups, weight, bias, self.eps)
            }
            _ => crate::ops::silu(&self.forward(xs)?),
        }
    }
}

impl Module for GroupNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        let dims = xs.dims().to_vec();
        if dims.len() < 2 || dims[1] != self.num_channels {
            bail!("GroupNorm: expected (b, {}, …), got {:?}", self.num_channels, xs.shape());
        }
        if let (Some((weight, bias)), true) = (&self.affine, dims.len() > 2) {
            return crate::ops::group_norm(xs, self.num_groups, weight, bias, self.eps);
        }
        let b = dims[0];
        let normed =
            crate::ops::normalize_last(&xs.reshape((b, self.num_groups, ()))?, self.eps)?.reshape(dims.as_slice())?;
        match &self.affine {
            Some((weight, bias)) => {
                // (c,) → (1, c, 1, …, 1) to broadcast over batch and trailing dimensions.
                let mut shape = vec![1; dims.len()];
                shape[1] = self.num_channels;
                normed.broadcast_mul(&weight.reshape(shape.as_slice())?)?.broadcast_add(&bias.reshape(shape)?)
            }
            None => Ok(normed),
        }
    }
}

/// Configuration of a [`LayerNorm`] layer.
#[derive(Debug, Clone)]
pub struct LayerNormConfig {
    /// Added to the variance before the square root. Default `1e-5` (torch; timm's ViT uses `1e-6`).
    pub eps: f64,
    /// Whether to apply a learned elementwise scale `weight` (init 1) and shift `bias` (init 0)
    /// (torch `elementwise_affine`). Default `true`.
    pub affine: bool,
}

impl Default for LayerNormConfig {
    fn default() -> Self {
        Self { eps: 1e-5, affine: true }
    }
}

/// Normalises `(…, size)` over its last dimension.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    affine: Option<(Tensor, Tensor)>,
    size: usize,
    eps: f64,
}

impl LayerNorm {
    /// Creates (or loads) `weight` and `bias` `(size,)` when affine.
    pub fn new(vb: VarBuilder, size: usize, cfg: LayerNormConfig) -> Result<Self> {
        let affine = if cfg.affine { Some(affine_params(&vb, size)?) } else { None };
        Ok(Self { affine, size, eps: cfg.eps })
    }
}

impl Module for LayerNorm {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if xs.dim(D::Minus1)? != self.size {
            bail!("LayerNorm: expected (…, {}), got {:?}", self.size, xs.shape());
        }
        match &self.affine {
            Some((weight, bias)) => crate::ops::layer_norm(xs, weight, bias, self.eps),
            None => crate::ops::normalize_last(xs, self.eps),
        }
    }
}

fn affine_params(vb: &VarBuilder, size: usize) -> Result<(Tensor, Tensor)> {
    Ok((vb.get_with_hints(size, "weight", Init::Const(1.0))?, vb.get_with_hints(size, "bias", Init::Const(0.0))?))
}
