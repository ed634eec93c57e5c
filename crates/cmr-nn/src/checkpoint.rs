//! Checkpoints: named tensors in one safetensors file, with two sidecars beside it,
//!
//! ```text
//! model.safetensors          the tensors (names from `vb.pp`, e.g. `blocks.0.attn.qkv.lora_global.a`)
//! model.json                 the configuration that rebuilds the model (any serde value)
//! model.safetensors.sha256   `sha256sum` format, checked on load
//! ```
//!
//! Each file is written atomically (`cmr_core::atomic`). Loading compares the file with what the model expects and
//! names every missing, unexpected and mis-shaped tensor, as PyTorch's `load_state_dict`: strict mode refuses any
//! difference; non-strict mode loads the tensors both sides have and reports the rest. A shape mismatch is an error
//! in both modes, since no tensor can be loaded into a variable of another shape.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use candle_nn::VarMap;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// How [`Checkpoint::check`] treats names present on one side only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadMode {
    /// Every expected tensor must be in the file and nothing else.
    Strict,
    /// Missing and unexpected tensors are reported, not refused.
    NonStrict,
}

/// A tensor whose shape in the file differs from the model's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShapeMismatch {
    /// Tensor name.
    pub name: String,
    /// Shape the model expects.
    pub expected: Vec<usize>,
    /// Shape in the file.
    pub got: Vec<usize>,
}

impl fmt::Display for ShapeMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (expected {:?}, got {:?})", self.name, self.expected, self.got)
    }
}

/// What a load did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadReport {
    /// Names loaded, sorted.
    pub loaded: Vec<String>,
    /// Names the model expects that the file lacks (non-strict mode only), sorted.
    pub missing: Vec<String>,
    /// Names in the file the model does not expect (non-strict mode only), sorted.
    pub unexpected: Vec<String>,
}

/// Errors of saving or loading a checkpoint; each names the file and, where one is at fault, the tensor.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    /// Writing or hashing a file failed.
    #[error(transparent)]
    Io(#[from] cmr_core::CoreError),
    /// Reading a file failed.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid safetensors.
    #[error("{path} is not a valid safetensors file: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        message: String,
    },
    /// The file's sha256 differs from its `.sha256` sidecar.
    #[error("{path} has sha256 {got} but {sidecar} records {expected}: the file is corrupt or was replaced")]
    Checksum {
        /// The tensor file.
        path: PathBuf,
        /// The sidecar.
        sidecar: PathBuf,
        /// Recorded digest.
        expected: String,
        /// Digest of the file as read.
        got: String,
    },
    /// The file's tensors do not match what the model expects.
    #[error("{path} does not match the model: {}", describe(missing, unexpected, mis_shaped))]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// Expected names absent from the file.
        missing: Vec<String>,
        /// Names in the file the model lacks.
        unexpected: Vec<String>,
        /// Names present on both sides with different shapes.
        mis_shaped: Vec<ShapeMismatch>,
    },
    /// The JSON config sidecar is absent or does not parse as the expected type.
    #[error("config sidecar {path}: {message}")]
    Config {
        /// The sidecar.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A tensor could not be serialised, converted or assigned.
    #[error("{path}: tensor {name}: {source}")]
    Tensor {
        /// The file.
        path: PathBuf,
        /// The tensor.
        name: String,
        /// The cause (boxed: candle's error is large).
        source: Box<candle_core::Error>,
    },
}

fn describe(missing: &[String], unexpected: &[String], mis_shaped: &[ShapeMismatch]) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected {}", unexpected.join(", ")));
    }
    if !mis_shaped.is_empty() {
        let list: Vec<String> = mis_shaped.iter().map(ToString::to_string).collect();
        parts.push(format!("mis-shaped {}", list.join(", ")));
    }
    let mut text = parts.join("; ");
    if mis_shaped.is_empty() {
        text.push_str(" (load non-strict to skip missing and unexpected tensors)");
    }
    text
}

/// The JSON config sidecar of `path`: the same name with extension `json`.
pub fn config_path(path: &Path) -> PathBuf {
    path.with_extension("json")
}

/// The sha256 sidecar of `path`: the full name with `.sha256` appended.
pub fn sha256_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".sha256");
    path.with_file_name(name)
}

/// Writes `tensors` to `path` (safetensors), `config` to its JSON sidecar and the file's sha256 to its `.sha256`
/// sidecar, each atomically. Returns the sha256.
pub fn save(
    path: &Path,
    tensors: &BTreeMap<String, Tensor>,
    config: &impl Serialize,
) -> Result<String, CheckpointError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| cmr_core::CoreError::io(dir, e))?;
    }
    // safetensors' `View` for candle tensors panics on a failed device copy, so copy to the CPU first.
    let mut host = Vec::with_capacity(tensors.len());
    for (name, tensor) in tensors {
        let t = tensor.to_device(&Device::Cpu).and_then(|t| t.contiguous()).map_err(|e| CheckpointError::Tensor {
            path: path.into(),
            name: name.clone(),
            source: Box::new(e),
        })?;
        host.push((name.as_str(), t));
    }
    let bytes = safetensors::serialize(host, None)
        .map_err(|e| CheckpointError::Format { path: path.into(), message: e.to_string() })?;
    let sha = cmr_core::manifest::sha256_hex(&bytes);
    cmr_core::atomic::write_bytes(path, &bytes)?;
    cmr_core::atomic::write_json(&config_path(path), config)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    cmr_core::atomic::write_bytes(&sha256_path(path), format!("{sha}  {file_name}\n").as_bytes())?;
    Ok(sha)
}

