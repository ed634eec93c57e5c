//! Per-round checkpoint folders, `DIR/round-0007/`, each built in a staging folder and renamed into place
//! (`cmr_core::atomic::OutputDir`), so a run killed at any moment leaves only complete rounds behind.
//!
//! The two newest rounds are kept: a client saves round k before the server has saved it, so after a kill the
//! server may resume from round k − 1 and the client must still have that round.

use std::path::{Path, PathBuf};

use cmr_core::atomic::OutputDir;
use cmr_core::CoreError;

use crate::error::Result;

/// Complete rounds kept on disk.
const KEEP: usize = 2;

/// The per-round checkpoint folders under one directory.
#[derive(Debug, Clone)]
pub struct RoundStore {
    dir: PathBuf,
}

impl RoundStore {
    /// Rounds under `dir` (created on the first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The newest saved round that is at most `at_most`, with its folder.
    pub fn latest(&self, at_most: usize) -> Result<Option<(usize, PathBuf)>> {
        Ok(self.rounds()?.into_iter().rev().find(|(round, _)| *round <= at_most))
    }

    /// Saves round `round`: `write` fills a staging folder that then replaces `round-{round}` (an earlier save of
    /// the same round, made before a kill, is replaced). Older rounds beyond the newest two are removed.
    pub fn save(&self, round: usize, write: impl FnOnce(&Path) -> Result<()>) -> Result<PathBuf> {
        std::fs::create_dir_all(&self.dir).map_err(|e| CoreError::io(&self.dir, e))?;
        let out = OutputDir::create(&self.dir.join(format!("round-{round:04}")), true)?;
        write(out.path())?;
        let path = out.commit()?;
        let rounds = self.rounds()?;
        for (_, old) in rounds.iter().take(rounds.len().saturating_sub(KEEP)) {
            std::fs::remove_dir_all(old).map_err(|e| CoreError::io(old, e))?;
        }
        Ok(path)
    }

    /// Saved rounds, oldest first. Staging folders (hidden) and other entries are ignored.
    fn rounds(&self) -> Result<Vec<(usize, PathBuf)>> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(CoreError::io(&self.dir, e).into()),
        };
        let mut rounds = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| CoreError::io(&self.dir, e))?;
            let name = entry.file_name();
            let round = name.to_str().and_then(|n| n.strip_prefix("round-")).and_then(|n| n.parse().ok());
            if let Some(round) = round.filter(|_| entry.path().is_dir()) {
                rounds.push((round, entry.path()));
            }
        }
        rounds.sort();
        Ok(rounds)
    }
}
