//! The reports of an audit (issue 5, "Reports"): `report.json` holds every number (schema in the crate README),
//! `report.csv` one row per model/attribute/group/metric, `report.md` a short summary a clinician can read, and
//! `report.html` one self-contained page with SVG charts. A `manifest.json` lists them with their sha256.

mod csv;
mod html;
mod markdown;
mod svg;

use std::path::{Path, PathBuf};

use cmr_core::atomic;
use cmr_core::manifest::Manifest;

use crate::audit::{Evaluation, ModelAudit};
use crate::compare::Comparison;
use crate::error::Result;
use crate::examples::Example;
use crate::stage::AuditConfig;

/// Version tag of the `report.json` schema.
pub const SCHEMA: &str = "cmr-debias.audit-report.v1";
/// File names inside the output folder.
pub const REPORT_JSON: &str = "report.json";
/// See [`REPORT_JSON`].
pub const REPORT_CSV: &str = "report.csv";
/// See [`REPORT_JSON`].
pub const REPORT_MD: &str = "report.md";
/// See [`REPORT_JSON`].
pub const REPORT_HTML: &str = "report.html";

/// Everything an audit found; serialized as `report.json`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Report {
    /// [`SCHEMA`].
    pub schema: &'static str,
    /// The resolved configuration.
    pub config: AuditConfig,
    /// The files read, with their sha256.
    pub inputs: Vec<InputFile>,
    /// Subjects audited.
    pub subjects: usize,
    /// One audit per model.
    pub models: Vec<ModelAudit>,
    /// With `--compare`: the changes from the first model to the second.
    pub comparison: Option<Comparison>,
    /// With `--examples`: synthetic subjects shown at the top of the HTML report.
    pub examples: Vec<Example>,
}

/// A file the audit read.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InputFile {
    /// `predictions`, `compare`, `cohort` or `examples`.
    pub role: &'static str,
    /// Its path as given.
    pub path: PathBuf,
    /// sha256 of its bytes.
    pub sha256: String,
}

impl Report {
    /// Assembles the report.
    pub fn new(
        config: AuditConfig,
        inputs: Vec<InputFile>,
        subjects: usize,
        evaluation: Evaluation,
        examples: Vec<Example>,
    ) -> Self {
        let (models, comparison) = (evaluation.models, evaluation.comparison);
        Self { schema: SCHEMA, config, inputs, subjects, models, comparison, examples }
    }

    /// Writes the four reports and `manifest.json` into `dir` (each file atomically).
    pub fn write(&self, dir: &Path) -> Result<()> {
        atomic::write_json(&dir.join(REPORT_JSON), self)?;
        atomic::write_bytes(&dir.join(REPORT_CSV), &csv::render(self))?;
        atomic::write_bytes(&dir.join(REPORT_MD), markdown::render(self).as_bytes())?;
        atomic::write_bytes(&dir.join(REPORT_HTML), html::render(self).as_bytes())?;
        Manifest::build(dir)?.write(dir)?;
        Ok(())
    }
}

/// Number formats shared by the Markdown and HTML reports.
mod text {
    use crate::bootstrap::Estimate;

    /// `0.812`, or `n/a`.
    pub fn number(v: Option<f64>) -> String {
        v.map_or_else(|| "n/a".into(), |v| format!("{v:.3}"))
    }

    /// `+0.012`, or `n/a`.
    pub fn signed(v: Option<f64>) -> String {
        v.map_or_else(|| "n/a".into(), |v| format!("{v:+.3}"))
    }

    /// `0.812 [0.790, 0.834]`; `0.812` without an interval; `n/a (reason)` when undefined.
    pub fn estimate(e: &Estimate) -> String {
        with_interval(e, number)
    }

    /// As [`estimate`], signed: for changes.
    pub fn change(e: &Estimate) -> String {
        with_interval(e, signed)
    }

    fn with_interval(e: &Estimate, f: fn(Option<f64>) -> String) -> String {
        match (e.value, e.ci_low, e.ci_high) {
            (None, ..) => format!("n/a ({})", e.reason.map(|r| r.to_string()).unwrap_or_default()),
            (Some(v), Some(low), Some(high)) => format!("{} [{}, {}]", f(Some(v)), f(Some(low)), f(Some(high))),
            (Some(v), ..) => f(Some(v)),
        }
    }

    /// `= 0.042`, or `< 0.001`.
    pub fn p_value(p: f64) -> String {
        if p < 0.001 {
            "< 0.001".into()
        } else {
            format!("= {p:.3}")
        }
    }

    /// `95%`.
    pub fn percent(level: f64) -> String {
        format!("{}%", (level * 1000.0).round() / 10.0)
    }
}
