//! Foundation-model and federated stages (issue 7): a 3D ViT over the subject tensor `[2, S, H, W]` pretrained as a
//! masked autoencoder, then fine-tuned as a binary classifier across sites with one of the federated strategies
//! (local, central, FedAvg, FedAvg-LoRA, FFA-LoRA, FedSA-LoRA, Med-DualLoRA).
//!
//! - `model/` — the ViT, the MAE, the classifier with LoRA in its last blocks, model folders;
//! - `data/` — clients and their subjects from a cohort, shape priors, augmentation, binary metrics, predictions;
//! - `federated/` — strategies (pure), messages as safetensors bytes, the transport, the server's rounds;
//! - `train/` — the site trainer of the classifier and `fed train`.

pub mod data;
pub mod error;
pub mod federated;
pub mod model;
pub mod train;

pub use error::{FedError, Result};
