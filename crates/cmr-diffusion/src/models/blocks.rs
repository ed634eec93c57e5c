//! The UNet's stages, named as diffusers' `unet_2d_blocks.py` (v0.42.1): a down block (`resnets.{j}`, optional
//! `attentions.{j}`, `downsamplers.0`), the cross-attention mid block (`resnets.0`, `attentions.0`, `resnets.1`) and
//! an up block (`resnets.{j}` over the concatenated skip connection, optional `attentions.{j}`, `upsamplers.0`).
//! One down-block type serves the UNet and the ControlNet's trainable copy, so their weights load into each other.

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use cmr_nn::layers::{
    BasicTransformerBlockConfig, Downsample2d, Downsample2dConfig, ResnetBlock2d, ResnetBlock2dConfig,
    Transformer2dModel, Transformer2dModelConfig, Upsample2d, Upsample2dConfig,
};

/// What every block of one network shares: the resnets' norms and time-embedding width, the transformers' heads and
/// text width.
#[derive(Debug, Clone)]
pub(crate) struct BlockSettings {
    /// Norm groups, epsilon and time-embedding width of every resnet.
    pub resnet: ResnetBlock2dConfig,
    /// Attention heads of every transformer; the head width is `channels / heads`.
    pub heads: usize,
    /// Transformer layers per attention block.
    pub transformer_layers: usize,
    /// Width of the text context.
    pub cross_attention_dim: usize,
    /// `proj_in` / `proj_out` as linears instead of 1×1 convolutions.
    pub use_linear_projection: bool,
}

impl BlockSettings {
    fn resnet(&self, vb: VarBuilder, in_channels: usize, out_channels: usize) -> Result<ResnetBlock2d> {
        ResnetBlock2d::new(vb, in_channels, out_channels, self.resnet.clone())
    }

    fn transformer(&self, vb: VarBuilder, channels: usize) -> Result<Transformer2dModel> {
        let cfg = Transformer2dModelConfig {
            num_layers: self.transformer_layers,
            norm_num_groups: self.resnet.groups,
            use_linear_projection: self.use_linear_projection,
            block: BasicTransformerBlockConfig {
                heads: self.heads,
                head_dim: channels / self.heads,
                cross_attention_dim: Some(self.cross_attention_dim),
                ..Default::default()
            },
        };
        Transformer2dModel::new(vb, channels, cfg)
    }
}

/// The text a block attends to: per-token states `(b, m, cross_attention_dim)` and their padding mask `(b, m)`.
#[derive(Debug, Clone, Copy)]
pub struct TextContext<'a> {
    /// Per-token hidden states of the text encoder.
    pub states: &'a Tensor,
    /// 1 for a real token, 0 for padding; `None` attends to every token.
    pub mask: Option<&'a Tensor>,
}

/// `resnet → (attention)` pairs, then an optional stride-2 downsampler; every intermediate output is a skip state.
#[derive(Debug, Clone)]
pub(crate) struct DownBlock {
    resnets: Vec<ResnetBlock2d>,
    attentions: Vec<Transformer2dModel>,
    downsampler: Option<Downsample2d>,
}

impl DownBlock {
    /// `layers` resnets `in → out → … → out`, each followed by a transformer when `attention`, then a
    /// downsampler when `downsample`.
    pub fn new(
        vb: VarBuilder,
        (in_channels, out_channels): (usize, usize),
        layers: usize,
        (attention, downsample): (bool, bool),
        s: &BlockSettings,
    ) -> Result<Self> {
        let mut resnets = Vec::with_capacity(layers);
        let mut attentions = Vec::new();
        for j in 0..layers {
            let from = if j == 0 { in_channels } else { out_channels };
            resnets.push(s.resnet(vb.pp("resnets").pp(j), from, out_channels)?);
            if attention {
                attentions.push(s.transformer(vb.pp("attentions").pp(j), out_channels)?);
            }
        }
        let downsampler = if downsample {
            let vb = vb.pp("downsamplers").pp(0);
            Some(Downsample2d::new(vb, out_channels, out_channels, Downsample2dConfig::default())?)
        } else {
            None
        };
        Ok(Self { resnets, attentions, downsampler })
    }

    /// Number of skip states [`Self::forward`] returns.
    pub fn skip_count(&self) -> usize {
        self.resnets.len() + usize::from(self.downsampler.is_some())
    }

