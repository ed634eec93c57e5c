//! The diffusion stages: `base` trains the text-conditional UNet, `controlnet` the mask ControlNet on the frozen base
//! (`cmr_diffusion::pipeline::train::run`, which resumes an interrupted run from its `.{out}.resume` checkpoint), and
//! `generate` samples one synthetic subject per plan row (`cmr_diffusion::pipeline::generate::run`, which keeps the
//! subjects an interrupted run finished).

use std::path::{Path, PathBuf};

use candle_core::Device;
use cmr_diffusion::pipeline::generate::{self, GenerateConfig, SamplingOptions};
use cmr_diffusion::pipeline::train::{self, Stage as Network, TrainConfig, TrainOptions};
use cmr_nn::device::DeviceSpec;
use cmr_nn::resolve::{ResolvedModel, MINILM};
use cmr_nn::text::{SentenceEncoder, SentenceEncoderConfig};
use indicatif::ProgressBar;
use serde_json::{json, Value};

use super::{BASE, CONTROLNET, GENERATE};
use crate::error::{PipelineError, Result};
use crate::stage::{callback, report_json, Input, InputKind, Stage};

/// The frozen sentence encoder both diffusion stages condition on, found on disk.
#[derive(Debug, Clone)]
pub struct TextEncoder {
    /// Its files.
    pub model: ResolvedModel,
    /// Where to run it (the stage's device).
    pub device: DeviceSpec,
}

impl TextEncoder {
    /// Its files, as inputs: a different encoder makes different images.
    fn inputs(&self) -> Vec<Input> {
        MINILM.files.iter().map(|f| Input::external(self.model.file(f).to_path_buf(), InputKind::File)).collect()
    }

    /// Opens the device and loads the encoder on it.
    fn load(&self, stage: &str) -> Result<(SentenceEncoder, Device)> {
        let device = self.device.open().map_err(|e| PipelineError::stage(stage, e))?;
        let encoder = SentenceEncoder::load(&self.model, &device, SentenceEncoderConfig::default())
            .map_err(|e| PipelineError::stage(stage, e))?;
        Ok((encoder, device))
    }
}

/// `base` or `controlnet`: one network trained on the cohort's train split.
pub struct TrainStage {
    /// Which network.
    pub network: Network,
    /// The cohort folder.
    pub cohort: PathBuf,
    /// The base model folder (`controlnet` only).
    pub base: Option<PathBuf>,
    /// Hyper-parameters, with the pipeline's seed.
    pub options: TrainOptions,
    /// The text encoder.
    pub encoder: TextEncoder,
}

impl Stage for TrainStage {
    fn name(&self) -> &'static str {
        match self.network {
            Network::Base => BASE,
            Network::Controlnet => CONTROLNET,
        }
    }

    fn config(&self) -> Value {
        json!({ "device": self.encoder.device.to_string(), "options": self.options })
    }

    fn inputs(&self) -> Vec<Input> {
        let mut inputs = vec![Input::upstream(super::COHORT, self.cohort.clone(), InputKind::Folder)];
        inputs.extend(self.base.iter().map(|base| Input::upstream(BASE, base.clone(), InputKind::Folder)));
        inputs.extend(self.encoder.inputs());
        inputs
    }

    fn run(&self, out: &Path, bar: &ProgressBar) -> Result<Value> {
        let name = self.name();
        let (encoder, device) = self.encoder.load(name)?;
        let cfg = TrainConfig {
            cohort: self.cohort.clone(),
            out: out.into(),
            stage: self.network,
            base: self.base.clone(),
            options: self.options.clone(),
            text_encoder: &encoder,
            device,
            force: true,
        };
        let report = train::run(&cfg, &|step, total, loss| {
            bar.set_length(total as u64);
            bar.set_position(step as u64);
            bar.set_message(format!("loss {loss:.4}"));
        })
        .map_err(|e| PipelineError::stage(name, e))?;
        Ok(report_json(&report))
    }
}

/// `generate`: synthetic subjects from the balance plan.
pub struct GenerateStage {
    /// Model folder with a ControlNet (the `controlnet` stage's, or `[diffusion] model`).
    pub model: Input,
    /// The plan file.
    pub plan: PathBuf,
    /// The cohort the mask sources come from.
    pub cohort: PathBuf,
    /// Sampling options.
    pub options: SamplingOptions,
    /// The text encoder.
    pub encoder: TextEncoder,
}

impl Stage for GenerateStage {
    fn name(&self) -> &'static str {
        GENERATE
    }

    fn config(&self) -> Value {
        json!({ "device": self.encoder.device.to_string(), "options": self.options })
    }

    fn inputs(&self) -> Vec<Input> {
        let mut inputs = vec![
            self.model.clone(),
            Input::upstream(super::PLAN, self.plan.clone(), InputKind::File),
            Input::upstream(super::COHORT, self.cohort.clone(), InputKind::Folder),
        ];
        inputs.extend(self.encoder.inputs());
        inputs
    }

    fn run(&self, out: &Path, bar: &ProgressBar) -> Result<Value> {
        let (encoder, device) = self.encoder.load(GENERATE)?;
        let cfg = GenerateConfig {
            model: self.model.path.clone(),
            plan: self.plan.clone(),
            cohort: self.cohort.clone(),
            out: out.into(),
            sampling: self.options,
            text_encoder: &encoder,
            device,
            force: true,
        };
        let report = generate::run(&cfg, &callback(bar)).map_err(|e| PipelineError::stage(GENERATE, e))?;
        Ok(report_json(&report))
    }
}
