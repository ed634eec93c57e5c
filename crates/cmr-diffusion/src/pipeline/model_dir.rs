//! The model folder that `diffusion train` writes and `diffusion generate` reads:
//!
//! ```text
//! unet.safetensors        base UNet weights (EMA), + unet.json (UNet2dConditionConfig) + unet.safetensors.sha256
//! controlnet.safetensors  ControlNet weights (EMA), + controlnet.json + .sha256 — ControlNet stage only
//! scheduler.json          the training noise schedule; sampling builds its DDIM scheduler from it
//! training.json           what the model is the result of: options, data (cohort sha256), the loss of every step
//! README.md               model card
//! preview.png             validation grid of the final weights (+ previews/step-N.png of intermediate ones)
//! ```
//!
//! A ControlNet folder holds a copy of its base UNet, so one folder is everything generation needs. Every file
//! depends only on the options and the data, never on the process that wrote it (wall time, resume point), so the
//! same run — interrupted and resumed or not — always writes byte-identical folders.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};
use candle_nn::{VarBuilder, VarMap};
use cmr_nn::checkpoint::{self, Checkpoint, LoadMode};

use crate::error::{DiffusionError, Result};
use crate::models::{ControlNetConfig, ControlNetModel, UNet2dConditionConfig, UNet2dConditionModel};
use crate::schedulers::SchedulerConfig;

/// File of the base UNet's weights.
pub const UNET_FILE: &str = "unet.safetensors";
/// File of the ControlNet's weights.
pub const CONTROLNET_FILE: &str = "controlnet.safetensors";
/// File of the noise schedule.
pub const SCHEDULER_FILE: &str = "scheduler.json";
/// File describing the training run.
pub const TRAINING_FILE: &str = "training.json";

/// A model folder, opened and verified (every weight file matches its sha256 sidecar).
#[derive(Debug, Clone)]
pub struct ModelDir {
    path: PathBuf,
    unet: Checkpoint,
    controlnet: Option<Checkpoint>,
    scheduler: SchedulerConfig,
}

impl ModelDir {
    /// Opens `path`: reads the UNet, the ControlNet when present, and the schedule; checks the weights' sha256.
    pub fn open(path: &Path) -> Result<Self> {
        let unet = load_verified(&path.join(UNET_FILE))?;
        let controlnet_path = path.join(CONTROLNET_FILE);
        let controlnet = if controlnet_path.exists() { Some(load_verified(&controlnet_path)?) } else { None };
        let scheduler_path = path.join(SCHEDULER_FILE);
        let text = std::fs::read_to_string(&scheduler_path)
            .map_err(|e| DiffusionError::input(&scheduler_path, format!("cannot read the noise schedule: {e}")))?;
        let scheduler = serde_json::from_str(&text)
            .map_err(|e| DiffusionError::input(&scheduler_path, format!("not a scheduler config: {e}")))?;
        Ok(Self { path: path.into(), unet, controlnet, scheduler })
    }

    /// The folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The noise schedule the model was trained with.
    pub fn scheduler(&self) -> &SchedulerConfig {
        &self.scheduler
    }

    /// Whether the folder holds a ControlNet.
    pub fn has_controlnet(&self) -> bool {
        self.controlnet.is_some()
    }

    /// The base UNet's configuration.
    pub fn unet_config(&self) -> Result<UNet2dConditionConfig> {
        Ok(self.unet.config()?)
    }

    /// Builds the base UNet in `dtype` on `device`.
    pub fn unet(&self, dtype: DType, device: &Device) -> Result<UNet2dConditionModel> {
        let vb = VarBuilder::from_tensors(self.unet.tensors().clone().into_iter().collect(), dtype, device);
        Ok(UNet2dConditionModel::new(vb, self.unet_config()?)?)
    }

    /// The base UNet's weights as trainable variables (the source of a new ControlNet's copied encoder), from the
    /// checkpoint already read.
    pub fn unet_varmap(&self, device: &Device) -> Result<VarMap> {
        let varmap = VarMap::new();
        UNet2dConditionModel::new(VarBuilder::from_varmap(&varmap, DType::F32, device), self.unet_config()?)?;
        self.unet.load_into(&varmap, LoadMode::Strict)?;
        Ok(varmap)
    }

    /// Builds the ControlNet, if the folder has one.
    pub fn controlnet(&self, dtype: DType, device: &Device) -> Result<Option<ControlNetModel>> {
        let Some(ckpt) = &self.controlnet else { return Ok(None) };
        let config: ControlNetConfig = ckpt.config()?;
        let vb = VarBuilder::from_tensors(ckpt.tensors().clone().into_iter().collect(), dtype, device);
        Ok(Some(ControlNetModel::new(vb, config)?))
    }

    /// One hash naming the generator: sha256 of the UNet's sha256, and the ControlNet's when present.
    pub fn generator_sha256(&self) -> String {
        let mut ids = self.unet.sha256().to_string();
        if let Some(c) = &self.controlnet {
            ids.push_str(c.sha256());
        }
        cmr_core::manifest::sha256_hex(ids.as_bytes())
    }
}

/// Loads a checkpoint, which must have its `.sha256` sidecar (checked by [`Checkpoint::load`]).
fn load_verified(path: &Path) -> Result<Checkpoint> {
    let sidecar = checkpoint::sha256_path(path);
    if !sidecar.exists() {
        return Err(DiffusionError::input(path, format!("no sha256 sidecar {}", sidecar.display())));
    }
    Ok(Checkpoint::load(path, &Device::Cpu)?)
}
