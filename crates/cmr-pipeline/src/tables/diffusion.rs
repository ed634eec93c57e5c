//! `[diffusion]`: the ControlNet that generates synthetic subjects — trained by the pipeline (`[diffusion.base]`
//! then `[diffusion.controlnet]`, each with `cmr-debias diffusion train`'s options: `steps`, `batch`, `lr`,
//! `checkpoint_every`, … — every field of `cmr_diffusion::pipeline::train::TrainOptions`) or taken from `model`
//! (an existing model folder with a ControlNet) — and how it samples (`[diffusion.generate]`: `steps`, `guidance`,
//! `conditioning_scale`, `batch`, as `diffusion generate`).

use std::path::PathBuf;

use cmr_diffusion::pipeline::generate::SamplingOptions;
use cmr_diffusion::pipeline::train::TrainOptions;
use cmr_nn::device::DeviceSpec;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::load::Origins;
use crate::schema::{Schema, Section};

/// The `[diffusion]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DiffusionTable {
    /// An existing model folder with a base UNet and a ControlNet: no training. `None`: train both.
    pub model: Option<PathBuf>,
    /// Device: `cpu`, `cuda` or `cuda:N`. Default `cpu`.
    pub device: String,
    /// Folder holding all-MiniLM-L6-v2. `None`: `models/external/`, then the Hugging Face cache.
    pub text_encoder: Option<PathBuf>,
    /// Training of the base UNet. `None`: the defaults of `diffusion train`.
    pub base: Option<TrainOptions>,
    /// Training of the ControlNet on the frozen base. `None`: the defaults of `diffusion train`.
    pub controlnet: Option<TrainOptions>,
    /// Sampling of the synthetic subjects (defaults as `cmr-debias diffusion generate`).
    pub generate: SamplingOptions,
}

impl Default for DiffusionTable {
    fn default() -> Self {
        Self {
            model: None,
            device: "cpu".into(),
            text_encoder: None,
            base: None,
            controlnet: None,
            generate: SamplingOptions::default(),
        }
    }
}

impl Section for DiffusionTable {
    fn path_offset(key: &str, _value: &str) -> Option<usize> {
        matches!(key, "model" | "text_encoder").then_some(0)
    }

    fn nested() -> Vec<(&'static str, Schema)> {
        vec![
            ("base", Schema::of::<TrainOptions>()),
            ("controlnet", Schema::of::<TrainOptions>()),
            ("generate", Schema::of::<SamplingOptions>()),
        ]
    }
}

impl Section for TrainOptions {}

impl Section for SamplingOptions {}

/// Training options of both networks, with the pipeline's seed.
#[derive(Debug, Clone, PartialEq)]
pub struct Training {
    /// The base UNet's.
    pub base: TrainOptions,
    /// The ControlNet's.
    pub controlnet: TrainOptions,
}

impl DiffusionTable {
    /// The device, parsed.
    pub fn device(&self, origins: &Origins) -> Result<DeviceSpec> {
        self.device.parse().map_err(|e| origins.invalid("diffusion", "device", format!("{e}")))
    }

    /// The training options (used without `model`), after checking that `model` and training tables are not mixed
    /// and that no table sets its own seed (the pipeline has one, at the top level).
    pub fn training(&self, seed: u64, origins: &Origins) -> Result<Training> {
        for (name, options) in [("base", &self.base), ("controlnet", &self.controlnet)] {
            if options.is_some() && self.model.is_some() {
                let message = format!("[diffusion.{name}] trains a model, but `model` names one to use; keep one");
                return Err(origins.invalid("diffusion", "model", message));
            }
            if origins.is_set(&format!("diffusion.{name}.seed")) {
                let message = "the pipeline has one seed, the top-level `seed`".to_string();
                return Err(origins.invalid(&format!("diffusion.{name}"), "seed", message));
            }
        }
        let with_seed = |options: &Option<TrainOptions>| TrainOptions { seed, ..options.clone().unwrap_or_default() };
        Ok(Training { base: with_seed(&self.base), controlnet: with_seed(&self.controlnet) })
    }
}
