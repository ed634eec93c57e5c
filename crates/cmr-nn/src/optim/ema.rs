//! Exponential moving average of weights, as `diffusers.training_utils.EMAModel` without warmup (the diffusers
//! ControlNet/UNet training scripts' `--use_ema`): after the n-th update (n counted from 0)
//!
//! ```text
//! d_n = 0 for n = 0,   d_n = min(decay, (1 + n) / (10 + n)) otherwise
//! θ̄ ← d_n·θ̄ + (1 − d_n)·θ
//! ```
//!
//! so early averages are short and the first update copies the weights. The averaged weights are saved under the
//! model's own names, so an EMA file loads as a model checkpoint.

use std::collections::BTreeMap;
use std::path::Path;

use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::OptimError;
use crate::checkpoint::{self, Checkpoint, LoadMode};

/// Format tag in the JSON sidecar of a saved EMA.
const EMA_FORMAT: &str = "cmr-nn.ema.v1";

/// Configuration of an [`Ema`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EmaConfig {
    /// Upper bound of the decay. Default 0.9999 (diffusers).
    pub decay: f64,
}

impl Default for EmaConfig {
    fn default() -> Self {
        Self { decay: 0.9999 }
    }
}

/// JSON sidecar of a saved EMA.
#[derive(Debug, Serialize, Deserialize)]
struct EmaMeta {
    format: String,
    updates: usize,
    config: EmaConfig,
}

/// Averaged copies of named variables.
#[derive(Debug, Clone)]
pub struct Ema {
    config: EmaConfig,
    shadow: BTreeMap<String, Tensor>,
    updates: usize,
}

impl Ema {
    /// Starts an average of `params` at their current values.
    pub fn new(params: &[(String, Var)], config: EmaConfig) -> Result<Self> {
        let shadow =
            params.iter().map(|(n, v)| Ok((n.clone(), v.as_tensor().detach().copy()?))).collect::<Result<_>>()?;
        Ok(Self { config, shadow, updates: 0 })
    }

    /// The decay the next update uses.
    pub fn next_decay(&self) -> f64 {
        match self.updates {
            0 => 0.0,
            n => self.config.decay.min((1 + n) as f64 / (10 + n) as f64),
        }
    }

    /// Updates made so far.
    pub fn updates(&self) -> usize {
        self.updates
    }

    /// Moves the average towards the current `params` (the same names as at [`Ema::new`]). Returns the decay used.
    pub fn update(&mut self, params: &[(String, Var)]) -> Result<f64> {
        let d = self.next_decay();
        for (name, var) in params {
            let Some(avg) = self.shadow.get_mut(name) else {
                candle_core::bail!("EMA has no average for {name}; it tracks only the variables it was created with")
            };
            *avg = (avg.affine(d, 0.)? + var.as_tensor().detach().affine(1.0 - d, 0.)?)?;
        }
        self.updates += 1;
        Ok(d)
    }

    /// The averaged weights by name.
    pub fn weights(&self) -> &BTreeMap<String, Tensor> {
        &self.shadow
    }

    /// Writes the averaged weights into `params` (e.g. before evaluation or export).
    pub fn copy_to(&self, params: &[(String, Var)]) -> Result<()> {
        for (name, var) in params {
            match self.shadow.get(name) {
                Some(avg) => var.set(avg)?,
                None => candle_core::bail!("EMA has no average for {name}"),
            }
        }
        Ok(())
    }

    /// Saves the averaged weights (under the variables' names) and the update count to `path`.
    pub fn save(&self, path: &Path) -> std::result::Result<String, OptimError> {
        let meta = EmaMeta { format: EMA_FORMAT.into(), updates: self.updates, config: self.config };
        Ok(checkpoint::save(path, &self.shadow, &meta)?)
    }

    /// Replaces the average with the one saved at `path`, which must hold exactly this EMA's names and shapes.
    pub fn load(&mut self, path: &Path) -> std::result::Result<(), OptimError> {
        let device = self.shadow.values().next().map(|t| t.device().clone()).unwrap_or(candle_core::Device::Cpu);
        let ckpt = Checkpoint::load(path, &device)?;
        let meta: EmaMeta = ckpt.config()?;
        if meta.format != EMA_FORMAT {
            let message = format!("format {:?}, expected {EMA_FORMAT:?}", meta.format);
            return Err(OptimError::State { path: path.into(), message });
        }
        let expected = self.shadow.iter().map(|(n, t)| (n.clone(), t.dims().to_vec())).collect();
        ckpt.check(&expected, LoadMode::Strict)?;
        for (name, avg) in self.shadow.iter_mut() {
            *avg = ckpt.tensors()[name].to_dtype(avg.dtype())?;
        }
        self.updates = meta.updates;
        Ok(())
    }
}
