//! 2D convolutions of the UNet and ControlNet: [`Conv2d`] (stride, padding, groups; `torch.nn.Conv2d` names and
//! initialisation), [`Downsample2d`] (stride-2 convolution) and [`Upsample2d`] (nearest ×2 then convolution), as
//! diffusers' `Downsample2D(use_conv=True)` / `Upsample2D(use_conv=True)`
//! (<https://github.com/huggingface/diffusers/blob/v0.30.0/src/diffusers/models/downsampling.py>,
//! `upsampling.py`). Nearest-neighbour upsampling replaces a transposed convolution, which "can easily have uneven
//! overlap" and leave checkerboard artifacts (Odena et al., Distill 2016, doi:10.23915/distill.00003).
//!
//! Every convolution goes through [`crate::ops::conv2d`], so a faster kernel there speeds up every layer here.

use candle_core::{bail, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder};

use crate::ops::{self, ConvParams};

/// Configuration of a [`Conv2d`] layer.
#[derive(Debug, Clone)]
pub struct Conv2dConfig {
    /// Step between kernel applications, both axes. Default `1`.
    pub stride: usize,
    /// Zero padding on every side. Default `0`.
    pub padding: usize,
    /// Channel groups: input and output channels are split into `groups` independent convolutions. Default `1`.
    pub groups: usize,
    /// Whether the layer adds a learned per-channel bias (tensor `bias`). Default `true`.
    pub bias: bool,
    /// Initialisation of fresh weight and bias; `None` means torch's `U(−1/√fan_in, 1/√fan_in)`. ControlNet's zero
    /// convolutions pass `Some(Init::Const(0.0))`. Ignored when the tensors are loaded. Default `None`.
    pub init: Option<Init>,
}

impl Default for Conv2dConfig {
    fn default() -> Self {
        Self { stride: 1, padding: 0, groups: 1, bias: true, init: None }
    }
}

/// A square-kernel 2D convolution `(b, c_in, h, w) → (b, c_out, h', w')`.
#[derive(Debug, Clone)]
pub struct Conv2d {
    weight: Tensor,
    bias: Option<Tensor>,
    params: ConvParams,
}

impl Conv2d {
    /// Creates (or loads) `weight` `(out_channels, in_channels / groups, kernel, kernel)` and, if configured, `bias`
    /// `(out_channels,)`. Fresh values follow torch: `U(−1/√fan_in, 1/√fan_in)` with
    /// `fan_in = in_channels / groups · kernel²`.
    pub fn new(
        vb: VarBuilder,
        in_channels: usize,
        out_channels: usize,
        kernel: usize,
        cfg: Conv2dConfig,
    ) -> Result<Self> {
        let Conv2dConfig { stride, padding, groups, bias, init } = cfg;
        if groups == 0 || in_channels % groups != 0 || out_channels % groups != 0 {
            bail!(
                "Conv2d {}: groups {groups} must divide in_channels {in_channels} and out_channels {out_channels}",
                vb.prefix()
            );
        }
        if stride == 0 || kernel == 0 {
            bail!("Conv2d {}: stride ({stride}) and kernel ({kernel}) must be positive", vb.prefix());
        }
        let bound = 1.0 / ((in_channels / groups * kernel * kernel) as f64).sqrt();
        let init = init.unwrap_or(Init::Uniform { lo: -bound, up: bound });
        let weight = vb.get_with_hints((out_channels, in_channels / groups, kernel, kernel), "weight", init)?;
        let bias = if bias { Some(vb.get_with_hints(out_channels, "bias", init)?) } else { None };
        Ok(Self { weight, bias, params: ConvParams { stride, padding, groups } })
    }
}

impl Conv2d {
    /// The convolution plus its bias and `extra` `(b, c_out)`, one more bias per image and output channel (a ResNet
    /// block's projected time embedding), all in one op ([`ops::conv2d_biased`]).
    pub fn forward_with_image_bias(&self, xs: &Tensor, extra: &Tensor) -> Result<Tensor> {
        let bias = match &self.bias {
            Some(bias) => extra.broadcast_add(bias)?,
            None => extra.clone(),
        };
        ops::conv2d_biased(xs, &self.weight, &bias, self.params)
    }
}

impl Module for Conv2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        match &self.bias {
            Some(bias) => ops::conv2d_biased(xs, &self.weight, bias, self.params),
            None => ops::conv2d(xs, &self.weight, self.params),
        }
    }
}

/// Configuration of a [`Downsample2d`] block.
#[derive(Debug, Clone)]
pub struct Downsample2dConfig {
    /// Kernel size of the stride-2 convolution. Default `3`.
    pub kernel: usize,
    /// Zero padding on every side; `0` pads one row and column at the bottom and right instead, as diffusers does
    /// for `downsample_padding=0`. Default `1` (the diffusers UNet's `downsample_padding`).
    pub padding: usize,
}

impl Default for Downsample2dConfig {
    fn default() -> Self {
        Self { kernel: 3, padding: 1 }
    }
}

