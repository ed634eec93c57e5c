//! Networks: the conditional UNet (the denoiser) and the ControlNet that adds the mask condition. Both build from a
//! `VarBuilder` (a seeded `VarMap` to train, safetensors to sample) with diffusers' tensor names.

mod blocks;
pub mod controlnet;
pub mod unet;

pub use blocks::TextContext;
pub use controlnet::{copy_encoder_from_unet, ControlNetConfig, ControlNetModel};
pub use unet::{ControlResiduals, DownBlockType, UNet2dConditionConfig, UNet2dConditionModel, UpBlockType};
