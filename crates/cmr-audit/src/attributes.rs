//! The attribute columns of an audit (`--by`): taken from the predictions file or, with `--cohort DIR`, joined from
//! the cohort table by `subject_id` (issue 5, "Input"). A column in both must agree subject by subject — the audit
//! never silently prefers one source.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use cmr_core::cohort::{self, COHORT_PARQUET};
use cmr_core::table::text_column;
use polars::prelude::DataFrame;

use crate::error::{AttributeConflict, AuditError, Result};
use crate::groups::Attribute;
use crate::input::{Predictions, SUBJECT_ID};

/// The `--by` columns for the subjects of `predictions`, in `by` order.
pub fn resolve(predictions: &Predictions, cohort: Option<&Path>, by: &[String]) -> Result<Vec<Attribute>> {
    let cohort = cohort.map(|dir| CohortColumns::read(dir, predictions)).transpose()?;
    by.iter()
        .map(|name| {
            let ours = predictions.attribute(name)?;
            let theirs = cohort.as_ref().map(|c| c.attribute(name)).transpose()?.flatten();
            let values = match (ours, theirs, &cohort) {
                (Some(ours), Some(theirs), Some(cohort)) => {
                    check_agree(predictions, &cohort.path, name, &ours, &theirs)?;
                    theirs
                }
                (Some(values), _, _) | (None, Some(values), _) => values,
                (None, None, _) => return Err(unknown(name, predictions, cohort.as_ref())),
            };
            Ok(Attribute { name: name.clone(), values })
        })
        .collect()
}

/// The cohort table, with the cohort row of each predicted subject.
struct CohortColumns {
    path: PathBuf,
    frame: DataFrame,
    rows: Vec<usize>,
}

impl CohortColumns {
    fn read(dir: &Path, predictions: &Predictions) -> Result<Self> {
        let path = dir.join(COHORT_PARQUET);
        let frame = cohort::read_frame(&path)?;
        cohort::check_schema(&frame, &path)?;
        let ids = text_column(&frame, &path, SUBJECT_ID)?;
        let row_of: HashMap<&str, usize> =
            ids.iter().enumerate().filter_map(|(row, id)| id.as_deref().map(|id| (id, row))).collect();
        let missing: Vec<String> =
            predictions.subject_id.iter().filter(|id| !row_of.contains_key(id.as_str())).cloned().collect();
        if !missing.is_empty() {
            return Err(AuditError::MissingFromCohort {
                predictions: predictions.path.clone(),
                cohort: path,
                ids: missing,
            });
        }
        let rows = predictions.subject_id.iter().map(|id| row_of[id.as_str()]).collect();
        Ok(Self { path, frame, rows })
    }

    fn columns(&self) -> Vec<String> {
        let names = self.frame.get_column_names();
        names.into_iter().filter(|n| n.as_str() != SUBJECT_ID).map(|n| n.to_string()).collect()
    }

    fn attribute(&self, name: &str) -> Result<Option<Vec<Option<String>>>> {
        if name == SUBJECT_ID || self.frame.column(name).is_err() {
            return Ok(None);
        }
        let values = text_column(&self.frame, &self.path, name)?;
        Ok(Some(self.rows.iter().map(|&row| values[row].clone()).collect()))
    }
}

fn check_agree(
    predictions: &Predictions,
    cohort: &Path,
    name: &str,
    ours: &[Option<String>],
    theirs: &[Option<String>],
) -> Result<()> {
    let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "null".into());
    match ours.iter().zip(theirs).position(|(a, b)| a != b) {
        None => Ok(()),
        Some(i) => Err(AuditError::AttributeConflict(Box::new(AttributeConflict {
            predictions: predictions.path.clone(),
            cohort: cohort.into(),
            column: name.into(),
            subject: predictions.subject_id[i].clone(),
            ours: show(&ours[i]),
            theirs: show(&theirs[i]),
        }))),
    }
}

fn unknown(name: &str, predictions: &Predictions, cohort: Option<&CohortColumns>) -> AuditError {
    let mut available = predictions.attribute_columns();
    let mut sources = predictions.path.display().to_string();
    if let Some(cohort) = cohort {
        let extra: Vec<String> = cohort.columns().into_iter().filter(|c| !available.contains(c)).collect();
        available.extend(extra);
        sources = format!("{sources} or {}", cohort.path.display());
    }
    if available.is_empty() {
        available.push("none; pass --cohort DIR to join attributes from a cohort".into());
    }
    AuditError::UnknownAttribute { column: name.into(), sources, available }
}
