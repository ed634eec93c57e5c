//! Errors of the foundation-model and federated stages. Each names the file, tensor, client or option it is about.

use std::path::PathBuf;

/// Result with [`FedError`].
pub type Result<T, E = FedError> = std::result::Result<T, E>;

/// What can go wrong while pretraining, fine-tuning, federating or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum FedError {
    /// Reading or writing a cohort, manifest or output file failed.
    #[error(transparent)]
    Core(#[from] cmr_core::CoreError),
    /// Reading a subject tensor failed.
    #[error(transparent)]
    Io(#[from] cmr_io::Error),
    /// A tensor operation failed.
    #[error("tensor operation: {0}")]
    Candle(#[from] candle_core::Error),
    /// A checkpoint (a foundation model, a client's private state) could not be saved or loaded.
    #[error(transparent)]
    Checkpoint(#[from] cmr_nn::checkpoint::CheckpointError),
    /// Saving or loading optimizer state failed.
    #[error(transparent)]
    Optim(#[from] cmr_nn::optim::OptimError),
    /// A message between a client and the server could not be encoded or decoded.
    #[error("message {message}: {reason}")]
    Message { message: String, reason: String },
    /// An option has a value that cannot work.
    #[error("option `{option}`: {message}")]
    Option { option: String, message: String },
    /// A subject, client or input file does not fit what the stage needs.
    #[error("{path}: {message}")]
    Input { path: PathBuf, message: String },
}

impl FedError {
    /// A [`FedError::Option`] error.
    pub fn option(option: &str, message: impl Into<String>) -> Self {
        Self::Option { option: option.into(), message: message.into() }
    }

    /// A [`FedError::Input`] error.
    pub fn input(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Self::Input { path: path.into(), message: message.into() }
    }

    /// A [`FedError::Message`] error.
    pub fn message(message: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Message { message: message.into(), reason: reason.into() }
    }
}
