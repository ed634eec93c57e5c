//! Example synthetic subjects for the top of the HTML report: the ED/ES preview of a few subjects of a synthetic
//! folder (`diffusion generate`'s output: `cohort.parquet` + `subjects/<stem>/<stem>_preview.png`, images with the
//! conditioning mask's outlines) with their prompts, so a reader sees what the augmented model was trained on.

use std::path::{Path, PathBuf};

use cmr_core::CohortRow;

use crate::error::{AuditError, Result};

/// Most examples shown.
pub const MAX_EXAMPLES: usize = 6;

/// One synthetic subject shown in the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Example {
    /// The synthetic subject.
    pub subject_id: String,
    /// The real train subject whose mask conditioned it.
    pub parent_subject: Option<String>,
    /// The prompt it was generated from.
    pub prompt: String,
    /// Its preview PNG.
    pub preview: PathBuf,
    /// The PNG bytes (embedded in the HTML, not in `report.json`).
    #[serde(skip)]
    pub png: Vec<u8>,
}

/// Up to [`MAX_EXAMPLES`] subjects of the synthetic folder `dir`, spread over the strata: each pick is the subject
/// with a prompt not shown yet that adds the most attribute values (sex, age band, BMI class, label) not shown yet,
/// the first in subject-id order among equals; when the distinct prompts run out, the next subjects in id order.
pub fn read(dir: &Path) -> Result<Vec<Example>> {
    let mut rows = cmr_core::cohort::read(dir)?;
    rows.sort_by(|a, b| a.subject_id.cmp(&b.subject_id));
    let mut chosen: Vec<&CohortRow> = Vec::new();
    while chosen.len() < MAX_EXAMPLES {
        let fresh = rows.iter().filter(|row| !chosen.iter().any(|c| c.prompt == row.prompt));
        // max_by_key keeps the last maximum; reversed, it keeps the first in id order.
        let Some(row) = fresh.rev().max_by_key(|row| new_values(row, &chosen)) else { break };
        chosen.push(row);
    }
    for row in &rows {
        if chosen.len() < MAX_EXAMPLES && !chosen.iter().any(|c| c.subject_id == row.subject_id) {
            chosen.push(row);
        }
    }
    chosen.into_iter().map(|row| example(dir, row)).collect()
}

/// How many of `row`'s sex, age band, BMI class and label no row of `shown` has.
fn new_values(row: &CohortRow, shown: &[&CohortRow]) -> usize {
    [
        shown.iter().all(|s| s.sex != row.sex),
        shown.iter().all(|s| s.age_band != row.age_band),
        shown.iter().all(|s| s.bmi_class != row.bmi_class),
        shown.iter().all(|s| s.label != row.label),
    ]
    .into_iter()
    .filter(|&new| new)
    .count()
}

/// The example of `row`, whose preview lies beside its NIfTI files under `subjects/<stem>/`.
fn example(dir: &Path, row: &CohortRow) -> Result<Example> {
    let stem =
        Path::new(&row.tensor_path).file_stem().and_then(|s| s.to_str()).ok_or_else(|| AuditError::InvalidValue {
            path: dir.join(cmr_core::cohort::COHORT_PARQUET),
            column: "tensor_path".into(),
            expected: "the path of a subject tensor".into(),
            got: format!("{:?} for subject {}", row.tensor_path, row.subject_id),
        })?;
    let preview = dir.join("subjects").join(stem).join(format!("{stem}_preview.png"));
    let png = std::fs::read(&preview).map_err(|e| cmr_core::CoreError::io(&preview, e))?;
    Ok(Example {
        subject_id: row.subject_id.clone(),
        parent_subject: row.parent_subject.clone(),
        prompt: row.prompt.clone(),
        preview,
        png,
    })
}
