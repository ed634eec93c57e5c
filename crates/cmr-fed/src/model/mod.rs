//! The foundation model and the classifier (issue 7, items 1 and 5): a 3D ViT over the subject tensor, pretrained as
//! a masked autoencoder, then fine-tuned as a binary classifier fully or with LoRA in its last blocks.
//!
//! - [`config`] — architecture ([`ViTConfig`], presets `tiny` and `small`);
//! - [`encoder`] — the ViT encoder ([`VitEncoder`]), its fixed 3D sin-cos position embedding;
//! - [`mae`] — masked-autoencoder pretraining model and loss ([`Mae`], [`Masking`]);
//! - [`classifier`] — encoder + head, full or LoRA fine-tuning, built from a foundation model ([`Classifier`]);
//! - [`dir`] — the model folder ([`FmDir`]);
//! - [`pretrain`] — MAE pretraining on a cohort's train split, writing a model folder.

pub mod classifier;
pub mod config;
pub mod dir;
pub mod encoder;
pub mod mae;
pub mod pretrain;

pub use classifier::{expand_patch_channels, Classifier, ClassifierConfig, FineTune, LoraOptions, HEAD};
pub use config::ViTConfig;
pub use dir::FmDir;
pub use encoder::{EncoderLora, VitEncoder};
pub use mae::{patchify, Mae, Masking};
pub use pretrain::{PretrainConfig, PretrainOptions, PretrainProgress, PretrainReport};
