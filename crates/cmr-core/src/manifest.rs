//! sha256 manifests: every file a stage writes is listed with its size and sha256 in `manifest.json`, so a later
//! stage (or a person) can verify that nothing changed.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::atomic;
use crate::error::{CoreError, Result};

/// File name of a manifest inside the folder it describes.
pub const MANIFEST_JSON: &str = "manifest.json";

/// One listed file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FileEntry {
    /// Lower-case hex sha256 of the file's bytes.
    pub sha256: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// Files of a folder, keyed by their `/`-separated path relative to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Manifest {
    /// Relative path → entry.
    pub files: BTreeMap<String, FileEntry>,
}

impl Manifest {
    /// Lists every file under `dir` except the manifest itself.
    pub fn build(dir: &Path) -> Result<Self> {
        let mut files = BTreeMap::new();
        collect(dir, dir, &mut files)?;
        files.remove(MANIFEST_JSON);
        Ok(Self { files })
    }

    /// Writes `manifest.json` into `dir`.
    pub fn write(&self, dir: &Path) -> Result<()> {
        atomic::write_json(&dir.join(MANIFEST_JSON), self)
    }

    /// Reads `dir/manifest.json`.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_JSON);
        let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
        serde_json::from_str(&text).map_err(|e| CoreError::Table { path, message: e.to_string() })
    }

    /// Checks every listed file under `dir` against its sha256.
    pub fn verify(&self, dir: &Path) -> Result<()> {
        for (rel, entry) in &self.files {
            let path = dir.join(rel);
            let got = sha256_file(&path)?;
            if got != entry.sha256 {
                return Err(CoreError::ChecksumMismatch { path, expected: entry.sha256.clone(), got });
            }
        }
        Ok(())
    }
}

/// Lower-case hex sha256 of a byte slice.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Lower-case hex sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| CoreError::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| CoreError::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, FileEntry>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| CoreError::io(dir, e))?
        .collect::<std::io::Result<_>>()
        .map_err(|e| CoreError::io(dir, e))?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            collect(root, &path, files)?;
        } else {
            let rel = path.strip_prefix(root).expect("walked from root").to_string_lossy().replace('\\', "/");
            let bytes = entry.metadata().map_err(|e| CoreError::io(&path, e))?.len();
            files.insert(rel, FileEntry { sha256: sha256_file(&path)?, bytes });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_input() {
        // printf abc | sha256sum
        assert_eq!(sha256_hex(b"abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn manifest_lists_nested_files_and_detects_changes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("t")).unwrap();
        std::fs::write(dir.path().join("t/a.bin"), b"abc").unwrap();
        std::fs::write(dir.path().join("b.txt"), b"").unwrap();
        let manifest = Manifest::build(dir.path()).unwrap();
        manifest.write(dir.path()).unwrap();
        assert_eq!(manifest.files.keys().collect::<Vec<_>>(), ["b.txt", "t/a.bin"]);
        assert_eq!(Manifest::read(dir.path()).unwrap(), manifest);
        manifest.verify(dir.path()).unwrap();
        std::fs::write(dir.path().join("t/a.bin"), b"abd").unwrap();
        assert!(matches!(manifest.verify(dir.path()), Err(CoreError::ChecksumMismatch { .. })));
    }
}