/// Halves the resolution with a stride-2 convolution (tensor `conv`): `(b, c_in, h, w) → (b, c_out, h/2, w/2)`.
#[derive(Debug, Clone)]
pub struct Downsample2d {
    conv: Conv2d,
    asymmetric_pad: bool,
}

impl Downsample2d {
    /// Creates the block's convolution under `vb.pp("conv")`.
    pub fn new(vb: VarBuilder, in_channels: usize, out_channels: usize, cfg: Downsample2dConfig) -> Result<Self> {
        let conv_cfg = Conv2dConfig { stride: 2, padding: cfg.padding, ..Default::default() };
        let conv = Conv2d::new(vb.pp("conv"), in_channels, out_channels, cfg.kernel, conv_cfg)?;
        Ok(Self { conv, asymmetric_pad: cfg.padding == 0 })
    }
}

impl Module for Downsample2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if self.asymmetric_pad {
            // diffusers: F.pad(x, (0, 1, 0, 1)) — right and bottom only.
            let padded = xs.pad_with_zeros(3, 0, 1)?.pad_with_zeros(2, 0, 1)?; // (b, c, h+1, w+1)
            self.conv.forward(&padded)
        } else {
            self.conv.forward(xs)
        }
    }
}

/// Configuration of an [`Upsample2d`] block.
#[derive(Debug, Clone)]
pub struct Upsample2dConfig {
    /// Kernel size of the convolution after upsampling. Default `3`.
    pub kernel: usize,
    /// Zero padding of that convolution. Default `1` (size-preserving for the default kernel).
    pub padding: usize,
}

impl Default for Upsample2dConfig {
    fn default() -> Self {
        Self { kernel: 3, padding: 1 }
    }
}

/// Doubles the resolution by nearest-neighbour upsampling, then convolves (tensor `conv`):
/// `(b, c_in, h, w) → (b, c_out, 2h, 2w)`.
#[derive(Debug, Clone)]
pub struct Upsample2d {
    conv: Conv2d,
}

impl Upsample2d {
    /// Creates the block's convolution under `vb.pp("conv")`.
    pub fn new(vb: VarBuilder, in_channels: usize, out_channels: usize, cfg: Upsample2dConfig) -> Result<Self> {
        let conv_cfg = Conv2dConfig { padding: cfg.padding, ..Default::default() };
        Ok(Self { conv: Conv2d::new(vb.pp("conv"), in_channels, out_channels, cfg.kernel, conv_cfg)? })
    }
}

impl Module for Upsample2d {
    fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        self.conv.forward(&upsample_nearest_2x(xs)?)
    }
}

/// Nearest-neighbour ×2 upsampling `(b, c, h, w) → (b, c, 2h, 2w)` (torch `F.interpolate(scale_factor=2,
/// mode="nearest")`), [`ops::upsample_nearest_2x`]: its backward is the sum over each 2×2 block.
///
/// Candle's own `upsample_nearest2d` backward *assigns* its gradient instead of adding it (candle-core 0.11.1,
/// `backprop.rs`, `Op::UpsampleNearest2D`: `*sum_grad = conv_sum`), so a tensor that also feeds another branch
/// loses that branch's gradient; `tests/suite/candle_gaps.rs` measures it.
pub fn upsample_nearest_2x(xs: &Tensor) -> Result<Tensor> {
    ops::upsample_nearest_2x(xs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};
    use candle_nn::VarMap;

    #[test]
    fn groups_that_do_not_divide_the_channels_are_an_error_naming_the_layer() {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let err = Conv2d::new(vb.pp("conv_in"), 6, 4, 3, Conv2dConfig { groups: 4, ..Default::default() })
            .expect_err("4 groups do not divide 6 channels");
        assert!(err.to_string().contains("Conv2d conv_in: groups 4 must divide in_channels 6"), "{err}");
    }

    #[test]
    fn a_zero_convolution_starts_at_zero() -> Result<()> {
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
        let cfg = Conv2dConfig { init: Some(Init::Const(0.0)), ..Default::default() };
        let conv = Conv2d::new(vb, 3, 2, 1, cfg)?;
        let y = conv.forward(&Tensor::ones((1, 3, 2, 2), DType::F32, &Device::Cpu)?)?;
        assert_eq!(y.abs()?.sum_all()?.to_scalar::<f32>()?, 0.0);
        assert_eq!(varmap.all_vars().len(), 2);
        Ok(())
    }

    #[test]
    fn nearest_upsampling_repeats_each_pixel_over_a_two_by_two_block() -> Result<()> {
        let x = Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &Device::Cpu)?;
        let y = upsample_nearest_2x(&x)?.squeeze(0)?.squeeze(0)?.to_vec2::<f32>()?;
        let expected = [[1., 1., 2., 2.], [1., 1., 2., 2.], [3., 3., 4., 4.], [3., 3., 4., 4.]];
        assert_eq!(y, expected);
        Ok(())
    }
}
