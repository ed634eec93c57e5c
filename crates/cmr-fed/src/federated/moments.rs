//! Adam moments on the wire. Linardos et al. (Sci. Rep. 2022, arXiv 2107.03901) average the optimizer state with
//! the weights in FedAvg, so every client starts a round from the same moments as well as the same parameters. An
//! update then carries, for each shared variable `name`, the first and second moments under the names
//! `adam.exp_avg.{name}` and `adam.exp_avg_sq.{name}` (PyTorch's names for Adam's state), and the server averages
//! them with the same client weights as the parameters.

use super::message::NamedTensors;

/// Name prefix of a first moment `m` on the wire.
pub const FIRST_PREFIX: &str = "adam.exp_avg.";
/// Name prefix of a second moment `v` on the wire.
pub const SECOND_PREFIX: &str = "adam.exp_avg_sq.";

/// The Adam moments of some variables, keyed by variable name.
#[derive(Debug, Clone, Default)]
pub struct Moments {
    /// First moments `m`.
    pub first: NamedTensors,
    /// Second moments `v`.
    pub second: NamedTensors,
}

impl Moments {
    /// Whether no moment is held.
    pub fn is_empty(&self) -> bool {
        self.first.is_empty() && self.second.is_empty()
    }

    /// The moments under their wire names.
    pub fn to_wire(&self) -> NamedTensors {
        let first = self.first.iter().map(|(n, t)| (format!("{FIRST_PREFIX}{n}"), t.clone()));
        let second = self.second.iter().map(|(n, t)| (format!("{SECOND_PREFIX}{n}"), t.clone()));
        first.chain(second).collect()
    }

    /// Splits wire tensors into model variables and moments.
    pub fn split(tensors: &NamedTensors) -> (NamedTensors, Moments) {
        let mut params = NamedTensors::new();
        let mut moments = Moments::default();
        for (name, tensor) in tensors {
            if let Some(var) = name.strip_prefix(SECOND_PREFIX) {
                moments.second.insert(var.to_owned(), tensor.clone());
            } else if let Some(var) = name.strip_prefix(FIRST_PREFIX) {
                moments.first.insert(var.to_owned(), tensor.clone());
            } else {
                params.insert(name.clone(), tensor.clone());
            }
        }
        (params, moments)
    }

    /// The wire names of both moments of each of `vars`.
    pub fn wire_names<'a>(vars: impl IntoIterator<Item = &'a str>) -> Vec<String> {
        vars.into_iter().flat_map(|v| [format!("{FIRST_PREFIX}{v}"), format!("{SECOND_PREFIX}{v}")]).collect()
    }
}