    /// `(b, in, h, w) → (b, out, h', w')` and the skip states, in order.
    pub fn forward(&self, xs: &Tensor, temb: &Tensor, text: Option<TextContext>) -> Result<(Tensor, Vec<Tensor>)> {
        let mut xs = xs.clone();
        let mut skips = Vec::with_capacity(self.skip_count());
        for (j, resnet) in self.resnets.iter().enumerate() {
            xs = resnet.forward(&xs, Some(temb))?;
            if let Some(attention) = self.attentions.get(j) {
                xs = attention.forward(&xs, text.map(|t| t.states), text.and_then(|t| t.mask))?;
            }
            skips.push(xs.clone());
        }
        if let Some(downsampler) = &self.downsampler {
            xs = downsampler.forward(&xs)?;
            skips.push(xs.clone());
        }
        Ok((xs, skips))
    }
}

/// `resnets.0 → attentions.0 → resnets.1` at the lowest resolution (diffusers' `UNetMidBlock2DCrossAttn`).
#[derive(Debug, Clone)]
pub(crate) struct MidBlock {
    resnet_in: ResnetBlock2d,
    attention: Transformer2dModel,
    resnet_out: ResnetBlock2d,
}

impl MidBlock {
    /// A width-preserving mid block of `channels` channels.
    pub fn new(vb: VarBuilder, channels: usize, s: &BlockSettings) -> Result<Self> {
        Ok(Self {
            resnet_in: s.resnet(vb.pp("resnets").pp(0), channels, channels)?,
            attention: s.transformer(vb.pp("attentions").pp(0), channels)?,
            resnet_out: s.resnet(vb.pp("resnets").pp(1), channels, channels)?,
        })
    }

    /// `(b, c, h, w) → (b, c, h, w)`.
    pub fn forward(&self, xs: &Tensor, temb: &Tensor, text: Option<TextContext>) -> Result<Tensor> {
        let xs = self.resnet_in.forward(xs, Some(temb))?;
        let xs = self.attention.forward(&xs, text.map(|t| t.states), text.and_then(|t| t.mask))?;
        self.resnet_out.forward(&xs, Some(temb))
    }
}

/// Channel widths of one up block, as diffusers computes them from `block_out_channels`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UpWidths {
    /// Width of the feature map coming from the block below.
    pub prev_out: usize,
    /// Width of the matching down block's input: the skip state its last resnet consumes.
    pub skip_in: usize,
    /// Width of the matching down block's output and of this block's output.
    pub out: usize,
}

/// `resnet(concat(x, skip)) → (attention)` for each popped skip state, then an optional ×2 upsampler.
#[derive(Debug, Clone)]
pub(crate) struct UpBlock {
    resnets: Vec<ResnetBlock2d>,
    attentions: Vec<Transformer2dModel>,
    upsampler: Option<Upsample2d>,
}

impl UpBlock {
    /// `layers` resnets; resnet `j` takes the running width plus the width of the skip state it consumes
    /// (`skip_in` for the last one, which pairs with the down block's input, `out` for the others).
    pub fn new(
        vb: VarBuilder,
        widths: UpWidths,
        layers: usize,
        (attention, upsample): (bool, bool),
        s: &BlockSettings,
    ) -> Result<Self> {
        let mut resnets = Vec::with_capacity(layers);
        let mut attentions = Vec::new();
        for j in 0..layers {
            let skip = if j + 1 == layers { widths.skip_in } else { widths.out };
            let from = if j == 0 { widths.prev_out } else { widths.out };
            resnets.push(s.resnet(vb.pp("resnets").pp(j), from + skip, widths.out)?);
            if attention {
                attentions.push(s.transformer(vb.pp("attentions").pp(j), widths.out)?);
            }
        }
        let upsampler = if upsample {
            let vb = vb.pp("upsamplers").pp(0);
            Some(Upsample2d::new(vb, widths.out, widths.out, Upsample2dConfig::default())?)
        } else {
            None
        };
        Ok(Self { resnets, attentions, upsampler })
    }

    /// Consumes the last `resnets.len()` entries of `skips` (last first).
    pub fn forward(
        &self,
        xs: &Tensor,
        skips: &mut Vec<Tensor>,
        temb: &Tensor,
        text: Option<TextContext>,
    ) -> Result<Tensor> {
        let mut xs = xs.clone();
        for (j, resnet) in self.resnets.iter().enumerate() {
            let Some(skip) = skips.pop() else {
                candle_core::bail!("UNet up block: ran out of skip states at resnet {j}");
            };
            xs = resnet.forward(&Tensor::cat(&[&xs, &skip], 1)?, Some(temb))?;
            if let Some(attention) = self.attentions.get(j) {
                xs = attention.forward(&xs, text.map(|t| t.states), text.and_then(|t| t.mask))?;
            }
        }
        match &self.upsampler {
            Some(upsampler) => upsampler.forward(&xs),
            None => Ok(xs),
        }
    }
}
