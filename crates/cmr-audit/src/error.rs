//! Typed errors of the audit stage. Every variant names the file (and column) at fault and what was expected, so
//! the CLI prints one message a user can act on; nothing is written when one is returned.

use std::fmt::Write as _;
use std::path::PathBuf;

use cmr_core::CoreError;

/// Result with [`AuditError`].
pub type Result<T, E = AuditError> = std::result::Result<T, E>;

/// Errors of reading, validating and auditing predictions.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// An I/O, table or output-folder error from `cmr-core`.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// The file holds no rows.
    #[error("{path}: the table is empty (no rows); a predictions file needs a header and at least one subject")]
    Empty { path: PathBuf },
    /// A required column is absent.
    #[error(
        "{path}: missing column `{column}`; a predictions file has subject_id, y_true, y_pred and optionally y_score"
    )]
    MissingColumn { path: PathBuf, column: String },
    /// A value of `column` is not what was expected.
    #[error("{path}: column `{column}`: expected {expected}, got {got}")]
    InvalidValue { path: PathBuf, column: String, expected: String, got: String },
    /// `subject_id` is not unique.
    #[error("{path}: column `subject_id`: duplicate subject ids {}", list(ids))]
    DuplicateSubjects { path: PathBuf, ids: Vec<String> },
    /// Subjects of the predictions are absent from the cohort.
    #[error("{cohort}: {} subject(s) of {predictions} are not in the cohort: {}", ids.len(), list(ids))]
    MissingFromCohort { predictions: PathBuf, cohort: PathBuf, ids: Vec<String> },
    /// A `--by` column exists in no input.
    #[error("--by column `{column}` is not a column of {sources}; available: {}", list(available))]
    UnknownAttribute { column: String, sources: String, available: Vec<String> },
    /// An attribute is in both the predictions and the cohort, with different values.
    #[error(transparent)]
    AttributeConflict(Box<AttributeConflict>),
    /// The two prediction files of a comparison do not hold the same subjects.
    #[error("{path}: column `subject_id`: the compared files must hold the same subjects; {detail}")]
    SubjectsDiffer { path: PathBuf, detail: String },
    /// The two prediction files of a comparison disagree on a subject's true label.
    #[error("{path}: column `y_true`: subject {subject} is {got} here but {expected} in {other}")]
    LabelsDiffer { path: PathBuf, other: PathBuf, subject: String, expected: u8, got: u8 },
    /// The configuration is inconsistent (flag values or interactions).
    #[error("{0}")]
    Config(String),
}

/// Details of [`AuditError::AttributeConflict`] (boxed: the error type stays small).
#[derive(Debug, thiserror::Error)]
#[error(
    "{predictions}: column `{column}` is {ours:?} for subject {subject} but the cohort {cohort} says {theirs:?}; \
     drop the column from the predictions or fix it"
)]
pub struct AttributeConflict {
    /// The predictions file.
    pub predictions: PathBuf,
    /// The cohort table.
    pub cohort: PathBuf,
    /// The attribute column.
    pub column: String,
    /// The first subject whose values differ.
    pub subject: String,
    /// Its value in the predictions.
    pub ours: String,
    /// Its value in the cohort.
    pub theirs: String,
}

/// `a, b, c` for up to ten items, then `… and N more`.
pub(crate) fn list(items: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = items.iter().take(SHOWN).map(String::as_str).collect::<Vec<_>>().join(", ");
    if items.len() > SHOWN {
        let _ = write!(text, " … and {} more", items.len() - SHOWN);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_id_lists_are_cut_after_ten() {
        let ids: Vec<String> = (0..13).map(|i| format!("s{i}")).collect();
        let err = AuditError::DuplicateSubjects { path: "p.csv".into(), ids }.to_string();
        assert_eq!(
            err,
            "p.csv: column `subject_id`: duplicate subject ids s0, s1, s2, s3, s4, s5, s6, s7, s8, s9 … and 3 more"
        );
    }
}
