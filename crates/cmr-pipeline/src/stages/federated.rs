//! The federated stages, one per experiment arm (`federated-baseline`, `federated-augmented`, `federated-weights`):
//! `cmr_fed::train::run` — the classifier fine-tuned from the foundation model across the cohort's sites with one
//! strategy, every site's test subjects scored into `predictions.csv` — on the same options and seed, on:
//!
//! - baseline: the real cohort (`cohort`);
//! - augmented: the merged cohort (`merge`: the real cohort plus the synthetic train subjects);
//! - weights: the real cohort, each train subject's loss weighted by the `weights` stage's `weights.csv`.
//!
//! `fed train` resumes an interrupted run from its `.{out}.training` checkpoints.

use std::path::Path;

use cmr_fed::train::{self, FedTrainConfig, FedTrainOptions};
use cmr_nn::device::DeviceSpec;
use indicatif::ProgressBar;
use serde_json::{json, Value};

use super::{COHORT, MERGE, WEIGHTS};
use crate::error::{PipelineError, Result};
use crate::load::Pipeline;
use crate::stage::{callback, Input, InputKind, Stage};
use crate::tables::{Arm, FederatedTable};

/// The `weights` stage's table of per-subject weights that `fed train` reads (the CSV twin of `weights.parquet`).
pub const WEIGHTS_CSV: &str = "weights.csv";

/// `federated-<arm>`: one arm's classifier.
pub struct FederatedStage {
    /// The arm.
    pub arm: Arm,
    /// `[federated]`, which determines the options (its `arms` do not change this arm's output).
    pub table: FederatedTable,
    /// The `fed train` options from `table`, with the task, the seed and (weights arm) the weights table.
    pub options: FedTrainOptions,
    /// Where to train.
    pub device: DeviceSpec,
    /// The cohort trained on: `cohort`'s output, or `merge`'s for the augmented arm.
    pub cohort: Input,
    /// The foundation model: the `fm` stage's output or `[fm] model`.
    pub fm: Input,
}

impl FederatedStage {
    /// The stage of `arm` of `pipeline`, on the outputs in `run_dir` (the cohort, or the merged cohort, and the
    /// weights table) and the foundation model `fm`.
    pub fn new(arm: Arm, pipeline: &Pipeline, run_dir: &Path, fm: Input) -> Result<Self> {
        let (cfg, origins) = (&pipeline.config, &pipeline.origins);
        let task = cfg.federated.task.unwrap_or(cfg.cohort.task);
        let mut options = cfg.federated.options(task, cfg.seed, origins)?;
        let cohort = match arm {
            Arm::Augmented => Input::upstream(MERGE, run_dir.join(MERGE), InputKind::Folder),
            Arm::Baseline | Arm::Weights => Input::upstream(COHORT, run_dir.join(COHORT), InputKind::Folder),
        };
        if arm == Arm::Weights {
            options.sample_weights = Some(run_dir.join(WEIGHTS).join(WEIGHTS_CSV));
        }
        let device = cfg.federated.device(origins)?;
        Ok(Self { arm, table: cfg.federated.clone(), options, device, cohort, fm })
    }
}

/// The name of `arm`'s stage.
pub fn stage_name(arm: Arm) -> &'static str {
    match arm {
        Arm::Baseline => super::FEDERATED_BASELINE,
        Arm::Augmented => super::FEDERATED_AUGMENTED,
        Arm::Weights => super::FEDERATED_WEIGHTS,
    }
}

impl Stage for FederatedStage {
    fn name(&self) -> &'static str {
        stage_name(self.arm)
    }

    fn config(&self) -> Value {
        let mut table = serde_json::to_value(&self.table).unwrap_or(Value::Null);
        if let Value::Object(fields) = &mut table {
            fields.remove("arms"); // adding an arm does not change this one
            fields.insert("task".into(), json!(self.options.task));
        }
        json!({ "seed": self.options.seed, "options": table, "sample_weights": self.options.sample_weights.is_some() })
    }

    fn inputs(&self) -> Vec<Input> {
        let mut inputs = vec![self.cohort.clone(), self.fm.clone()];
        let weights = self.options.sample_weights.iter();
        inputs.extend(weights.map(|w| Input::upstream(WEIGHTS, w.clone(), InputKind::File)));
        inputs
    }

    fn run(&self, out: &Path, bar: &ProgressBar) -> Result<Value> {
        let name = self.name();
        let cfg = FedTrainConfig {
            cohort: self.cohort.path.clone(),
            fm: self.fm.path.clone(),
            out: out.into(),
            options: self.options.clone(),
            device: self.device.open().map_err(|e| PipelineError::stage(name, e))?,
            force: true,
        };
        let report = train::run(&cfg, &mut callback(bar)).map_err(|e| PipelineError::stage(name, e))?;
        Ok(json!({
            "metrics": report.evaluation,
            "bytes_up": report.comm.bytes_up,
            "bytes_down": report.comm.bytes_down,
        }))
    }
}
