//! The foundation-model folder that `fm pretrain` writes and the classifier reads:
//!
//! ```text
//! fm.safetensors          encoder + MAE decoder weights (names from the model: patch_embed.proj, blocks.{i}.attn.q, …)
//! fm.json                 the ViTConfig that rebuilds the network
//! fm.safetensors.sha256   checked on open
//! training.json           the run: options (seed included), cohort sha256, subjects, loss per epoch
//! README.md               model card
//! ```

use std::path::{Path, PathBuf};

use candle_core::Device;
use cmr_nn::checkpoint::{self, Checkpoint};

use super::config::ViTConfig;
use crate::error::{FedError, Result};

/// File of the weights.
pub const FM_FILE: &str = "fm.safetensors";
/// File describing the pretraining run.
pub const TRAINING_FILE: &str = "training.json";
/// The model card.
pub const README_FILE: &str = "README.md";

/// A foundation-model folder, opened and verified.
#[derive(Debug, Clone)]
pub struct FmDir {
    path: PathBuf,
    checkpoint: Checkpoint,
    config: ViTConfig,
}

impl FmDir {
    /// Opens `path`: reads `fm.safetensors`, which must match its `.sha256` sidecar, and its configuration.
    pub fn open(path: &Path) -> Result<Self> {
        let weights = path.join(FM_FILE);
        let sidecar = checkpoint::sha256_path(&weights);
        if !sidecar.exists() {
            return Err(FedError::input(
                &weights,
                format!("no sha256 sidecar {}; not a model folder", sidecar.display()),
            ));
        }
        let checkpoint = Checkpoint::load(&weights, &Device::Cpu)?;
        let config: ViTConfig = checkpoint.config()?;
        config.validate().map_err(|e| FedError::input(checkpoint::config_path(&weights), e.to_string()))?;
        Ok(Self { path: path.into(), checkpoint, config })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The architecture.
    pub fn config(&self) -> &ViTConfig {
        &self.config
    }

    /// The weights as read.
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// sha256 of `fm.safetensors`: names the foundation model in runs built on it.
    pub fn sha256(&self) -> &str {
        self.checkpoint.sha256()
    }
}
