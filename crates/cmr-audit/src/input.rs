//! Prediction files (issue 5, "Input"): a CSV or Parquet table (read by `cmr_core::table`) with `subject_id`, `y_true` (0/1), `y_pred` (0/1),
//! optionally `y_score` (a probability in [0, 1]) and attribute columns. Every value is checked before any work;
//! a bad one is reported with the file, the column, the subject and its data row (1-based, header excluded).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use cmr_core::table::{read_table, text_column};
use polars::prelude::*;

use crate::audit::Model;
use crate::error::{list, AuditError, Result};

/// Column of subject ids.
pub const SUBJECT_ID: &str = "subject_id";
/// Column of true labels.
pub const Y_TRUE: &str = "y_true";
/// Column of predicted labels.
pub const Y_PRED: &str = "y_pred";
/// Optional column of predicted probabilities.
pub const Y_SCORE: &str = "y_score";
/// Columns that are never attributes.
pub const RESERVED: [&str; 4] = [SUBJECT_ID, Y_TRUE, Y_PRED, Y_SCORE];

/// A validated predictions file.
#[derive(Debug, Clone)]
pub struct Predictions {
    /// The file.
    pub path: PathBuf,
    /// sha256 of its bytes.
    pub sha256: String,
    /// Subject ids, unique.
    pub subject_id: Vec<String>,
    /// True labels.
    pub y_true: Vec<bool>,
    /// Predicted labels.
    pub y_pred: Vec<bool>,
    /// Predicted probabilities of the positive class, when the file has them.
    pub y_score: Option<Vec<f64>>,
    frame: DataFrame,
}

impl Predictions {
    /// Reads and validates `path` (`.csv` or `.parquet`).
    pub fn read(path: &Path) -> Result<Self> {
        let frame = read_table(path)?;
        if frame.height() == 0 {
            return Err(AuditError::Empty { path: path.into() });
        }
        for column in [SUBJECT_ID, Y_TRUE, Y_PRED] {
            if frame.column(column).is_err() {
                return Err(AuditError::MissingColumn { path: path.into(), column: column.into() });
            }
        }
        let subject_id = required_text(&frame, path, SUBJECT_ID)?;
        check_unique(&subject_id, path)?;
        let column = Column { frame: &frame, path, ids: &subject_id };
        let y_true = column.labels(Y_TRUE)?;
        let y_pred = column.labels(Y_PRED)?;
        let y_score = match frame.column(Y_SCORE) {
            Ok(_) => Some(column.numbers(Y_SCORE, "a probability in [0, 1]", |v| (0.0..=1.0).contains(&v))?),
            Err(_) => None,
        };
        let sha256 = cmr_core::manifest::sha256_file(path)?;
        Ok(Self { path: path.into(), sha256, subject_id, y_true, y_pred, y_score, frame })
    }

    /// Number of subjects.
    pub fn len(&self) -> usize {
        self.subject_id.len()
    }

    /// Whether the file has no subjects (never true for a file that [`Predictions::read`] accepted).
    pub fn is_empty(&self) -> bool {
        self.subject_id.is_empty()
    }

    /// Names of the attribute columns (every column but the reserved ones).
    pub fn attribute_columns(&self) -> Vec<String> {
        let names = self.frame.get_column_names();
        names.into_iter().filter(|n| !RESERVED.contains(&n.as_str())).map(|n| n.to_string()).collect()
    }

    /// The attribute column `name` as text, or `None` when the file has no such (non-reserved) column.
    pub fn attribute(&self, name: &str) -> Result<Option<Vec<Option<String>>>> {
        if RESERVED.contains(&name) || self.frame.column(name).is_err() {
            return Ok(None);
        }
        Ok(Some(text_column(&self.frame, &self.path, name)?))
    }

    /// The model of this file, labelled `label`.
    pub fn model(&self, label: &str) -> Model {
        Model { label: label.into(), y_pred: self.y_pred.clone(), y_score: self.y_score.clone() }
    }

