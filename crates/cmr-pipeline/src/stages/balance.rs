//! The balance stages: `plan` (how many synthetic subjects each stratum needs, one row per subject;
//! `cmr_balance::plan::run`), `merge` (the generated subjects appended to the train split; `cmr_balance::merge::run`)
//! and `weights` (per-subject sampling weights for the weights arm: `plan` with the `weights` strategy).

use std::path::{Path, PathBuf};

use cmr_balance::merge::MergeConfig;
use cmr_balance::plan::PlanConfig;
use cmr_balance::{Guards, Strategy};
use cmr_core::AttributeBins;
use indicatif::ProgressBar;
use serde_json::{json, Value};

use super::{COHORT, GENERATE, MERGE};
use crate::error::{PipelineError, Result};
use crate::stage::{report_json, Input, InputKind, Stage};

/// `plan` or `weights`: a balance plan of the cohort's train split.
pub struct PlanStage {
    /// `plan` or `weights`.
    pub name: &'static str,
    /// The cohort folder.
    pub cohort: PathBuf,
    /// The strategy (its targets file, if any, is an input).
    pub strategy: Strategy,
    /// Stratum keys.
    pub by: Vec<String>,
    /// Balance within each site.
    pub per_site: bool,
    /// Root seed.
    pub seed: u64,
    /// Guards.
    pub guards: Guards,
    /// Bins and prompt template.
    pub attributes: AttributeBins,
}

impl Stage for PlanStage {
    fn name(&self) -> &'static str {
        self.name
    }

    fn config(&self) -> Value {
        // The strategy by kind only: a targets file's path is an input, hashed by content.
        let strategy = match &self.strategy {
            Strategy::Counts(_) => "counts".to_string(),
            Strategy::Reference(_) => "reference".to_string(),
            other => other.to_string(),
        };
        json!({
            "strategy": strategy,
            "by": self.by,
            "per_site": self.per_site,
            "seed": self.seed,
            "min_real": self.guards.min_real,
            "max_synthetic_ratio": self.guards.max_synthetic_ratio,
            "attributes": self.attributes,
        })
    }

    fn inputs(&self) -> Vec<Input> {
        let mut inputs = vec![Input::upstream(COHORT, self.cohort.clone(), InputKind::Folder)];
        inputs.extend(self.strategy.file().map(|f| Input::external(f.to_path_buf(), InputKind::File)));
        inputs
    }

    fn run(&self, out: &Path, _bar: &ProgressBar) -> Result<Value> {
        let cfg = PlanConfig {
            cohort: self.cohort.clone(),
            out: out.into(),
            strategy: self.strategy.clone(),
            by: self.by.clone(),
            per_site: self.per_site,
            seed: self.seed,
            guards: self.guards,
            attributes: self.attributes.clone(),
            force: true,
        };
        let summary = cmr_balance::plan::run(&cfg).map_err(|e| PipelineError::stage(self.name, e))?;
        Ok(
            json!({ "planned": summary.planned, "shortfall": summary.shortfall, "train_subjects": summary.train_subjects }),
        )
    }
}

/// `merge`: the augmented cohort.
pub struct MergeStage {
    /// The real cohort folder.
    pub cohort: PathBuf,
    /// The synthetic folder.
    pub synthetic: PathBuf,
}

impl Stage for MergeStage {
    fn name(&self) -> &'static str {
        MERGE
    }

    fn config(&self) -> Value {
        json!({})
    }

    fn inputs(&self) -> Vec<Input> {
        vec![
            Input::upstream(COHORT, self.cohort.clone(), InputKind::Folder),
            Input::upstream(GENERATE, self.synthetic.clone(), InputKind::Folder),
        ]
    }

    fn run(&self, out: &Path, _bar: &ProgressBar) -> Result<Value> {
        let cfg = MergeConfig {
            cohort: self.cohort.clone(),
            synthetic: self.synthetic.clone(),
            out: out.into(),
            force: true,
        };
        let report = cmr_balance::merge::run(&cfg).map_err(|e| PipelineError::stage(MERGE, e))?;
        Ok(report_json(&report))
    }
}
