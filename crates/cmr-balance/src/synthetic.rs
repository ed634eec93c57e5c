//! The synthetic folder: what the diffusion stage's `generate` writes and `merge` accepts (the contract is in the
//! crate README):
//!
//! - `cohort.parquet` (+ `cohort.csv`): the cohort schema (`cmr_core::cohort`), one row per generated subject, with
//!   `source = synthetic`, `split = train`, `parent_subject` = the real train subject whose mask conditioned it (the
//!   plan's `mask_source`), `generator_sha256` (64 hex digits), `seed`, `prompt`, `tensor_path` (relative to the
//!   folder, inside it) and `tensor_sha256`;
//! - the tensors (`cmr_io::store` safetensors files);
//! - `manifest.json` (`cmr_core::manifest`) listing every file, tensors included.
//!
//! [`read`] is the leakage guard: it refuses any row that could carry val/test information or unverified bytes into
//! training.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path};

use cmr_core::cohort::COHORT_PARQUET;
use cmr_core::manifest::{Manifest, MANIFEST_JSON};
use cmr_core::{cohort, CohortRow, Source, Split};

use crate::error::{BalanceError, Result};

/// Whether `path` is a non-empty relative path that stays inside its folder (no `..`, no root, no prefix).
pub fn is_inside(path: &str) -> bool {
    !path.is_empty() && Path::new(path).components().all(|c| matches!(c, Component::Normal(_)))
}

/// Reads the synthetic folder `dir` and checks every row against the `cohort` rows (see the module doc). Returns the
/// rows as stored.
pub fn read(dir: &Path, cohort: &[CohortRow]) -> Result<Vec<CohortRow>> {
    let table = dir.join(COHORT_PARQUET);
    let rows = cohort::read(dir)?;
    let manifest = Manifest::read(dir)?;
    // 1. each row: identity, provenance and parent (cheap checks first)
    let by_id: HashMap<&str, &CohortRow> = cohort.iter().map(|r| (r.subject_id.as_str(), r)).collect();
    let mut seen: HashSet<&str> = HashSet::new();
    for row in &rows {
        let id = row.subject_id.as_str();
        let bad = |field: &str, expected: &str, got: String| {
            BalanceError::invalid(&table, field, expected, format!("{got} for synthetic subject {id}"))
        };
        if by_id.contains_key(id) || !seen.insert(id) {
            return Err(bad("subject_id", "an id used neither by the cohort nor by another synthetic row", id.into()));
        }
        if row.source != Source::Synthetic {
            return Err(bad("source", "synthetic", row.source.to_string()));
        }
        if row.split != Split::Train {
            return Err(bad(
                "split",
                "train (synthetic subjects only ever enter the train split)",
                row.split.to_string(),
            ));
        }
        let parent = row.parent_subject.as_deref().ok_or_else(|| {
            bad("parent_subject", "the real train subject whose mask conditioned the generation", "null".into())
        })?;
        let problem = match by_id.get(parent) {
            None => Some("is not a subject of the cohort".to_string()),
            Some(p) if p.split != Split::Train => Some(format!("is in the {} split", p.split)),
            Some(p) if p.source != Source::Real => Some("is itself synthetic".to_string()),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            return Err(BalanceError::Leakage { path: table, subject: id.into(), parent: parent.into(), problem });
        }
        let generator = row.generator_sha256.as_deref().unwrap_or("null");
        if generator.len() != 64 || !generator.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(
                "generator_sha256",
                "the generator weights' sha256 (64 hex digits)",
                format!("{generator:?}"),
            ));
        }
        if row.seed.is_none() {
            return Err(bad("seed", "the generation seed", "null".into()));
        }
        if !is_inside(&row.tensor_path) || !manifest.files.contains_key(&row.tensor_path) {
            let expected = format!("a tensor path inside the folder and listed in {MANIFEST_JSON}");
            return Err(bad("tensor_path", &expected, format!("{:?}", row.tensor_path)));
        }
    }
    // 2. bytes: every listed file against the manifest, then each row's tensor_sha256 against its verified file
    manifest.verify(dir)?;
    for row in &rows {
        let file_sha = &manifest.files[&row.tensor_path].sha256;
        if *file_sha != row.tensor_sha256 {
            return Err(BalanceError::TensorMismatch {
                path: table,
                subject: row.subject_id.clone(),
                expected: file_sha.clone(),
                got: row.tensor_sha256.clone(),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_paths_inside_the_folder_are_accepted() {
        assert!(is_inside("tensors/a.safetensors"));
        assert!(is_inside("a.safetensors"));
        for bad in ["", "../a", "tensors/../../a", "/etc/passwd", "./a"] {
            assert!(!is_inside(bad), "{bad}");
        }
    }
}
