//! Typed errors shared by the library crates. Every variant names the file (and field) it is about, so the CLI can
//! print one message a user can act on.

use std::path::PathBuf;

/// Result with [`CoreError`].
pub type Result<T, E = CoreError> = std::result::Result<T, E>;

/// Errors raised while reading, validating or writing cohort files.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// An I/O operation on `path` failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A value in `path` (at `field`) is not what was expected.
    #[error("{path}: field `{field}`: expected {expected}, got {got}")]
    InvalidValue { path: PathBuf, field: String, expected: String, got: String },
    /// A required field is absent.
    #[error("{path}: missing field `{field}`{hint}")]
    MissingField { path: PathBuf, field: String, hint: String },
    /// The output exists and `--force` was not given.
    #[error("{path}: output already exists; pass --force to replace it")]
    OutputExists { path: PathBuf },
    /// A table could not be read or written.
    #[error("{path}: {message}")]
    Table { path: PathBuf, message: String },
    /// A manifest entry does not match the file on disk.
    #[error("{path}: sha256 mismatch (manifest {expected}, file {got})")]
    ChecksumMismatch { path: PathBuf, expected: String, got: String },
}

impl CoreError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// A value of `field` in `path` that is not `expected`.
    pub fn invalid(
        path: impl Into<PathBuf>,
        field: impl Into<String>,
        expected: impl Into<String>,
        got: impl ToString,
    ) -> Self {
        Self::InvalidValue { path: path.into(), field: field.into(), expected: expected.into(), got: got.to_string() }
    }

    /// `field` is absent from `path`.
    pub fn missing(path: impl Into<PathBuf>, field: impl Into<String>) -> Self {
        Self::MissingField { path: path.into(), field: field.into(), hint: String::new() }
    }
}
