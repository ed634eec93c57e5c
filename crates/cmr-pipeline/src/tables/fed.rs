//! `[fm]` and `[federated]`: the foundation model and the federated classifier of the experiment arms (issue 7;
//! option names as `cmr-debias fm pretrain` and `fed train`, defaults from `cmr_fed`), used by the stages `fm` and
//! `federated-<arm>` ([`crate::stages`]).

use std::path::PathBuf;

use cmr_core::Task;
use cmr_fed::data::{Augmentation, ShapePrior};
use cmr_fed::federated::Strategy;
use cmr_fed::model::{PretrainOptions, ViTConfig};
use cmr_fed::train::{FedTrainOptions, LocalTraining};
use cmr_nn::device::DeviceSpec;
use cmr_nn::lora::LoraTarget;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::load::Origins;
use crate::schema::Section;

/// The `[fm]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FmTable {
    /// An existing foundation-model folder: no pretraining. `None`: pretrain on the cohort's train split.
    pub model: Option<PathBuf>,
    /// Architecture: `tiny`, `small` or a `.json` file. Default `tiny`.
    pub config: String,
    /// Passes over the train split. Default 40.
    pub epochs: usize,
    /// Subjects per step. Default 8.
    pub batch: usize,
    /// Peak learning rate. Default 5e-4.
    pub lr: f64,
    /// Fraction of patches masked. Default 0.75.
    pub mask_ratio: f64,
    /// Device: `cpu`, `cuda` or `cuda:N`. Default `cpu`.
    pub device: String,
}

impl Default for FmTable {
    fn default() -> Self {
        let defaults = PretrainOptions::default();
        Self {
            model: None,
            config: "tiny".into(),
            epochs: defaults.epochs,
            batch: defaults.batch,
            lr: defaults.lr,
            mask_ratio: defaults.mask_ratio,
            device: "cpu".into(),
        }
    }
}

impl Section for FmTable {
    fn path_offset(key: &str, value: &str) -> Option<usize> {
        (key == "model" || (key == "config" && value.ends_with(".json"))).then_some(0)
    }
}

impl FmTable {
    /// Checks counts, ranges, the architecture and the device, and that `model` comes without pretraining keys.
    pub fn check(&self, origins: &Origins) -> Result<()> {
        let invalid = |key: &str, message: String| Err(origins.invalid("fm", key, message));
        if self.epochs == 0 || self.batch == 0 {
            return invalid(if self.epochs == 0 { "epochs" } else { "batch" }, "must be at least 1".into());
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return invalid("lr", format!("must be positive, got {}", self.lr));
        }
        if !(self.mask_ratio > 0.0 && self.mask_ratio < 1.0) {
            return invalid("mask_ratio", format!("must be in (0, 1), got {}", self.mask_ratio));
        }
        match &self.model {
            None => {
                self.options(0, origins)?; // loads the architecture
            }
            Some(_) => {
                let pretraining = ["config", "epochs", "batch", "lr", "mask_ratio"];
                if let Some(key) = pretraining.iter().find(|key| origins.is_set(&format!("fm.{key}"))) {
                    let message = format!("`{key}` pretrains a model, but `model` names one to use; keep one");
                    return Err(origins.invalid("fm", "model", message));
                }
            }
        }
        self.device(origins)?;
        Ok(())
    }

    /// The pretraining options (architecture loaded from its preset or JSON file), with the pipeline's `seed`.
    pub fn options(&self, seed: u64, origins: &Origins) -> Result<PretrainOptions> {
        let vit = ViTConfig::preset(&self.config).map_err(|e| origins.invalid("fm", "config", e.to_string()))?;
        let (epochs, batch, lr, mask_ratio) = (self.epochs, self.batch, self.lr, self.mask_ratio);
        Ok(PretrainOptions { epochs, batch, lr, mask_ratio, seed, vit, ..PretrainOptions::default() })
    }

    /// The device.
    pub fn device(&self, origins: &Origins) -> Result<DeviceSpec> {
        self.device.parse().map_err(|e| origins.invalid("fm", "device", format!("{e}")))
    }
}

/// An experiment arm: the same federated training on a different train split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    /// The real cohort only.
    Baseline,
    /// The cohort after balance plan → diffusion generate → balance merge.
    Augmented,
    /// The real cohort with per-subject sampling weights (`balance plan --strategy weights`).
    Weights,
}

impl Arm {
    /// Its name, as in `[federated] arms`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Baseline => "baseline",
            Self::Augmented => "augmented",
            Self::Weights => "weights",
        }
    }
}

