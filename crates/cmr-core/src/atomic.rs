//! Atomic outputs: a file is written to a temporary sibling and renamed into place; an output folder is built in a
//! hidden staging sibling and renamed when complete. An interrupted or failed write therefore never leaves a partial
//! output under the final name, and an existing output is replaced only when the caller says so (`--force`).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{CoreError, Result};

/// Writes `path` atomically: `write` fills a temporary file in the same folder (buffered: Parquet writers emit
/// their metadata in many small writes), which is synced and renamed.
pub fn write_with(path: &Path, write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>) -> Result<()> {
    let tmp = sibling(path, "tmp");
    let result = (|| {
        let mut file = BufWriter::new(File::create(&tmp)?);
        write(&mut file)?;
        let file = file.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(|e| CoreError::io(path, e))
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |f| f.write_all(bytes))
}

/// Writes `value` as pretty JSON to `path` atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value).map_err(|e| CoreError::io(path, e.into()))?;
    text.push('\n');
    write_bytes(path, text.as_bytes())
}

/// An output folder under construction. Files go into [`OutputDir::path`], a hidden staging folder beside the
/// destination; [`OutputDir::commit`] moves it into place. Dropped without commit, the staging folder is removed.
#[derive(Debug)]
pub struct OutputDir {
    destination: PathBuf,
    staging: PathBuf,
    committed: bool,
}

impl OutputDir {
    /// Starts building `destination`. Fails if it exists and `force` is false.
    pub fn create(destination: &Path, force: bool) -> Result<Self> {
        if destination.exists() && !force {
            return Err(CoreError::OutputExists { path: destination.into() });
        }
        if let Some(parent) = destination.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| CoreError::io(parent, e))?;
        }
        let staging = sibling(destination, "partial");
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| CoreError::io(&staging, e))?;
        }
        std::fs::create_dir(&staging).map_err(|e| CoreError::io(&staging, e))?;
        Ok(Self { destination: destination.into(), staging, committed: false })
    }

    /// The staging folder to write into.
    pub fn path(&self) -> &Path {
        &self.staging
    }

    /// The final location.
    pub fn destination(&self) -> &Path {
        &self.destination
    }

    /// Moves the finished folder into place, replacing an existing destination (allowed at `create`).
    pub fn commit(mut self) -> Result<PathBuf> {
        let old = sibling(&self.destination, "old");
        let had_old = self.destination.exists();
        if had_old {
            std::fs::rename(&self.destination, &old).map_err(|e| CoreError::io(&self.destination, e))?;
        }
        std::fs::rename(&self.staging, &self.destination).map_err(|e| CoreError::io(&self.destination, e))?;
        self.committed = true;
        if had_old {
            remove_path(&old).map_err(|e| CoreError::io(&old, e))?;
        }
        Ok(self.destination.clone())
    }
}

impl Drop for OutputDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
        }
    }
}

/// `.{name}.{tag}-{pid}` beside `path`: hidden, unique per process, on the same file system for `rename`.
fn sibling(path: &Path, tag: &str) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.{tag}-{}", std::process::id()))
}

fn remove_path(path: &Path) -> std::io::Result<()> {
    if path.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.bin");
        let err = write_with(&path, |_| Err(std::io::Error::other("boom"))).unwrap_err();
        assert!(err.to_string().contains("out.bin"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn output_dir_appears_only_on_commit_and_respects_force() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("cohort");
        {
            let out = OutputDir::create(&dest, false).unwrap();
            write_bytes(&out.path().join("a"), b"1").unwrap();
            assert!(!dest.exists());
        } // dropped: nothing left
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        let out = OutputDir::create(&dest, false).unwrap();
        write_bytes(&out.path().join("a"), b"1").unwrap();
        out.commit().unwrap();
        assert!(matches!(OutputDir::create(&dest, false), Err(CoreError::OutputExists { .. })));

        let out = OutputDir::create(&dest, true).unwrap();
        write_bytes(&out.path().join("b"), b"2").unwrap();
        out.commit().unwrap();
        assert!(!dest.join("a").exists() && dest.join("b").exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
