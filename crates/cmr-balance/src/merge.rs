//! `cmr-debias balance merge`: append generated subjects to the train split of a cohort (issue 4, item 3).
//!
//! The merged cohort folder is self-contained: the cohort's tensors are copied under their own `tensor_path`, the
//! synthetic tensors under `synthetic/<their tensor_path>` (the rows' `tensor_path` says so), so it can be moved,
//! verified and read (`cmr_core::cohort::read`) on its own. Rows: the cohort's rows unchanged and in order (val and
//! test untouched), then the synthetic rows in the synthetic folder's order. The folder also holds `merge.json`
//! ([`MergeReport`]) and `manifest.json`.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use cmr_core::atomic::{self, OutputDir};
use cmr_core::manifest::Manifest;
use cmr_core::{cohort, CoreError, Source, Split};
use serde::Serialize;

use crate::error::{BalanceError, Result};
use crate::synthetic;

/// Folder of the synthetic tensors inside a merged cohort.
pub const SYNTHETIC_DIR: &str = "synthetic";
/// File name of the merge report.
pub const MERGE_JSON: &str = "merge.json";

/// What `merge` does.
#[derive(Debug, Clone)]
pub struct MergeConfig {
    /// Cohort folder.
    pub cohort: PathBuf,
    /// Synthetic folder written by the diffusion stage.
    pub synthetic: PathBuf,
    /// Merged cohort folder to write (must not exist unless `force`).
    pub out: PathBuf,
    /// Replace an existing output folder.
    pub force: bool,
}

/// `merge.json` (also the `--json` output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergeReport {
    /// Cohort folder read.
    pub cohort: PathBuf,
    /// Synthetic folder read.
    pub synthetic: PathBuf,
    /// Synthetic subjects added.
    pub added: usize,
    /// Subjects of the merged cohort.
    pub subjects: usize,
    /// Real train subjects.
    pub train_real: usize,
    /// Synthetic train subjects (including any the cohort already had).
    pub train_synthetic: usize,
    /// Validation subjects (unchanged).
    pub val: usize,
    /// Test subjects (unchanged).
    pub test: usize,
}

/// Merges the synthetic folder into the cohort and writes the merged cohort folder.
pub fn run(cfg: &MergeConfig) -> Result<MergeReport> {
    // 1. read and check both inputs before writing anything
    let mut rows = cohort::read(&cfg.cohort)?;
    if let Some(row) = rows.iter().find(|r| !synthetic::is_inside(&r.tensor_path)) {
        let got = format!("{:?} for subject {}", row.tensor_path, row.subject_id);
        let table = cfg.cohort.join(cohort::COHORT_PARQUET);
        return Err(BalanceError::invalid(table, "tensor_path", "a path inside the cohort folder", got));
    }
    let mut generated = synthetic::read(&cfg.synthetic, &rows)?;
    // 2. copy the tensors into the staging folder
    let out = OutputDir::create(&cfg.out, cfg.force)?;
    let mut copied = HashSet::new();
    for row in &rows {
        if copied.insert(row.tensor_path.clone()) {
            copy(&cfg.cohort.join(&row.tensor_path), &out.path().join(&row.tensor_path))?;
        }
    }
    for row in &mut generated {
        let tensor_path = format!("{SYNTHETIC_DIR}/{}", row.tensor_path);
        copy(&cfg.synthetic.join(&row.tensor_path), &out.path().join(&tensor_path))?;
        row.tensor_path = tensor_path;
    }
    let added = generated.len();
    rows.append(&mut generated);
    // 3. table, report and manifest; the cohort's own tensors are checked against their rows on the way
    cohort::write(out.path(), &rows)?;
    let count = |split: Split, source: Option<Source>| {
        rows.iter().filter(|r| r.split == split && source.is_none_or(|s| s == r.source)).count()
    };
    let report = MergeReport {
        cohort: cfg.cohort.clone(),
        synthetic: cfg.synthetic.clone(),
        added,
        subjects: rows.len(),
        train_real: count(Split::Train, Some(Source::Real)),
        train_synthetic: count(Split::Train, Some(Source::Synthetic)),
        val: count(Split::Val, None),
        test: count(Split::Test, None),
    };
    atomic::write_json(&out.path().join(MERGE_JSON), &report)?;
    let manifest = Manifest::build(out.path())?;
    for row in &rows {
        let got = &manifest.files[&row.tensor_path].sha256;
        if *got != row.tensor_sha256 {
            let path = cfg.cohort.join(&row.tensor_path);
            return Err(
                CoreError::ChecksumMismatch { path, expected: row.tensor_sha256.clone(), got: got.clone() }.into()
            );
        }
    }
    manifest.write(out.path())?;
    out.commit()?;
    Ok(report)
}

fn copy(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| CoreError::io(parent, e))?;
    }
    std::fs::copy(from, to).map_err(|e| CoreError::io(from, e))?;
    Ok(())
}
