//! AdamW (Loshchilov & Hutter 2019, arXiv 1711.05101, Algorithm 2) with parameter groups, as `torch.optim.AdamW`:
//!
//! ```text
//! θ ← θ − γ·λ·θ                         decoupled weight decay (γ: group rate × schedule, λ: group weight decay)
//! m ← β1·m + (1 − β1)·g                 first moment
//! v ← β2·v + (1 − β2)·g²                second moment
//! θ ← θ − (γ / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
//! ```
//!
//! t counts the updates of each parameter (a parameter without a gradient in a step is not updated, as PyTorch).
//! The state (t, m, v per named variable, plus the number of optimizer steps that drives the schedule) is saved as a
//! checkpoint, so a resumed run continues bit for bit.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{Result, Tensor, Var};
use serde::{Deserialize, Serialize};

use super::{clip_grad_norm, LrSchedule, OptimError};
use crate::checkpoint::{self, Checkpoint, LoadMode};
use crate::ops::AdamWStep;

/// Format tag in the JSON sidecar of a saved state.
const STATE_FORMAT: &str = "cmr-nn.adamw.v1";

/// Named variables that share a learning rate and weight decay.
#[derive(Debug, Clone)]
pub struct ParamGroup {
    /// Variables with their checkpoint names (names key the saved state).
    pub params: Vec<(String, Var)>,
    /// Base learning rate γ, multiplied by the schedule each step.
    pub lr: f64,
    /// Decoupled weight decay λ (0 for biases, norms and embeddings by convention).
    pub weight_decay: f64,
}

impl ParamGroup {
    /// A group of `params` with rate `lr` and weight decay `weight_decay`.
    pub fn new(params: Vec<(String, Var)>, lr: f64, weight_decay: f64) -> Self {
        Self { params, lr, weight_decay }
    }
}

/// Hyper-parameters shared by all groups. `Default` = `torch.optim.AdamW` (β 0.9/0.999, ε 1e-8), no clipping,
/// constant schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AdamWConfig {
    /// β1, decay of the first moment.
    pub beta1: f64,
    /// β2, decay of the second moment.
    pub beta2: f64,
    /// ε added to the denominator.
    pub eps: f64,
    /// Global L2 norm the gradients of all groups are clipped to before the update. `None`: no clipping.
    pub max_grad_norm: Option<f64>,
    /// Multiplier of every group's rate as a function of the step.
    pub schedule: LrSchedule,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        Self { beta1: 0.9, beta2: 0.999, eps: 1e-8, max_grad_norm: None, schedule: LrSchedule::Constant }
    }
}

/// What one [`AdamW::step`] did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepReport {
    /// The schedule multiplier used.
    pub lr_factor: f64,
    /// Global gradient norm before clipping (computed only when clipping is on).
    pub grad_norm: Option<f64>,
    /// Parameters updated (those with a gradient).
    pub updated: usize,
}

#[derive(Debug, Clone)]
struct ParamState {
    step: u64,
    m: Tensor,
    v: Tensor,
}

/// JSON sidecar of a saved state.
#[derive(Debug, Serialize, Deserialize)]
struct StateMeta {
    format: String,
    /// Optimizer steps taken (the schedule's t).
    steps: usize,
    /// Updates per parameter name (only parameters that have state).
    param_steps: BTreeMap<String, u64>,
    /// The configuration in force when saved (for the record; the resuming run's own configuration applies).
    config: AdamWConfig,
}

/// AdamW over parameter groups; see the module docs.
#[derive(Debug)]
pub struct AdamW {
    groups: Vec<ParamGroup>,
    config: AdamWConfig,
    state: HashMap<String, ParamState>,
    steps: usize,
}

impl AdamW {
    /// An optimizer over `groups`. Fails if a name appears twice.
    pub fn new(groups: Vec<ParamGroup>, config: AdamWConfig) -> std::result::Result<Self, OptimError> {
        let mut seen = HashSet::new();
        for (name, _) in groups.iter().flat_map(|g| &g.params) {
            if !seen.insert(name.clone()) {
                return Err(OptimError::DuplicateParam { name: name.clone() });
            }
        }
        Ok(Self { groups, config, state: HashMap::new(), steps: 0 })
    }

    /// The groups, in order.
    pub fn groups(&self) -> &[ParamGroup] {
        &self.groups
    }

    /// The configuration.
    pub fn config(&self) -> &AdamWConfig {
        &self.config
    }

    /// Optimizer steps taken so far (what the schedule is evaluated at for the next step).
    pub fn steps(&self) -> usize {
        self.steps
    }

    /// The learning rate the next step applies to group `group`.
    ///
    /// # Panics
    /// If `group` is out of range (a programming error).
    pub fn lr(&self, group: usize) -> f64 {
        self.groups[group].lr * self.config.schedule.factor(self.steps)
    }

