//! The foundation-model stage `fm`: MAE pretraining of the 3D ViT on the images of the cohort's train split
//! (`cmr_fed::model::pretrain::run`), the model every federated arm fine-tunes. With `[fm] model` there is no stage:
//! [`model_input`] makes that folder an input of the arms.

use std::path::{Path, PathBuf};

use cmr_fed::model::pretrain::{self, PretrainConfig, PretrainOptions};
use cmr_nn::device::DeviceSpec;
use indicatif::ProgressBar;
use serde_json::{json, Value};

use super::{COHORT, FM};
use crate::error::{PipelineError, Result};
use crate::load::Origins;
use crate::stage::{report_json, Input, InputKind, Stage};

/// `fm`: the foundation model pretrained on the cohort.
pub struct PretrainStage {
    /// The cohort folder.
    pub cohort: PathBuf,
    /// Hyper-parameters and architecture (loaded: a JSON architecture file counts by content), with the seed.
    pub options: PretrainOptions,
    /// Where to train.
    pub device: DeviceSpec,
}

impl Stage for PretrainStage {
    fn name(&self) -> &'static str {
        FM
    }

    fn config(&self) -> Value {
        json!({ "device": self.device.to_string(), "options": self.options })
    }

    fn inputs(&self) -> Vec<Input> {
        vec![Input::upstream(COHORT, self.cohort.clone(), InputKind::Folder)]
    }

    fn run(&self, out: &Path, bar: &ProgressBar) -> Result<Value> {
        let device = self.device.open().map_err(|e| PipelineError::stage(FM, e))?;
        let cfg = PretrainConfig {
            cohort: self.cohort.clone(),
            out: out.into(),
            options: self.options.clone(),
            device,
            force: true,
        };
        let report = pretrain::run(&cfg, &mut |p| {
            bar.set_length(p.steps as u64);
            bar.set_position(p.step as u64);
            bar.set_message(format!("epoch {}/{} loss {:.4}", p.epoch, p.epochs, p.loss));
        })
        .map_err(|e| PipelineError::stage(FM, e))?;
        Ok(report_json(&report))
    }
}

/// `[fm] model` as the arms' input, after checking that it is a foundation-model folder (its weights file is there;
/// `fed train` verifies their sha256 when it opens them).
pub fn model_input(model: &Path, origins: &Origins) -> Result<Input> {
    let weights = model.join(cmr_fed::model::dir::FM_FILE);
    if !weights.is_file() {
        let message = format!(
            "{} is not a foundation-model folder (no {}); pretrain one with `cmr-debias fm pretrain`, or remove \
             `model` to pretrain in the pipeline",
            model.display(),
            cmr_fed::model::dir::FM_FILE
        );
        return Err(origins.invalid("fm", "model", message));
    }
    Ok(Input::external(model.into(), InputKind::Folder))
}
