//! The unit the runner schedules: a [`Stage`] has a name (its folder under the run folder), a resolved
//! configuration (hashed), the inputs it reads (hashed) and a `run` that writes its output folder by calling one
//! library entry point. Adding a stage to the pipeline is one file implementing this trait plus one line in
//! [`crate::stages::build`].

use std::path::{Path, PathBuf};

use indicatif::ProgressBar;
use serde_json::Value;

use crate::error::Result;
use crate::fingerprint;

/// How an input is fingerprinted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// A file: its sha256.
    File,
    /// A folder a stage wrote: the sha256 of its manifest.
    Folder,
    /// An external dataset folder: the sha256 of its listing (see [`fingerprint::listing`]).
    Dataset,
}

/// One file or folder a stage reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// Where it is.
    pub path: PathBuf,
    /// How it is fingerprinted.
    pub kind: InputKind,
    /// The stage of this pipeline that writes it; `None`: outside the run (a dataset, a model, a table).
    pub from: Option<&'static str>,
}

impl Input {
    /// An input written by stage `from`.
    pub fn upstream(from: &'static str, path: PathBuf, kind: InputKind) -> Self {
        Self { path, kind, from: Some(from) }
    }

    /// An input from outside the run.
    pub fn external(path: PathBuf, kind: InputKind) -> Self {
        Self { path, kind, from: None }
    }

    /// Its fingerprint.
    pub fn fingerprint(&self) -> Result<String> {
        match self.kind {
            InputKind::File => Ok(cmr_core::manifest::sha256_file(&self.path)?),
            InputKind::Folder => fingerprint::folder(&self.path),
            InputKind::Dataset => fingerprint::listing(&self.path),
        }
    }
}

/// A step of the pipeline.
pub trait Stage {
    /// The stage's name: its folder under the run folder and the value of `--from` / `--only`.
    fn name(&self) -> &'static str;

    /// Everything that determines the output besides the inputs' contents, as JSON; its hash decides reruns. Paths
    /// of inputs belong in [`Stage::inputs`], not here.
    fn config(&self) -> Value;

    /// The files and folders the stage reads.
    fn inputs(&self) -> Vec<Input>;

    /// Writes the output folder `out` (replacing an older one atomically; a stage with its own resume state picks
    /// it up), reporting progress on `bar`. Returns the library's report, recorded in `stage.json`.
    fn run(&self, out: &Path, bar: &ProgressBar) -> Result<Value>;
}

/// `report` as JSON (library reports are all `Serialize`).
pub(crate) fn report_json(report: &impl serde::Serialize) -> Value {
    serde_json::to_value(report).unwrap_or(Value::Null)
}

/// Adapts a bar to the libraries' `(done, total)` progress callback.
pub(crate) fn callback(bar: &ProgressBar) -> impl Fn(usize, usize) + Sync + '_ {
    move |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}
