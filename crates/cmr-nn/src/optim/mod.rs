//! Optimisation: AdamW with parameter groups, global-norm gradient clipping, an exponential moving average of the
//! weights and learning-rate schedules. Optimizer and EMA state are saved as checkpoints ([`crate::checkpoint`]) keyed
//! by variable name, so a run killed after step k and resumed from its files takes exactly the steps an
//! uninterrupted run would have taken (bit for bit on CPU; tested in `tests/suite/optim.rs`).

mod adamw;
mod ema;
mod schedule;

pub use adamw::{AdamW, AdamWConfig, ParamGroup, StepReport};
pub use ema::{Ema, EmaConfig};
pub use schedule::LrSchedule;

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Var};
use candle_nn::VarMap;

use crate::checkpoint::CheckpointError;

/// Errors of building an optimizer or restoring its state.
#[derive(Debug, thiserror::Error)]
pub enum OptimError {
    /// Two parameters (in one group or across groups) share a name.
    #[error("parameter {name} is listed twice in the optimizer's groups")]
    DuplicateParam {
        /// The repeated variable name.
        name: String,
    },
    /// A saved state does not fit the parameters it is loaded for.
    #[error("optimizer state {path}: {message}")]
    State {
        /// The state file.
        path: std::path::PathBuf,
        /// What does not fit, naming the tensor.
        message: String,
    },
    /// Reading or writing the state file failed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A tensor operation failed.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// The variables of `varmap` whose names pass `keep`, sorted by name (a stable order for groups and clipping).
pub fn named_vars(varmap: &VarMap, keep: impl Fn(&str) -> bool) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("VarMap lock poisoned");
    let mut out: Vec<(String, Var)> =
        data.iter().filter(|(n, _)| keep(n)).map(|(n, v)| (n.clone(), v.clone())).collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Scales the gradients of `params` in place so that their global L2 norm is at most `max_norm`, as
/// `torch.nn.utils.clip_grad_norm_`: the factor is `max_norm / (norm + 1e-6)` when below 1. Returns the norm before
/// clipping. Parameters without a gradient are skipped.
pub fn clip_grad_norm<'a>(
    grads: &mut GradStore,
    params: impl IntoIterator<Item = &'a Var>,
    max_norm: f64,
) -> Result<f64> {
    let params: Vec<&Var> = params.into_iter().collect();
    let mut sum_sq = 0.0;
    for var in &params {
        if let Some(g) = grads.get(var) {
            sum_sq += g.to_dtype(DType::F64)?.sqr()?.sum_all()?.to_scalar::<f64>()?;
        }
    }
    let norm = sum_sq.sqrt();
    let coef = max_norm / (norm + 1e-6);
    if coef < 1.0 {
        for var in params {
            if let Some(g) = grads.get(var) {
                let clipped = g.affine(coef, 0.)?;
                grads.insert(var, clipped);
            }
        }
    }
    Ok(norm)
}
