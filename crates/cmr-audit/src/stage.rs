//! The audit stage as a library call: `run(&AuditConfig)` reads the predictions (and the cohort, and the compared
//! predictions), audits them and writes the reports into `out` atomically (DESIGN.md, stage 5 "audit").

use std::path::{Path, PathBuf};

use cmr_core::atomic::OutputDir;
use cmr_core::cohort::COHORT_PARQUET;

use crate::attributes;
use crate::audit::{self, Data, Settings};
use crate::error::{AuditError, Result};
use crate::groups::Grouping;
use crate::input::{Predictions, RESERVED};
use crate::report::{InputFile, Report};

/// Attributes audited when `--by` is not given.
pub const DEFAULT_BY: [&str; 4] = ["sex", "age_band", "bmi_class", "site"];
/// Label of the single model without `--compare`.
pub const DEFAULT_LABEL: &str = "model";
/// Labels of the two models with `--compare`.
pub const DEFAULT_COMPARE_LABELS: [&str; 2] = ["baseline", "augmented"];

/// Everything the audit stage needs; echoed as `config` in `report.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AuditConfig {
    /// Predictions file (CSV or Parquet); the baseline of a comparison.
    pub predictions: PathBuf,
    /// Output folder (must not exist unless `force`).
    pub out: PathBuf,
    /// Cohort folder whose `cohort.parquet` supplies the attributes by `subject_id`; `None`: the attributes are
    /// columns of the predictions file.
    pub cohort: Option<PathBuf>,
    /// Attribute columns to group by; default [`DEFAULT_BY`].
    pub by: Vec<String>,
    /// Also audit the full cross of the `by` attributes. Default false.
    pub intersections: bool,
    /// Predictions of a second model on the same subjects (the candidate of a comparison); `None`: no comparison.
    pub compare: Option<PathBuf>,
    /// Model labels, one per model; empty: [`DEFAULT_LABEL`], or [`DEFAULT_COMPARE_LABELS`] with `compare`.
    pub labels: Vec<String>,
    /// Bootstrap replicates; default 1000; 0 gives point estimates only (null intervals).
    pub bootstrap: usize,
    /// Root seed of the bootstrap streams. Default 0.
    pub seed: u64,
    /// Coverage of the percentile intervals; default 0.95.
    pub confidence: f64,
    /// Groups with fewer subjects are flagged `small` (and kept); default 20.
    pub min_group_size: usize,
    /// Synthetic folder (`diffusion generate`'s output) whose previews and prompts open the HTML report; `None`:
    /// no examples.
    pub examples: Option<PathBuf>,
    /// Replace an existing output folder. Default false.
    #[serde(skip)]
    pub force: bool,
}

impl AuditConfig {
    /// The defaults for auditing `predictions` into `out`.
    pub fn new(predictions: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        Self {
            predictions: predictions.into(),
            out: out.into(),
            cohort: None,
            by: DEFAULT_BY.map(String::from).to_vec(),
            intersections: false,
            compare: None,
            labels: Vec::new(),
            bootstrap: 1000,
            seed: 0,
            confidence: 0.95,
            min_group_size: 20,
            examples: None,
            force: false,
        }
    }

    /// The configuration with defaults filled in (labels), after checking values and flag interactions.
    pub fn resolved(&self) -> Result<Self> {
        let config = |message: String| Err(AuditError::Config(message));
        if !(self.confidence > 0.0 && self.confidence < 1.0) {
            return config(format!("--confidence must lie strictly between 0 and 1, got {}", self.confidence));
        }
        if self.by.is_empty() {
            return config("--by needs at least one attribute column".into());
        }
        for (i, name) in self.by.iter().enumerate() {
            if name.trim().is_empty() || RESERVED.contains(&name.as_str()) {
                return config(format!(
                    "--by: {name:?} is not an attribute column ({} are reserved)",
                    RESERVED.join(", ")
                ));
            }
            if self.by[..i].contains(name) {
                return config(format!("--by: {name:?} is given twice"));
            }
        }
        let models = 1 + usize::from(self.compare.is_some());
        let labels: Vec<String> = match (self.labels.is_empty(), models) {
            (true, 1) => vec![DEFAULT_LABEL.into()],
            (true, _) => DEFAULT_COMPARE_LABELS.map(String::from).to_vec(),
            (false, _) => self.labels.clone(),
        };
        if labels.len() != models {
            let hint = if models == 1 { "; two labels need --compare" } else { "" };
            return config(format!("--labels: expected {models} label(s), got {}{hint}", labels.len()));
        }
        if labels.iter().any(|l| l.trim().is_empty()) || (models == 2 && labels[0] == labels[1]) {
            return config(format!("--labels must be non-empty and distinct, got {}", labels.join(",")));
        }
        Ok(Self { labels, ..self.clone() })
    }

    fn settings(&self) -> Settings {
        Settings {
            bootstrap: self.bootstrap,
            seed: self.seed,
            confidence: self.confidence,
            min_group_size: self.min_group_size,
        }
    }
}

/// Runs the audit and writes `report.json`, `report.csv`, `report.md`, `report.html` and `manifest.json` into
/// `cfg.out`. On any error nothing is left behind.
pub fn run(cfg: &AuditConfig) -> Result<Report> {
    // 1. check the configuration; stage the output folder (removed again on error)
    let cfg = cfg.resolved()?;
    let out = OutputDir::create(&cfg.out, cfg.force)?;
    // 2. read and validate the inputs
    let predictions = Predictions::read(&cfg.predictions)?;
    let mut inputs = vec![InputFile::of("predictions", &predictions)];
    let mut models = vec![predictions.model(&cfg.labels[0])];
    if let Some(path) = &cfg.compare {
        let other = Predictions::read(path)?;
        models.push(other.model_aligned_to(&predictions, &cfg.labels[1])?);
        inputs.push(InputFile::of("compare", &other));
    }
    // 3. attributes (joined from the cohort) and groups
    let attributes = attributes::resolve(&predictions, cfg.cohort.as_deref(), &cfg.by)?;
    if let Some(dir) = &cfg.cohort {
        inputs.push(InputFile::read("cohort", &dir.join(COHORT_PARQUET))?);
    }
    let groupings = Grouping::all(&attributes, cfg.intersections);
    // 4. audit
    let data = Data { y_true: predictions.y_true.clone(), models };
    let evaluation = audit::evaluate(&data, &groupings, &cfg.settings());
    let examples = cfg.examples.as_deref().map(crate::examples::read).transpose()?.unwrap_or_default();
    if let Some(dir) = &cfg.examples {
        inputs.push(InputFile::read("examples", &dir.join(COHORT_PARQUET))?);
    }
    let report = Report::new(cfg, inputs, predictions.len(), evaluation, examples);
    // 5. write
    report.write(out.path())?;
    out.commit()?;
    Ok(report)
}

impl InputFile {
    fn of(role: &'static str, predictions: &Predictions) -> Self {
        Self { role, path: predictions.path.clone(), sha256: predictions.sha256.clone() }
    }

    fn read(role: &'static str, path: &Path) -> Result<Self> {
        Ok(Self { role, path: path.into(), sha256: cmr_core::manifest::sha256_file(path)? })
    }
}
