//! Content hashes that decide whether a stage is up to date: the config hash (sha256 of canonical JSON), and the
//! fingerprint of each input and output.
//!
//! - a file: its sha256;
//! - a folder a stage wrote: the sha256 of its manifest (its `manifest.json`, which lists every file's sha256; a
//!   folder without one, such as a diffusion model folder, is hashed file by file);
//! - an external dataset folder (`[cohort] root`): the sha256 of its listing — every file's relative path, size and
//!   modification time — because hashing every image of a large dataset on each run would take minutes; datasets are
//!   treated as read-only, and a changed file changes its size or time.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::UNIX_EPOCH;

use cmr_core::manifest::{self, Manifest, MANIFEST_JSON};
use serde_json::Value;

use crate::error::{PipelineError, Result};
use crate::record::STAGE_JSON;

/// `value` with every object's keys sorted, serialised compactly: the same configuration always gives the same text,
/// whatever the order its fields were built in.
pub fn canonical_json(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(entries.into_iter().map(|(k, v)| (k.clone(), sorted(v))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    sorted(value).to_string()
}

/// sha256 of [`canonical_json`].
///
/// ```
/// let a = serde_json::json!({"steps": 2, "lr": 0.1});
/// let b = serde_json::json!({"lr": 0.1, "steps": 2});
/// assert_eq!(cmr_pipeline::fingerprint::config_hash(&a), cmr_pipeline::fingerprint::config_hash(&b));
/// ```
pub fn config_hash(value: &Value) -> String {
    manifest::sha256_hex(canonical_json(value).as_bytes())
}

/// The files of a stage's output folder with their sha256 and size: its `manifest.json`, or (without one) every
/// file hashed. The runner's own `stage.json` is never part of it.
pub fn folder_manifest(dir: &Path) -> Result<Manifest> {
    let mut listed = if dir.join(MANIFEST_JSON).is_file() { Manifest::read(dir)? } else { Manifest::build(dir)? };
    listed.files.remove(STAGE_JSON);
    Ok(listed)
}

/// sha256 of a folder's manifest.
pub fn folder(dir: &Path) -> Result<String> {
    Ok(manifest_sha256(&folder_manifest(dir)?))
}

/// sha256 of the canonical JSON of a manifest.
pub fn manifest_sha256(listed: &Manifest) -> String {
    config_hash(&serde_json::to_value(listed).expect("a manifest serialises"))
}

/// Whether every file a manifest lists is still there with its size (a cheap check that an output folder was not
/// partly deleted; contents are trusted to the manifest).
pub fn files_present(dir: &Path, listed: &Manifest) -> bool {
    listed.files.iter().all(|(rel, entry)| std::fs::metadata(dir.join(rel)).is_ok_and(|m| m.len() == entry.bytes))
}

/// sha256 of a dataset folder's listing (relative path, size, modification time of every file).
pub fn listing(dir: &Path) -> Result<String> {
    let mut entries = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(folder) = stack.pop() {
        let read = std::fs::read_dir(&folder).map_err(|e| PipelineError::io(&folder, e))?;
        for entry in read {
            let entry = entry.map_err(|e| PipelineError::io(&folder, e))?;
            let path = entry.path();
            let meta = entry.metadata().map_err(|e| PipelineError::io(&path, e))?;
            if meta.is_dir() {
                stack.push(path);
            } else {
                let modified = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok());
                let rel = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().replace('\\', "/");
                entries.insert(rel, (meta.len(), modified.map_or(0, |d| d.as_nanos())));
            }
        }
    }
    Ok(manifest::sha256_hex(serde_json::to_string(&entries).expect("a listing serialises").as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_hash_follows_content_and_ignores_stage_json() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bin"), b"1").unwrap();
        let before = folder(dir.path()).unwrap();
        std::fs::write(dir.path().join(STAGE_JSON), b"{}").unwrap();
        assert_eq!(folder(dir.path()).unwrap(), before, "stage.json is the runner's, not the stage's output");
        std::fs::write(dir.path().join("a.bin"), b"2").unwrap();
        assert_ne!(folder(dir.path()).unwrap(), before);
    }

    #[test]
    fn files_present_notices_a_deleted_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.bin"), b"1").unwrap();
        let listed = folder_manifest(dir.path()).unwrap();
        assert!(files_present(dir.path(), &listed));
        std::fs::remove_file(dir.path().join("a.bin")).unwrap();
        assert!(!files_present(dir.path(), &listed));
    }

    #[test]
    fn listing_changes_when_a_file_is_added() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("p1")).unwrap();
        std::fs::write(dir.path().join("p1/x.nii.gz"), b"x").unwrap();
        let before = listing(dir.path()).unwrap();
        assert_eq!(listing(dir.path()).unwrap(), before);
        std::fs::write(dir.path().join("p1/y.nii.gz"), b"y").unwrap();
        assert_ne!(listing(dir.path()).unwrap(), before);
    }
}
