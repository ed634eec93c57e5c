//! Typed errors of the balance stage. Every variant names the file (and field or line) it is about and says what was
//! expected, so the CLI prints one message a user can act on (STYLE.md (f)).

use std::path::PathBuf;

use cmr_core::CoreError;

/// Result with [`BalanceError`].
pub type Result<T, E = BalanceError> = std::result::Result<T, E>;

/// Errors of `report`, `plan` and `merge`.
#[derive(Debug, thiserror::Error)]
pub enum BalanceError {
    /// Reading or writing a cohort file failed, or a file broke the cohort conventions.
    #[error(transparent)]
    Core(#[from] CoreError),
    /// A stratum key is not a cohort column.
    #[error("{path}: unknown stratum column `{column}`; expected one of {available}")]
    UnknownColumn { path: PathBuf, column: String, available: String },
    /// A numeric stratum key has no binning in the attributes file.
    #[error(
        "{path}: stratum column `{column}` is numeric and the attributes file bins only `age` (age_band) and `bmi` \
         (bmi_class); use a text column or one of those"
    )]
    NoBinning { path: PathBuf, column: String },
    /// A stratum key is null in some of the stratified rows.
    #[error(
        "{path}: field `{column}`: a stratum key needs a value in every {scope} row, but {rows} rows are null \
         (subjects {subjects}); fill the column or choose other --by keys"
    )]
    NullKeys { path: PathBuf, column: String, scope: String, rows: usize, subjects: String },
    /// The keys make more strata than the stage handles.
    #[error("{path}: the keys {keys} make {strata} strata (more than {limit}); choose coarser --by keys")]
    TooManyStrata { path: PathBuf, keys: String, strata: u128, limit: usize },
    /// A counts or reference file names a stratum that the cohort does not have.
    #[error("{path}: line {line}: stratum {stratum} does not exist: {problem}")]
    UnknownStratum { path: PathBuf, line: u64, stratum: String, problem: String },
    /// An exact target is below the current count (over-sampling never removes subjects).
    #[error(
        "{path}: stratum {stratum}: target {target} is below its current count {current}; over-sampling cannot remove \
         subjects (use a target ≥ {current})"
    )]
    TargetBelowCurrent { path: PathBuf, stratum: String, target: u64, current: u64 },
    /// A `--strategy` value that does not parse.
    #[error("--strategy {got:?}: expected {expected}")]
    InvalidStrategy { got: String, expected: String },
    /// A numeric option outside its range.
    #[error("{option}: expected {expected}, got {got}")]
    InvalidOption { option: &'static str, expected: &'static str, got: String },
    /// A synthetic row whose parent is not a real train subject of the cohort (leakage guard).
    #[error(
        "{path}: synthetic subject {subject}: field `parent_subject`: {parent:?} {problem}; synthetic subjects may only \
         be made from real train subjects of the cohort"
    )]
    Leakage { path: PathBuf, subject: String, parent: String, problem: String },
    /// A synthetic tensor whose bytes do not match the row's `tensor_sha256`.
    #[error("{path}: synthetic subject {subject}: field `tensor_sha256`: expected {expected} (the file's sha256), got {got}")]
    TensorMismatch { path: PathBuf, subject: String, expected: String, got: String },
}

impl BalanceError {
    /// A value of `field` in `path` that is not `expected` (a [`CoreError::InvalidValue`]).
    pub(crate) fn invalid(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        expected: impl Into<String>,
        got: impl ToString,
    ) -> Self {
        CoreError::invalid(path, field, expected, got).into()
    }
}
