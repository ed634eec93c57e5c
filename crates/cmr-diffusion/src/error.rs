//! Errors of the diffusion stage. Each names the file, subject or option it is about.

use std::path::PathBuf;

/// Result with [`DiffusionError`].
pub type Result<T, E = DiffusionError> = std::result::Result<T, E>;

/// What can go wrong while training, generating or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum DiffusionError {
    /// Reading or writing a cohort, manifest or output file failed.
    #[error(transparent)]
    Core(#[from] cmr_core::CoreError),
    /// Reading or writing a subject tensor, NIfTI or preview failed.
    #[error(transparent)]
    Io(#[from] cmr_io::Error),
    /// A tensor operation failed.
    #[error("tensor operation: {0}")]
    Candle(#[from] candle_core::Error),
    /// A checkpoint or optimizer state could not be saved or loaded.
    #[error(transparent)]
    Checkpoint(#[from] cmr_nn::checkpoint::CheckpointError),
    /// Saving or loading optimizer / EMA state failed.
    #[error(transparent)]
    Optim(#[from] cmr_nn::optim::OptimError),
    /// A noise-schedule configuration or step failed.
    #[error(transparent)]
    Scheduler(#[from] crate::schedulers::SchedulerError),
    /// The text encoder or another model asset could not be found or loaded.
    #[error("{0}")]
    Asset(String),
    /// An option has a value that cannot work.
    #[error("option `{option}`: {message}")]
    Option { option: String, message: String },
    /// A subject or input file does not fit what the stage needs.
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
}

impl DiffusionError {
    /// An [`DiffusionError::Option`] error.
    pub fn option(option: &str, message: impl Into<String>) -> Self {
        Self::Option { option: option.into(), message: message.into() }
    }

    /// An [`DiffusionError::Input`] error.
    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Input { path: path.into(), message: message.into() }
    }
}