    /// Clips (if configured) and applies one update to every parameter that has a gradient in `grads`.
    pub fn step(&mut self, grads: &mut GradStore) -> Result<StepReport> {
        let grad_norm = match self.config.max_grad_norm {
            Some(max) => {
                Some(clip_grad_norm(grads, self.groups.iter().flat_map(|g| g.params.iter().map(|(_, v)| v)), max)?)
            }
            None => None,
        };
        let factor = self.config.schedule.factor(self.steps);
        let AdamWConfig { beta1, beta2, eps, .. } = self.config;
        let mut updated = 0;
        for group in &self.groups {
            let lr = group.lr * factor;
            for (name, var) in &group.params {
                let Some(g) = grads.get(var) else { continue };
                // A gradient keeps the graph it was computed from (candle detaches only the gradients of
                // intermediate nodes): detached, the moments kept across steps do not retain every step's graph.
                let g = g.to_dtype(var.dtype())?.detach();
                let state = match self.state.remove(name) {
                    Some(s) => s,
                    None => {
                        let zeros = var.as_tensor().zeros_like()?;
                        ParamState { step: 0, m: zeros.clone(), v: zeros }
                    }
                };
                let step = state.step + 1;
                let (bc1, bc2) = (1.0 - beta1.powi(step as i32), 1.0 - beta2.powi(step as i32));
                let constants = AdamWStep {
                    betas: (beta1, beta2),
                    decay: 1.0 - lr * group.weight_decay,
                    step_size: lr / bc1,
                    inv_sqrt_bias_correction2: 1.0 / bc2.sqrt(),
                    eps,
                };
                let (m, v) = crate::ops::adamw_step(var, &g, &state.m, &state.v, constants)?;
                self.state.insert(name.clone(), ParamState { step, m, v });
                updated += 1;
            }
        }
        self.steps += 1;
        Ok(StepReport { lr_factor: factor, grad_norm, updated })
    }

    /// The first and second moments `(m, v)` of parameter `name`; zeros of its shape before its first update.
    ///
    /// # Errors
    /// A name this optimizer does not hold (the error names it).
    pub fn moments(&self, name: &str) -> Result<(Tensor, Tensor)> {
        match self.state.get(name) {
            Some(s) => Ok((s.m.clone(), s.v.clone())),
            None => {
                let zeros = self.param(name)?.as_tensor().zeros_like()?;
                Ok((zeros.clone(), zeros))
            }
        }
    }

    /// Replaces the moments of parameter `name` (e.g. by moments averaged across federated clients, as Linardos et
    /// al. 2022 do). The parameter keeps its update count; one never updated takes the optimizer's step count, so
    /// the bias correction treats the moments as that old.
    ///
    /// # Errors
    /// A parameter this optimizer does not hold, or moments of another shape (a candle error naming it).
    pub fn set_moments(&mut self, name: &str, m: Tensor, v: Tensor) -> Result<()> {
        let var = self.param(name)?;
        if m.dims() != var.dims() || v.dims() != var.dims() {
            candle_core::bail!(
                "moments of {name}: shapes {:?} and {:?}, expected {:?}",
                m.dims(),
                v.dims(),
                var.dims()
            );
        }
        let (m, v) =
            (m.to_dtype(var.dtype())?.to_device(var.device())?, v.to_dtype(var.dtype())?.to_device(var.device())?);
        let step = self.state.get(name).map_or(self.steps as u64, |s| s.step);
        self.state.insert(name.to_owned(), ParamState { step, m, v });
        Ok(())
    }

    fn param(&self, name: &str) -> Result<&Var> {
        self.groups
            .iter()
            .flat_map(|g| &g.params)
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| candle_core::Error::Msg(format!("{name} is not a parameter of this optimizer")))
    }

    /// Saves the state (t, m, v per named parameter and the step count) to `path` as a checkpoint: tensors
    /// `m.{name}` and `v.{name}`, the counts in the JSON sidecar.
    pub fn save_state(&self, path: &Path) -> std::result::Result<String, OptimError> {
        let mut tensors = BTreeMap::new();
        let mut param_steps = BTreeMap::new();
        for (name, s) in &self.state {
            tensors.insert(format!("m.{name}"), s.m.clone());
            tensors.insert(format!("v.{name}"), s.v.clone());
            param_steps.insert(name.clone(), s.step);
        }
        let meta = StateMeta { format: STATE_FORMAT.into(), steps: self.steps, param_steps, config: self.config };
        Ok(checkpoint::save(path, &tensors, &meta)?)
    }

    /// Replaces the state with the one saved at `path`. Every saved parameter must be in the groups with the same
    /// shape; parameters without saved state start fresh (as in PyTorch).
    pub fn load_state(&mut self, path: &Path) -> std::result::Result<(), OptimError> {
        let params: HashMap<&str, &Var> =
            self.groups.iter().flat_map(|g| &g.params).map(|(n, v)| (n.as_str(), v)).collect();
        let device = params.values().next().map(|v| v.device().clone()).unwrap_or(candle_core::Device::Cpu);
        let ckpt = Checkpoint::load(path, &device)?;
        let meta: StateMeta = ckpt.config()?;
        let bad = |message: String| OptimError::State { path: path.into(), message };
        if meta.format != STATE_FORMAT {
            return Err(bad(format!("format {:?}, expected {STATE_FORMAT:?}", meta.format)));
        }
        let mut expected = BTreeMap::new();
        for name in meta.param_steps.keys() {
            let var = params
                .get(name.as_str())
                .ok_or_else(|| bad(format!("has state for {name}, which is not a parameter of this optimizer")))?;
            expected.insert(format!("m.{name}"), var.dims().to_vec());
            expected.insert(format!("v.{name}"), var.dims().to_vec());
        }
        ckpt.check(&expected, LoadMode::Strict)?;
        let mut state = HashMap::new();
        for (name, &step) in &meta.param_steps {
            let dtype = params[name.as_str()].dtype();
            let m = ckpt.tensors()[&format!("m.{name}")].to_dtype(dtype)?;
            let v = ckpt.tensors()[&format!("v.{name}")].to_dtype(dtype)?;
            state.insert(name.clone(), ParamState { step, m, v });
        }
        self.state = state;
        self.steps = meta.steps;
        Ok(())
    }
}
