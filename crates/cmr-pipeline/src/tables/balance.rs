//! `[balance]`: how the augmented arm fills the thin strata — `balance plan`'s options `strategy`, `by`, `per_site`,
//! `min_real`, `max_synthetic_ratio` (the bins are `[cohort] attributes`). The `weights` strategy is not set here:
//! it is an arm of its own (`[federated] arms`).

use cmr_balance::{Guards, Strategy};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::load::Origins;
use crate::schema::Section;

/// The `[balance]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BalanceTable {
    /// `not-majority`, `counts:FILE`, `ratio:R` or `reference:FILE` (FILE relative to the pipeline file). Default
    /// `not-majority`.
    pub strategy: String,
    /// Stratum keys. Default `["sex", "age_band", "bmi_class", "label"]`.
    pub by: Vec<String>,
    /// Balance within each site (federated client) instead of pooled. Default false.
    pub per_site: bool,
    /// Strata with fewer real train subjects are not synthesised from. Default 1.
    pub min_real: u64,
    /// Cap on synthetic/real subjects per stratum. `None`: no cap.
    pub max_synthetic_ratio: Option<f64>,
}

impl Default for BalanceTable {
    fn default() -> Self {
        Self {
            strategy: Strategy::NotMajority.to_string(),
            by: cmr_balance::DEFAULT_KEYS.map(String::from).to_vec(),
            per_site: false,
            min_real: 1,
            max_synthetic_ratio: None,
        }
    }
}

impl Section for BalanceTable {
    fn path_offset(key: &str, value: &str) -> Option<usize> {
        match (key, value.split_once(':')) {
            ("strategy", Some((kind @ ("counts" | "reference"), _))) => Some(kind.len() + 1),
            _ => None,
        }
    }
}

impl BalanceTable {
    /// The strategy and guards, checked.
    pub fn strategy(&self, origins: &Origins) -> Result<(Strategy, Guards)> {
        let strategy: Strategy =
            self.strategy.parse().map_err(|e| origins.invalid("balance", "strategy", format!("{e}")))?;
        if strategy == Strategy::Weights {
            let message = "the weights strategy is the `weights` arm: add it to [federated] arms".to_string();
            return Err(origins.invalid("balance", "strategy", message));
        }
        let guards = Guards { min_real: self.min_real, max_synthetic_ratio: self.max_synthetic_ratio };
        let key = if self.min_real == 0 { "min_real" } else { "max_synthetic_ratio" };
        guards.check().map_err(|e| origins.invalid("balance", key, e.to_string()))?;
        if self.by.is_empty() {
            return Err(origins.invalid("balance", "by", "needs at least one column".into()));
        }
        Ok((strategy, guards))
    }
}
