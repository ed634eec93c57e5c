//! Errors of pipeline files and runs. Every variant names where the problem is: the file (or the `--set` flag) and
//! the `[table] key` for configuration errors, the stage and path for run errors.

use std::path::PathBuf;

/// Where a configuration value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The pipeline file.
    File(PathBuf),
    /// A `--set TABLE.KEY=VALUE` flag (the text as given).
    Flag(String),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Flag(text) => write!(f, "--set {text}"),
        }
    }
}

/// Errors of loading a pipeline and running its stages.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// Reading or writing `path` failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The pipeline file is not valid TOML.
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    /// A key no table of that name knows.
    #[error("{origin}: unknown key `{key}` in [{table}]{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownKey { origin: Origin, table: String, key: String, suggestion: Option<String> },
    /// A value of the wrong type or out of range.
    #[error("{origin}: [{table}] {key}: {message}")]
    Invalid { origin: Origin, table: String, key: String, message: String },
    /// A `${VAR}` reference to an environment variable that is not set.
    #[error("{origin}: [{table}] {key}: environment variable {var} is not set; export {var}=/path/to/the/data")]
    UnsetVariable { origin: Origin, table: String, key: String, var: String },
    /// A `--set` flag that is not `TABLE.KEY=VALUE`.
    #[error("--set {0}: expected TABLE.KEY=VALUE (e.g. --set diffusion.generate.steps=10)")]
    BadOverride(String),
    /// `--from` / `--only` names no stage of this pipeline.
    #[error("no stage {name:?} in this pipeline; its stages are {known}")]
    UnknownStage { name: String, known: String },
    /// A selected stage needs an output of a stage that was not run.
    #[error("stage {stage} needs {path}, the output of stage {from}, which is missing; run `cmr-debias run` with `--from {from}` (or without --from/--only)")]
    MissingUpstream { stage: String, path: PathBuf, from: String },
    /// A stage needs an external input (a file or folder outside the run) that is missing.
    #[error("stage {stage} needs {path}, which does not exist")]
    MissingInput { stage: String, path: PathBuf },
    /// A stage's library call failed.
    #[error("stage {stage}: {source}")]
    Stage {
        stage: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// An error of the shared layer (atomic writes, manifests).
    #[error(transparent)]
    Core(#[from] cmr_core::CoreError),
}

impl PipelineError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    /// Wraps a library error of `stage`.
    pub fn stage(stage: &str, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Stage { stage: stage.to_string(), source: Box::new(source) }
    }
}

/// Result of this crate.
pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
