//! Typed errors of `cmr-io`. Every variant names the file it is about and the field (header field, metadata column,
//! config key, tensor name) that is wrong, with what was expected and what was found, so the CLI can print one
//! message a user can act on (DESIGN.md, "Bad input gets a clear error naming the file, the field and what was
//! expected").

use std::path::PathBuf;

use cmr_core::CoreError;

/// Result with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors raised while reading datasets, NIfTI files and subject tensors, or while writing outputs.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file-system operation on `path` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A NIfTI file is malformed (truncated stream, bad header, dims that disagree with the data size, …).
    #[error("{path}: NIfTI field `{field}`: {message}")]
    Nifti {
        /// The NIfTI file.
        path: PathBuf,
        /// Header field or part of the file (`gzip stream`, `dim`, `datatype`, `vox_offset`, …).
        field: String,
        /// What is wrong, with the expected and found values.
        message: String,
    },
    /// A value (metadata cell, config key, voxel, shape, tensor) is not what was expected.
    #[error("{path}: field `{field}`: expected {expected}, got {got}")]
    Invalid {
        /// The file holding the value.
        path: PathBuf,
        /// The field, column, key or tensor name.
        field: String,
        /// What a valid value looks like.
        expected: String,
        /// The value found (with its row or subject when useful).
        got: String,
    },
    /// A required field, column or key is absent.
    #[error("{path}: missing field `{field}`{hint}")]
    Missing {
        /// The file that lacks it.
        path: PathBuf,
        /// The field, column or key.
        field: String,
        /// Extra context (starts with `; ` when not empty).
        hint: String,
    },
    /// A folder holds subject images but the dataset's metadata has no entry for it.
    #[error("{folder}: image folder has no metadata: no `{field}` = {id:?} in {metadata}; add the row or move the folder out of the dataset root")]
    NoMetadata {
        /// The image folder.
        folder: PathBuf,
        /// The metadata file (or the file that should exist).
        metadata: PathBuf,
        /// The key column or file name looked up.
        field: String,
        /// The subject id of the folder.
        id: String,
    },
    /// Nothing is left to ingest.
    #[error("{root}: no {dataset} subjects to ingest ({found} found with images, {excluded} left out by task {task}, {skipped} without images)")]
    NoSubjects {
        /// Dataset root.
        root: PathBuf,
        /// Dataset name.
        dataset: String,
        /// Task name.
        task: String,
        /// Subjects found with images.
        found: usize,
        /// Subjects the task excludes.
        excluded: usize,
        /// Subjects listed without images.
        skipped: usize,
    },
    /// An error from `cmr-core` (cohort table, atomic writes, existing output without `--force`, …).
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl Error {
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
        Self::Invalid { path: path.into(), field: field.into(), expected: expected.into(), got: got.to_string() }
    }

    /// `field` is absent from `path`.
    pub fn missing(path: impl Into<PathBuf>, field: impl Into<String>) -> Self {
        Self::Missing { path: path.into(), field: field.into(), hint: String::new() }
    }

    /// A malformed NIfTI `field` in `path`.
    pub fn nifti(path: impl Into<PathBuf>, field: impl Into<String>, message: impl ToString) -> Self {
        Self::Nifti { path: path.into(), field: field.into(), message: message.to_string() }
    }
}
