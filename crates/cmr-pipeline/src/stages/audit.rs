//! The audit stage `audit`: `cmr_audit::run` of every arm's test predictions against the baseline's — per-group
//! metrics with bootstrap intervals, disparities, and the before/after comparison — with the attributes joined from
//! the real cohort (every test subject is real). The augmented arm's report shows example synthetic subjects from
//! the `generate` stage.
//!
//! ```text
//! audit/report.html, report.json, …   augmented vs baseline (weights vs baseline without the augmented arm;
//!                                      the baseline alone when it is the only arm)
//! audit/weights/report.html, …         weights vs baseline, when both it and the augmented arm run
//! audit/manifest.json                  every file above
//! ```
//!
//! The reports are written in place, the headline one first (it replaces the whole folder), so a kill leaves a
//! folder without `stage.json`, which the runner reruns.

use std::path::{Path, PathBuf};

use cmr_audit::AuditConfig;
use cmr_core::manifest::Manifest;
use cmr_fed::data::evaluation::PREDICTIONS_CSV;
use indicatif::ProgressBar;
use serde_json::{json, Value};

use super::federated::stage_name;
use super::{AUDIT, COHORT, GENERATE};
use crate::error::{PipelineError, Result};
use crate::stage::{Input, InputKind, Stage};
use crate::tables::Arm;

/// One report: `arm`'s predictions (compared with the baseline's unless it is the baseline) into `folder`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audit {
    /// The arm audited.
    pub arm: Arm,
    /// Sub-folder of the stage folder; `None`: the stage folder itself.
    pub folder: Option<&'static str>,
}

impl Audit {
    /// The reports of a run of `arms` (which include the baseline): each other arm against the baseline, the first
    /// (augmented, else weights) at the top and the next in a folder named after its arm; the baseline alone when
    /// it is the only arm.
    pub fn of(arms: &[Arm]) -> Vec<Self> {
        let mut candidates: Vec<Arm> = arms.iter().copied().filter(|a| *a != Arm::Baseline).collect();
        candidates.sort();
        if candidates.is_empty() {
            return vec![Self { arm: Arm::Baseline, folder: None }];
        }
        candidates.into_iter().enumerate().map(|(i, arm)| Self { arm, folder: (i > 0).then(|| arm.name()) }).collect()
    }

    /// Whether the report shows the generated subjects (only the augmented arm was trained on them).
    fn shows_examples(&self) -> bool {
        self.arm == Arm::Augmented
    }

    /// Model labels in the report: the arms' names.
    fn labels(&self) -> Vec<String> {
        match self.arm {
            Arm::Baseline => vec![Arm::Baseline.name().into()],
            arm => vec![Arm::Baseline.name().into(), arm.name().into()],
        }
    }
}

/// `audit`: the subgroup reports of the arms.
pub struct AuditStage {
    /// `[audit]`'s options, with the seed, resolved (no paths yet).
    pub settings: AuditConfig,
    /// The reports.
    pub audits: Vec<Audit>,
    /// The real cohort (attributes).
    pub cohort: PathBuf,
    /// The run folder (the arms' stage folders are in it).
    pub run_dir: PathBuf,
}

impl AuditStage {
    /// `arm`'s predictions file.
    fn predictions(&self, arm: Arm) -> PathBuf {
        self.run_dir.join(stage_name(arm)).join(PREDICTIONS_CSV)
    }

    /// The synthetic folder of the `generate` stage.
    fn synthetic(&self) -> PathBuf {
        self.run_dir.join(GENERATE)
    }

    /// The arms whose predictions are read.
    fn arms(&self) -> Vec<Arm> {
        let mut arms: Vec<Arm> = self.audits.iter().map(|a| a.arm).chain([Arm::Baseline]).collect();
        arms.sort();
        arms.dedup();
        arms
    }
}

impl Stage for AuditStage {
    fn name(&self) -> &'static str {
        AUDIT
    }

    fn config(&self) -> Value {
        let audits: Vec<Value> =
            self.audits.iter().map(|a| json!({ "labels": a.labels(), "folder": a.folder })).collect();
        json!({ "settings": self.settings, "audits": audits })
    }

    fn inputs(&self) -> Vec<Input> {
        let mut inputs = vec![Input::upstream(COHORT, self.cohort.clone(), InputKind::Folder)];
        inputs.extend(
            self.arms().into_iter().map(|arm| Input::upstream(stage_name(arm), self.predictions(arm), InputKind::File)),
        );
        if self.audits.iter().any(Audit::shows_examples) {
            inputs.push(Input::upstream(GENERATE, self.synthetic(), InputKind::Folder));
        }
        inputs
    }

    fn run(&self, out: &Path, bar: &ProgressBar) -> Result<Value> {
        bar.set_length(self.audits.len() as u64);
        let mut summaries = Vec::new();
        for (i, audit) in self.audits.iter().enumerate() {
            let dir = audit.folder.map_or_else(|| out.to_path_buf(), |folder| out.join(folder));
            let candidate = (audit.arm != Arm::Baseline).then(|| self.predictions(audit.arm));
            let cfg = AuditConfig {
                predictions: self.predictions(Arm::Baseline),
                out: dir,
                cohort: Some(self.cohort.clone()),
                compare: candidate,
                labels: audit.labels(),
                examples: audit.shows_examples().then(|| self.synthetic()),
                force: true,
                ..self.settings.clone()
            };
            let report = cmr_audit::run(&cfg).map_err(|e| PipelineError::stage(AUDIT, e))?;
            summaries.push(json!({
                "labels": audit.labels(),
                "folder": audit.folder,
                "subjects": report.subjects,
                "headline": report.comparison.as_ref().map(|c| &c.headline),
            }));
            bar.set_position(i as u64 + 1);
        }
        // One manifest over every report, so that the record covers the sub-folders too.
        Manifest::build(out)?.write(out)?;
        Ok(Value::Array(summaries))
    }
}
