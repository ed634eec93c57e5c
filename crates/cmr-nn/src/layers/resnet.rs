//! The residual block of the diffusion UNet and ControlNet, as diffusers' `ResnetBlock2D` with
//! `time_embedding_norm="default"` (<https://github.com/huggingface/diffusers/blob/v0.30.0/src/diffusers/models/resnet.py>):
//! two GroupNorm → SiLU → 3×3 conv stages, the projected time embedding added between them (Ho et al.,
//! arXiv 2006.11239, Appendix B), and a 1×1 `conv_shortcut` when the channel count changes (He et al.,
//! arXiv 1512.03385). Tensor names: `norm1`, `conv1`, `time_emb_proj`, `norm2`, `conv2`, `conv_shortcut`.
//!
//! Dropout (diffusers default `0.0`) is left out: the blocks of this project train without it.

use candle_core::{bail, Module, Result, Tensor};
use candle_nn::VarBuilder;

use super::activation::silu;
use super::conv::{Conv2d, Conv2dConfig};
use super::linear::{Linear, LinearConfig};
use super::norm::{GroupNorm, GroupNormConfig};

/// Configuration of a [`ResnetBlock2d`]; defaults are diffusers'.
#[derive(Debug, Clone)]
pub struct ResnetBlock2dConfig {
    /// Groups of `norm1`. Default `32`.
    pub groups: usize,
    /// Groups of `norm2`; `None` means `groups`. Default `None`.
    pub groups_out: Option<usize>,
    /// Epsilon of both norms. Default `1e-6`.
    pub eps: f64,
    /// Width of the time embedding projected by `time_emb_proj`; `None` means the block takes no time embedding.
    /// Default `Some(512)`.
    pub temb_channels: Option<usize>,
    /// The output is `(shortcut + residual) / output_scale_factor`. Default `1.0`.
    pub output_scale_factor: f64,
    /// Whether the shortcut is a 1×1 convolution; `None` means "when in and out channels differ". Default `None`.
    pub use_in_shortcut: Option<bool>,
}

impl Default for ResnetBlock2dConfig {
    fn default() -> Self {
        Self {
            groups: 32,
            groups_out: None,
            eps: 1e-6,
            temb_channels: Some(512),
            output_scale_factor: 1.0,
            use_in_shortcut: None,
        }
    }
}

/// Residual block `(b, c_in, h, w)` (+ time embedding `(b, temb_channels)`) `→ (b, c_out, h, w)`.
#[derive(Debug, Clone)]
pub struct ResnetBlock2d {
    norm1: GroupNorm,
    conv1: Conv2d,
    time_emb_proj: Option<Linear>,
    norm2: GroupNorm,
    conv2: Conv2d,
    conv_shortcut: Option<Conv2d>,
    output_scale_factor: f64,
}

impl ResnetBlock2d {
    /// Creates (or loads) the block's layers under diffusers' names.
    pub fn new(vb: VarBuilder, in_channels: usize, out_channels: usize, cfg: ResnetBlock2dConfig) -> Result<Self> {
        let norm_cfg = GroupNormConfig { eps: cfg.eps, affine: true };
        let conv3 = Conv2dConfig { padding: 1, ..Default::default() };
        let time_emb_proj = match cfg.temb_channels {
            Some(t) => Some(Linear::new(vb.pp("time_emb_proj"), t, out_channels, LinearConfig::default())?),
            None => None,
        };
        let conv_shortcut = if cfg.use_in_shortcut.unwrap_or(in_channels != out_channels) {
            Some(Conv2d::new(vb.pp("conv_shortcut"), in_channels, out_channels, 1, Conv2dConfig::default())?)
        } else if in_channels != out_channels {
            bail!("ResnetBlock2d {}: {in_channels} → {out_channels} channels needs the conv shortcut", vb.prefix());
        } else {
            None
        };
        Ok(Self {
            norm1: GroupNorm::new(vb.pp("norm1"), cfg.groups, in_channels, norm_cfg.clone())?,
            conv1: Conv2d::new(vb.pp("conv1"), in_channels, out_channels, 3, conv3.clone())?,
            time_emb_proj,
            norm2: GroupNorm::new(vb.pp("norm2"), cfg.groups_out.unwrap_or(cfg.groups), out_channels, norm_cfg)?,
            conv2: Conv2d::new(vb.pp("conv2"), out_channels, out_channels, 3, conv3)?,
            conv_shortcut,
            output_scale_factor: cfg.output_scale_factor,
        })
    }

    /// Applies the block; `temb` `(b, temb_channels)` is required exactly when the block was built with
    /// `temb_channels`.
    pub fn forward(&self, xs: &Tensor, temb: Option<&Tensor>) -> Result<Tensor> {
        // 1. first stage, with the time embedding as one more bias per channel and sample: (b, c_out, h, w)
        let h = match (&self.time_emb_proj, temb) {
            (Some(proj), Some(temb)) => {
                let t = proj.forward(&silu(temb)?)?; // (b, c_out)
                self.conv1.forward_with_image_bias(&self.norm1.forward_silu(xs)?, &t)?
            }
            (None, None) => self.conv1.forward(&self.norm1.forward_silu(xs)?)?,
            (Some(_), None) => bail!("ResnetBlock2d: built with temb_channels but called without a time embedding"),
            (None, Some(_)) => bail!("ResnetBlock2d: called with a time embedding but built without temb_channels"),
        };
        // 2. second stage
        let h = self.conv2.forward(&self.norm2.forward_silu(&h)?)?;
        // 3. shortcut
        let shortcut = match &self.conv_shortcut {
            Some(conv) => conv.forward(xs)?,
            None => xs.clone(),
        };
        let sum = (shortcut + h)?;
        if self.output_scale_factor == 1.0 {
            Ok(sum)
        } else {
            sum / self.output_scale_factor
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn a_missing_or_unexpected_time_embedding_is_an_error() -> Result<()> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let with_temb = ResnetBlock2d::new(
            vb.pp("a"),
            4,
            4,
            ResnetBlock2dConfig { groups: 2, temb_channels: Some(3), ..Default::default() },
        )?;
        let without = ResnetBlock2d::new(
            vb.pp("b"),
            4,
            4,
            ResnetBlock2dConfig { groups: 2, temb_channels: None, ..Default::default() },
        )?;
        let x = Tensor::zeros((1, 4, 2, 2), DType::F32, &Device::Cpu)?;
        let temb = Tensor::zeros((1, 3), DType::F32, &Device::Cpu)?;
        assert!(with_temb.forward(&x, None).is_err_and(|e| e.to_string().contains("called without a time embedding")));
        assert!(without.forward(&x, Some(&temb)).is_err_and(|e| e.to_string().contains("built without temb_channels")));
        Ok(())
    }

    #[test]
    fn changing_channels_without_the_shortcut_is_an_error() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let cfg = ResnetBlock2dConfig { groups: 2, use_in_shortcut: Some(false), ..Default::default() };
        let err = ResnetBlock2d::new(vb.pp("down.0"), 4, 6, cfg).expect_err("4 → 6 needs a shortcut");
        assert!(err.to_string().contains("ResnetBlock2d down.0: 4 → 6 channels needs the conv shortcut"), "{err}");
    }
}