/// The `[federated]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FederatedTable {
    /// Arms to run, each audited against `baseline` (which is always one of them). Default all three.
    pub arms: Vec<Arm>,
    /// Strategy: local, central, fedavg, fedavg-lora, ffa-lora, fedsa-lora or dual-lora. Default `dual-lora`.
    pub strategy: String,
    /// Task labels from the diagnosis. `None`: `[cohort] task`.
    pub task: Option<Task>,
    /// Communication rounds. Default 10.
    pub rounds: usize,
    /// Local epochs per round. Default 1.
    pub local_epochs: usize,
    /// Subjects per step. Default 8.
    pub batch: usize,
    /// Learning rate. `None`: 1e-4 for full fine-tuning, 1e-3 for LoRA.
    pub lr: Option<f64>,
    /// LoRA rank. Default 8.
    pub lora_rank: usize,
    /// Transformer blocks adapted, counted from the last. Default 2 (Med-DualLoRA).
    pub lora_blocks: usize,
    /// Projections adapted. Default `["q", "kv", "proj"]`.
    pub lora_targets: Vec<LoraTarget>,
    /// Shape prior: none, heart or fragmented. Default `none`.
    pub shape_prior: ShapePrior,
    /// Augmentation: none, shape, intensity or both. Default `none`.
    pub augment: Augmentation,
    /// Fewest valid updates a round aggregates. Default 1.
    pub min_clients: usize,
    /// Device: `cpu`, `cuda` or `cuda:N`. Default `cpu`.
    pub device: String,
}

impl Default for FederatedTable {
    fn default() -> Self {
        let defaults = FedTrainOptions::new(Strategy::DualLora);
        Self {
            arms: vec![Arm::Baseline, Arm::Augmented, Arm::Weights],
            strategy: defaults.strategy.name().into(),
            task: None,
            rounds: defaults.rounds,
            local_epochs: defaults.local.epochs,
            batch: defaults.local.batch,
            lr: defaults.lr,
            lora_rank: defaults.lora_rank,
            lora_blocks: defaults.lora_blocks,
            lora_targets: defaults.lora_targets,
            shape_prior: defaults.shape_prior,
            augment: defaults.augment,
            min_clients: defaults.min_clients,
            device: "cpu".into(),
        }
    }
}

impl Section for FederatedTable {}

impl FederatedTable {
    /// Checks the strategy, counts, lists and device.
    pub fn check(&self, origins: &Origins) -> Result<()> {
        let invalid = |key: &str, message: String| Err(origins.invalid("federated", key, message));
        self.strategy.parse::<Strategy>().map_err(|e| origins.invalid("federated", "strategy", e.to_string()))?;
        for (key, value) in [
            ("rounds", self.rounds),
            ("local_epochs", self.local_epochs),
            ("batch", self.batch),
            ("lora_rank", self.lora_rank),
            ("lora_blocks", self.lora_blocks),
            ("min_clients", self.min_clients),
        ] {
            if value == 0 {
                return invalid(key, "must be at least 1".into());
            }
        }
        if let Some(lr) = self.lr.filter(|lr| !(*lr > 0.0 && lr.is_finite())) {
            return invalid("lr", format!("must be positive, got {lr}"));
        }
        if self.arms.is_empty() {
            return invalid("arms", "needs at least one of baseline, augmented, weights".into());
        }
        let mut arms = self.arms.clone();
        arms.sort();
        arms.dedup();
        if arms.len() != self.arms.len() {
            return invalid("arms", "lists an arm twice".into());
        }
        if !self.has(Arm::Baseline) {
            return invalid("arms", "needs `baseline`: every other arm is audited against it".into());
        }
        if self.lora_targets.is_empty() {
            return invalid("lora_targets", "needs at least one of q, kv, proj".into());
        }
        self.device(origins)?;
        Ok(())
    }

    /// The `fed train` options with labels of `task` and the pipeline's `seed` (no sample weights: the weights arm
    /// adds its file).
    pub fn options(&self, task: Task, seed: u64, origins: &Origins) -> Result<FedTrainOptions> {
        let strategy =
            self.strategy.parse::<Strategy>().map_err(|e| origins.invalid("federated", "strategy", e.to_string()))?;
        let defaults = FedTrainOptions::new(strategy);
        Ok(FedTrainOptions {
            task,
            rounds: self.rounds,
            local: LocalTraining { epochs: self.local_epochs, batch: self.batch, ..defaults.local.clone() },
            lr: self.lr,
            lora_rank: self.lora_rank,
            lora_blocks: self.lora_blocks,
            lora_targets: self.lora_targets.clone(),
            shape_prior: self.shape_prior,
            augment: self.augment,
            min_clients: self.min_clients,
            seed,
            ..defaults
        })
    }

    /// The device.
    pub fn device(&self, origins: &Origins) -> Result<DeviceSpec> {
        self.device.parse().map_err(|e| origins.invalid("federated", "device", format!("{e}")))
    }

    /// Whether `arm` is run.
    pub fn has(&self, arm: Arm) -> bool {
        self.arms.contains(&arm)
    }
}
