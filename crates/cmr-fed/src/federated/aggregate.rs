//! Server-side rules, pure functions of their inputs: which updates are admissible and how admissible updates
//! become the next global model. FedAvg (McMahan et al. 2017, arXiv 1602.05629, Algorithm 1): "the server then
//! takes a weighted average of the resulting models", `w ← Σ_k (n_k / n) · w_k`, with `n_k` a client's training
//! examples. Only the tensors a strategy shares are averaged; everything else stays on the clients.

use candle_core::DType;

use super::comm::Failure;
use super::message::NamedTensors;
use super::strategy::{StrategyConfig, UpdateSpec};
use crate::error::{FedError, Result};

/// A valid update from one client.
#[derive(Debug, Clone)]
pub struct ClientUpdate {
    /// The client.
    pub client: String,
    /// Its weight: the training examples it used (at least 1).
    pub examples: usize,
    /// The shared tensors, exactly [`StrategyConfig::update_spec`].
    pub tensors: NamedTensors,
}

/// What a round does to the global model.
#[derive(Debug, Clone)]
pub enum Aggregation {
    /// The new global model.
    Updated(NamedTensors),
    /// The previous global model stays, for the reason given.
    Kept(String),
}

impl StrategyConfig {
    /// The next global model from this round's valid `updates`, or [`Aggregation::Kept`] when fewer than
    /// [`StrategyConfig::min_clients`] arrived (`failures` name the clients that did not count).
    ///
    /// # Errors
    /// A tensor operation fails (e.g. out of memory).
    pub fn aggregate(&self, updates: &[ClientUpdate], failures: &[Failure]) -> Result<Aggregation> {
        if updates.len() < self.min_clients.max(1) {
            let failed: Vec<String> = failures.iter().map(|f| format!("{} ({})", f.client, f.kind)).collect();
            return Ok(Aggregation::Kept(format!(
                "{} valid update(s), quorum is {}; failed: {}",
                updates.len(),
                self.min_clients,
                if failed.is_empty() { "none".to_owned() } else { failed.join(", ") }
            )));
        }
        Ok(Aggregation::Updated(weighted_mean(updates)?))
    }
}

/// Why an update is refused, or `None` when it matches `spec` (names, shapes, dtypes) and every value is finite.
pub fn check_update(spec: &UpdateSpec, update: &NamedTensors) -> Result<Option<String>> {
    let missing: Vec<&str> = spec.keys().filter(|n| !update.contains_key(*n)).map(String::as_str).collect();
    if !missing.is_empty() {
        return Ok(Some(format!("lacks {}", missing.join(", "))));
    }
    let unexpected: Vec<&str> = update.keys().filter(|n| !spec.contains_key(*n)).map(String::as_str).collect();
    if !unexpected.is_empty() {
        return Ok(Some(format!("holds tensors the strategy does not share: {}", unexpected.join(", "))));
    }
    for (name, tensor) in update {
        let (shape, dtype) = &spec[name];
        if tensor.dims() != shape.as_slice() || tensor.dtype() != *dtype {
            return Ok(Some(format!(
                "{name} is {:?} {:?}, expected {dtype:?} {shape:?}",
                tensor.dtype(),
                tensor.dims()
            )));
        }
        if tensor.dtype().is_float() {
            let values = tensor.flatten_all()?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
            if let Some(bad) = values.iter().find(|v| !v.is_finite()) {
                return Ok(Some(format!("{name} holds {bad}")));
            }
        }
    }
    Ok(None)
}

/// `Σ_k (n_k / n) · t_k` per name, computed in f64 in the order of `updates` and cast back to each tensor's dtype.
///
/// `updates` must not be empty; an update lacking a name of the first one is an error.
fn weighted_mean(updates: &[ClientUpdate]) -> Result<NamedTensors> {
    let total: f64 = updates.iter().map(|u| u.examples as f64).sum();
    let mut out = NamedTensors::new();
    for (name, first) in &updates[0].tensors {
        let mut acc = first.zeros_like()?.to_dtype(DType::F64)?;
        for update in updates {
            let weight = update.examples as f64 / total;
            let tensor = update
                .tensors
                .get(name)
                .ok_or_else(|| FedError::message(format!("update from {}", update.client), format!("lacks {name}")))?;
            acc = (acc + tensor.to_dtype(DType::F64)?.affine(weight, 0.)?)?;
        }
        out.insert(name.clone(), acc.to_dtype(first.dtype())?);
    }
    Ok(out)
}
