//! ControlNet (Zhang et al., arXiv 2302.05543, §3.1–3.2): "a trainable copy" of the UNet's encoder and mid block,
//! fed the noisy sample plus an embedded condition, whose outputs reach the frozen UNet through "zero convolutions"
//! — 1×1 convolutions with weight and bias initialised to zeros — so that at the start of training "harmful noise
//! [cannot] influence the hidden states". Here the condition is the segmentation mask, one-hot, 4 classes × ED/ES =
//! 8 channels. Tensor names follow diffusers' `ControlNetModel` (v0.42.1, `controlnets/controlnet.py`):
//! `controlnet_cond_embedding.{conv_in, blocks.{k}, conv_out}`, `controlnet_down_blocks.{k}`,
//! `controlnet_mid_block`, and the copied `conv_in`, `time_embedding`, `down_blocks`, `mid_block`.

use candle_core::{bail, Module, Result, Tensor};
use candle_nn::{Init, VarBuilder, VarMap};
use cmr_nn::layers::{silu, Conv2d, Conv2dConfig};
use serde::{Deserialize, Serialize};

use super::blocks::TextContext;
use super::unet::{padded, ControlResiduals, Encoder, UNet2dConditionConfig};

/// Configuration of a [`ControlNetModel`], serialised as its `config.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ControlNetConfig {
    /// The base UNet's configuration; the trainable copy has its encoder and mid block.
    pub unet: UNet2dConditionConfig,
    /// Channels of the condition image. Default `8` (one-hot mask: 4 classes × ED/ES).
    pub conditioning_channels: usize,
    /// Widths of the condition encoder's stages. Default `[16, 32]`.
    pub conditioning_embedding_out_channels: Vec<usize>,
    /// Stride of each stage change of the condition encoder: `1` keeps the pixel-space resolution of this project's
    /// UNet, `2` is diffusers' choice for latent UNets (8× smaller than the image). Default `1`.
    pub conditioning_embedding_stride: usize,
}

impl Default for ControlNetConfig {
    fn default() -> Self {
        Self {
            unet: UNet2dConditionConfig::default(),
            conditioning_channels: 8,
            conditioning_embedding_out_channels: vec![16, 32],
            conditioning_embedding_stride: 1,
        }
    }
}

/// Prefixes of the tensors that the ControlNet copies from the base UNet at initialisation.
pub const COPIED_FROM_UNET: [&str; 4] = ["conv_in.", "time_embedding.", "down_blocks.", "mid_block."];

/// The condition encoder (diffusers' `ControlNetConditioningEmbedding`): `conv_in`, then per stage change a
/// same-width and a widening (optionally strided) 3×3 convolution, SiLU between, and a zero-initialised `conv_out`
/// to the UNet's first width.
#[derive(Debug, Clone)]
struct ConditioningEmbedding {
    conv_in: Conv2d,
    blocks: Vec<Conv2d>,
    conv_out: Conv2d,
}

impl ConditioningEmbedding {
    fn new(vb: VarBuilder, cfg: &ControlNetConfig) -> Result<Self> {
        let widths = &cfg.conditioning_embedding_out_channels;
        if widths.is_empty() || widths.contains(&0) {
            bail!("ControlNet config: conditioning_embedding_out_channels must be non-empty and positive");
        }
        if !matches!(cfg.conditioning_embedding_stride, 1 | 2) {
            bail!("ControlNet config: conditioning_embedding_stride must be 1 or 2");
        }
        let conv_in = Conv2d::new(vb.pp("conv_in"), cfg.conditioning_channels, widths[0], 3, padded())?;
        let mut blocks = Vec::new();
        for (k, pair) in widths.windows(2).enumerate() {
            let (from, to) = (pair[0], pair[1]);
            blocks.push(Conv2d::new(vb.pp("blocks").pp(2 * k), from, from, 3, padded())?);
            let strided = Conv2dConfig { stride: cfg.conditioning_embedding_stride, ..padded() };
            blocks.push(Conv2d::new(vb.pp("blocks").pp(2 * k + 1), from, to, 3, strided)?);
        }
        let zero = Conv2dConfig { init: Some(Init::Const(0.0)), ..padded() };
        let conv_out =
            Conv2d::new(vb.pp("conv_out"), widths[widths.len() - 1], cfg.unet.block_out_channels[0], 3, zero)?;
        Ok(Self { conv_in, blocks, conv_out })
    }
}

