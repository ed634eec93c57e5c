//! `stage.json`: what a finished stage ran with and what it wrote. Written last, atomically, inside the stage's
//! output folder, so it exists only beside a complete output; a stage whose record matches its current config hash
//! and input fingerprints, and whose output files are all present, is skipped.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::fingerprint;

/// File name of the record inside a stage folder.
pub const STAGE_JSON: &str = "stage.json";

/// The contents of `stage.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// Stage name.
    pub stage: String,
    /// sha256 of the canonical JSON of `config`.
    pub config_hash: String,
    /// The resolved configuration.
    pub config: Value,
    /// Input path → fingerprint (sha256; see [`crate::fingerprint`]).
    pub inputs: BTreeMap<String, String>,
    /// sha256 of the output folder's manifest.
    pub output_sha256: String,
    /// Output file (relative to the stage folder) → sha256.
    pub outputs: BTreeMap<String, String>,
    /// Wall-clock seconds of the run.
    pub seconds: f64,
    /// The stage library's report.
    pub report: Value,
}

impl StageRecord {
    /// Reads `dir/stage.json`; `None` when absent or unreadable (then the stage runs).
    pub fn read(dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(dir.join(STAGE_JSON)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Writes `dir/stage.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        Ok(cmr_core::atomic::write_json(&dir.join(STAGE_JSON), self)?)
    }

    /// Whether this record describes the output in `dir` made from `config_hash` and `inputs`.
    pub fn is_current(&self, dir: &Path, config_hash: &str, inputs: &BTreeMap<String, String>) -> bool {
        if self.config_hash != config_hash || self.inputs != *inputs {
            return false;
        }
        fingerprint::folder_manifest(dir).is_ok_and(|listed| {
            fingerprint::files_present(dir, &listed) && fingerprint::manifest_sha256(&listed) == self.output_sha256
        })
    }
}
