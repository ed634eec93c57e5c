//! Layers with gradients you can trust (issue 3, item 1): every block of the diffusion UNet, the ControlNet and the
//! ViT foundation model, built only from candle operations whose backward is checked against central differences in
//! f64 (`tests/suite/layer_gradients.rs`, through [`crate::grad_check`]) and whose forward matches PyTorch / diffusers
//! (`tests/suite/layer_goldens.rs`, values made by `scripts/torch-goldens.py`).
//!
//! Each block is an `XConfig` (defaults = upstream values) plus `X::new(vb, …, cfg)`; tensor names come from
//! `vb.pp(…)` and match the upstream attribute names, so `VarBuilder::from_mmaped_safetensors` loads upstream
//! checkpoints and [`seeded_var_builder`] (a `VarMap` with reproducible initial values) trains fresh ones through
//! the same constructor.

pub mod activation;
pub mod attention;
pub mod conv;
pub mod dropout;
pub mod embedding;
pub mod init;
pub mod linear;
pub mod norm;
pub mod resnet;
pub mod transformer;
pub mod vit;

pub use activation::{gelu_erf, gelu_tanh, silu, softmax, Activation};
pub use attention::{Attention, AttentionConfig, ProjectionNames};
pub use conv::{
    upsample_nearest_2x, Conv2d, Conv2dConfig, Downsample2d, Downsample2dConfig, Upsample2d, Upsample2dConfig,
};
pub use dropout::{Dropout, DropoutConfig};
pub use embedding::{
    PatchEmbed3d, PatchEmbed3dConfig, TimestepEmbedding, TimestepEmbeddingConfig, Timesteps, TimestepsConfig,
};
pub use init::seeded_var_builder;
pub use linear::{linear, Linear, LinearConfig};
pub use norm::{GroupNorm, GroupNormConfig, LayerNorm, LayerNormConfig};
pub use resnet::{ResnetBlock2d, ResnetBlock2dConfig};
pub use transformer::{
    BasicTransformerBlock, BasicTransformerBlockConfig, FeedForward, FeedForwardActivation, FeedForwardConfig,
    Transformer2dModel, Transformer2dModelConfig,
};
pub use vit::{Mlp, MlpConfig, ViTBlock, ViTBlockConfig};