    /// The model of this file in the subject order of `base`, after checking that both files hold the same
    /// subjects with the same `y_true` (a comparison is paired by subject).
    pub fn model_aligned_to(&self, base: &Predictions, label: &str) -> Result<Model> {
        let position: HashMap<&str, usize> =
            self.subject_id.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
        let missing: Vec<String> =
            base.subject_id.iter().filter(|id| !position.contains_key(id.as_str())).cloned().collect();
        let ours: HashSet<&str> = base.subject_id.iter().map(String::as_str).collect();
        let extra: Vec<String> = self.subject_id.iter().filter(|id| !ours.contains(id.as_str())).cloned().collect();
        if !missing.is_empty() || !extra.is_empty() {
            let mut detail = Vec::new();
            if !missing.is_empty() {
                detail.push(format!(
                    "{} subject(s) of {} are missing here: {}",
                    missing.len(),
                    base.path.display(),
                    list(&missing)
                ));
            }
            if !extra.is_empty() {
                detail.push(format!("{} subject(s) are only here: {}", extra.len(), list(&extra)));
            }
            return Err(AuditError::SubjectsDiffer { path: self.path.clone(), detail: detail.join("; ") });
        }
        let order: Vec<usize> = base.subject_id.iter().map(|id| position[id.as_str()]).collect();
        for (b, &i) in order.iter().enumerate() {
            if self.y_true[i] != base.y_true[b] {
                return Err(AuditError::LabelsDiffer {
                    path: self.path.clone(),
                    other: base.path.clone(),
                    subject: base.subject_id[b].clone(),
                    expected: u8::from(base.y_true[b]),
                    got: u8::from(self.y_true[i]),
                });
            }
        }
        Ok(Model {
            label: label.into(),
            y_pred: order.iter().map(|&i| self.y_pred[i]).collect(),
            y_score: self.y_score.as_ref().map(|s| order.iter().map(|&i| s[i]).collect()),
        })
    }
}

/// A column as text with a value in every row.
fn required_text(frame: &DataFrame, path: &Path, name: &str) -> Result<Vec<String>> {
    text_column(frame, path, name)?
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            v.filter(|s| !s.trim().is_empty()).ok_or_else(|| AuditError::InvalidValue {
                path: path.into(),
                column: name.into(),
                expected: "a value in every row".into(),
                got: format!("an empty value in row {}", i + 1),
            })
        })
        .collect()
}

fn check_unique(ids: &[String], path: &Path) -> Result<()> {
    let mut seen = HashSet::new();
    let mut duplicates: Vec<String> = Vec::new();
    for id in ids {
        if !seen.insert(id.as_str()) && !duplicates.contains(id) {
            duplicates.push(id.clone());
        }
    }
    if duplicates.is_empty() {
        Ok(())
    } else {
        Err(AuditError::DuplicateSubjects { path: path.into(), ids: duplicates })
    }
}

/// A numeric column of a predictions file, with the subject ids for messages.
struct Column<'a> {
    frame: &'a DataFrame,
    path: &'a Path,
    ids: &'a [String],
}

impl Column<'_> {
    /// A 0/1 column.
    fn labels(&self, name: &str) -> Result<Vec<bool>> {
        let values = self.numbers(name, "0 or 1", |v| v == 0.0 || v == 1.0)?;
        Ok(values.into_iter().map(|v| v == 1.0).collect())
    }

    /// A numeric column whose every value passes `valid`.
    fn numbers(&self, name: &str, expected: &str, valid: impl Fn(f64) -> bool) -> Result<Vec<f64>> {
        let invalid = |got: String| AuditError::InvalidValue {
            path: self.path.into(),
            column: name.into(),
            expected: expected.into(),
            got,
        };
        let at = |i: usize| format!("for subject {} (row {})", self.ids[i], i + 1);
        let column = self.frame.column(name).expect("checked by the caller");
        let parsed: Vec<Option<f64>> = match column.dtype() {
            DataType::String => column
                .str()
                .expect("a String column")
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    v.map(|s| s.trim().parse::<f64>().map_err(|_| invalid(format!("{s:?} {}", at(i))))).transpose()
                })
                .collect::<Result<_>>()?,
            dtype if dtype.is_primitive_numeric() || dtype.is_bool() => column
                .cast(&DataType::Float64)
                .map_err(|e| invalid(e.to_string()))?
                .f64()
                .expect("cast to Float64")
                .iter()
                .collect(),
            dtype => return Err(invalid(format!("a column of type {dtype}"))),
        };
        parsed
            .into_iter()
            .enumerate()
            .map(|(i, v)| match v {
                Some(v) if valid(v) => Ok(v),
                Some(v) => Err(invalid(format!("{v} {}", at(i)))),
                None => Err(invalid(format!("an empty value {}", at(i)))),
            })
            .collect()
    }
}