/// Saves every variable of `varmap` under its name (see [`save`]).
pub fn save_varmap(path: &Path, varmap: &VarMap, config: &impl Serialize) -> Result<String, CheckpointError> {
    let tensors: BTreeMap<String, Tensor> = {
        let data = varmap.data().lock().expect("VarMap lock poisoned");
        data.iter().map(|(n, v)| (n.clone(), v.as_tensor().clone())).collect()
    };
    save(path, &tensors, config)
}

/// A checkpoint read into memory.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    path: PathBuf,
    sha256: String,
    tensors: BTreeMap<String, Tensor>,
    config: Option<serde_json::Value>,
}

impl Checkpoint {
    /// Reads `path` onto `device`, verifying it against its `.sha256` sidecar when there is one (external weights
    /// such as a Hugging Face `model.safetensors` have none) and reading its JSON sidecar when there is one.
    pub fn load(path: &Path, device: &Device) -> Result<Self, CheckpointError> {
        let bytes = std::fs::read(path).map_err(|source| CheckpointError::Read { path: path.into(), source })?;
        let sha256 = cmr_core::manifest::sha256_hex(&bytes);
        let sidecar = sha256_path(path);
        if sidecar.exists() {
            let text = std::fs::read_to_string(&sidecar)
                .map_err(|source| CheckpointError::Read { path: sidecar.clone(), source })?;
            let expected = text.split_whitespace().next().unwrap_or_default().to_ascii_lowercase();
            if expected != sha256 {
                return Err(CheckpointError::Checksum { path: path.into(), sidecar, expected, got: sha256 });
            }
        }
        let tensors: HashMap<String, Tensor> = candle_core::safetensors::load_buffer(&bytes, device)
            .map_err(|e| CheckpointError::Format { path: path.into(), message: e.to_string() })?;
        let config_file = config_path(path);
        let config = if config_file.exists() {
            let text = std::fs::read_to_string(&config_file)
                .map_err(|source| CheckpointError::Read { path: config_file.clone(), source })?;
            let value = serde_json::from_str(&text)
                .map_err(|e| CheckpointError::Config { path: config_file.clone(), message: e.to_string() })?;
            Some(value)
        } else {
            None
        };
        Ok(Self { path: path.into(), sha256, tensors: tensors.into_iter().collect(), config })
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lower-case hex sha256 of the file as read.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The tensors by name.
    pub fn tensors(&self) -> &BTreeMap<String, Tensor> {
        &self.tensors
    }

    /// The JSON sidecar parsed as `T`.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, CheckpointError> {
        let path = config_path(&self.path);
        let value = self.config.clone().ok_or_else(|| CheckpointError::Config {
            path: path.clone(),
            message: format!("missing; {} was saved without a config", self.path.display()),
        })?;
        serde_json::from_value(value).map_err(|e| CheckpointError::Config { path, message: e.to_string() })
    }

    /// Compares the file with `expected` (name → shape). Mis-shaped tensors are always an error; missing and
    /// unexpected ones are an error in [`LoadMode::Strict`] and reported in [`LoadMode::NonStrict`].
    pub fn check(
        &self,
        expected: &BTreeMap<String, Vec<usize>>,
        mode: LoadMode,
    ) -> Result<LoadReport, CheckpointError> {
        let mut report = LoadReport::default();
        let mut mis_shaped = Vec::new();
        for (name, shape) in expected {
            match self.tensors.get(name) {
                None => report.missing.push(name.clone()),
                Some(t) if t.dims() != shape.as_slice() => mis_shaped.push(ShapeMismatch {
                    name: name.clone(),
                    expected: shape.clone(),
                    got: t.dims().to_vec(),
                }),
                Some(_) => report.loaded.push(name.clone()),
            }
        }
        report.unexpected = self.tensors.keys().filter(|n| !expected.contains_key(*n)).cloned().collect();
        let differs = !report.missing.is_empty() || !report.unexpected.is_empty();
        if !mis_shaped.is_empty() || (mode == LoadMode::Strict && differs) {
            return Err(CheckpointError::Mismatch {
                path: self.path.clone(),
                missing: report.missing,
                unexpected: report.unexpected,
                mis_shaped,
            });
        }
        Ok(report)
    }

    /// Checks the file against the variables of `varmap` and assigns every tensor both have, converted to the
    /// variable's dtype and device. Nothing is assigned when the check fails.
    pub fn load_into(&self, varmap: &VarMap, mode: LoadMode) -> Result<LoadReport, CheckpointError> {
        let data = varmap.data().lock().expect("VarMap lock poisoned");
        let expected = data.iter().map(|(n, v)| (n.clone(), v.dims().to_vec())).collect();
        let report = self.check(&expected, mode)?;
        for name in &report.loaded {
            let var = &data[name];
            let err = |e| CheckpointError::Tensor { path: self.path.clone(), name: name.clone(), source: Box::new(e) };
            let value =
                self.tensors[name].to_dtype(var.dtype()).and_then(|t| t.to_device(var.device())).map_err(err)?;
            var.set(&value).map_err(err)?;
        }
        Ok(report)
    }
}