impl Module for ConditioningEmbedding {
    fn forward(&self, cond: &Tensor) -> Result<Tensor> {
        let mut xs = silu(&self.conv_in.forward(cond)?)?;
        for block in &self.blocks {
            xs = silu(&block.forward(&xs)?)?;
        }
        self.conv_out.forward(&xs)
    }
}

/// Mask-conditioned ControlNet: `(sample, t, text, condition) →` [`ControlResiduals`] for the base UNet.
#[derive(Debug, Clone)]
pub struct ControlNetModel {
    cond_embedding: ConditioningEmbedding,
    encoder: Encoder,
    down_zero_convs: Vec<Conv2d>,
    mid_zero_conv: Conv2d,
    config: ControlNetConfig,
}

impl ControlNetModel {
    /// Creates (training) or loads (sampling) the ControlNet. A fresh one starts with the zero convolutions at zero;
    /// call [`copy_encoder_from_unet`] to start its encoder from the base UNet's weights, as the paper does.
    pub fn new(vb: VarBuilder, cfg: ControlNetConfig) -> Result<Self> {
        let encoder = Encoder::new(&vb, &cfg.unet)?;
        let cond_embedding = ConditioningEmbedding::new(vb.pp("controlnet_cond_embedding"), &cfg)?;
        let zero = Conv2dConfig { init: Some(Init::Const(0.0)), ..Default::default() };
        let down_zero_convs = Encoder::skip_widths(&cfg.unet)
            .into_iter()
            .enumerate()
            .map(|(k, width)| Conv2d::new(vb.pp("controlnet_down_blocks").pp(k), width, width, 1, zero.clone()))
            .collect::<Result<Vec<_>>>()?;
        let mid_width = cfg.unet.block_out_channels[cfg.unet.block_out_channels.len() - 1];
        let mid_zero_conv = Conv2d::new(vb.pp("controlnet_mid_block"), mid_width, mid_width, 1, zero)?;
        Ok(Self { cond_embedding, encoder, down_zero_convs, mid_zero_conv, config: cfg })
    }

    /// The configuration the model was built from.
    pub fn config(&self) -> &ControlNetConfig {
        &self.config
    }

    /// The residuals for the base UNet, scaled by `conditioning_scale` (1 = as trained, 0 = no control).
    /// `condition` is `(b, conditioning_channels, h', w')` with `h'·s^k = h` for the encoder's `k` stage changes of
    /// stride `s`.
    pub fn forward(
        &self,
        sample: &Tensor,
        timesteps: &Tensor,
        text: Option<TextContext>,
        condition: &Tensor,
        conditioning_scale: f64,
    ) -> Result<ControlResiduals> {
        // 1. condition → first feature map
        let hint = self.cond_embedding.forward(condition)?;
        let (sample_hw, hint_hw) = (&sample.dims()[2..], &hint.dims()[2..]);
        if sample_hw != hint_hw {
            bail!("ControlNet: embedded condition is {hint_hw:?} but the sample is {sample_hw:?}; check the mask size");
        }
        // 2. the trainable copy of the encoder, with the hint added after conv_in
        let encoded = self.encoder.forward(sample, timesteps, text, Some(&hint))?;
        // 3. zero convolutions, scaled
        let down = encoded
            .skips
            .iter()
            .zip(&self.down_zero_convs)
            .map(|(state, conv)| conv.forward(state)? * conditioning_scale)
            .collect::<Result<Vec<_>>>()?;
        let mid = (self.mid_zero_conv.forward(&encoded.mid)? * conditioning_scale)?;
        Ok(ControlResiduals { down, mid })
    }
}

/// Copies the base UNet's `conv_in`, `time_embedding`, `down_blocks` and `mid_block` into a ControlNet's variables
/// (same names, same shapes); returns how many tensors were copied. Fails on a shape mismatch or when a tensor the
/// copy needs is missing in either map.
pub fn copy_encoder_from_unet(controlnet: &VarMap, unet: &VarMap) -> Result<usize> {
    let source = unet.data().lock().expect("VarMap lock poisoned");
    let target = controlnet.data().lock().expect("VarMap lock poisoned");
    let mut copied = 0;
    for (name, var) in target.iter().filter(|(name, _)| COPIED_FROM_UNET.iter().any(|p| name.starts_with(p))) {
        let Some(from) = source.get(name) else {
            bail!("ControlNet init: the base UNet has no tensor {name}");
        };
        if from.shape() != var.shape() {
            bail!("ControlNet init: {name} is {:?} in the UNet but {:?} in the ControlNet", from.shape(), var.shape());
        }
        var.set(from.as_tensor())?;
        copied += 1;
    }
    Ok(copied)
}
