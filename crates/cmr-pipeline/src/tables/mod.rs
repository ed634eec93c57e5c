//! The tables of a pipeline file, one per stage, each a serde struct whose defaults are the command line's.
//!
//! Keys are snake_case: the flag `--max-synthetic-ratio` is the key `max_synthetic_ratio` (a kebab-case key is
//! refused with the snake_case spelling as its suggestion).

pub mod audit;
pub mod balance;
pub mod cohort;
pub mod diffusion;
pub mod fed;

use serde::{Deserialize, Serialize};

pub use audit::AuditTable;
pub use balance::BalanceTable;
pub use cohort::{CohortSource, CohortTable};
pub use diffusion::DiffusionTable;
pub use fed::{Arm, FederatedTable, FmTable};

use crate::error::Result;
use crate::load::Origins;
use crate::schema::{Schema, Section};

/// A whole pipeline file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PipelineConfig {
    /// Root seed of every stage's random streams. Default 0.
    pub seed: u64,
    /// `[cohort]`.
    pub cohort: CohortTable,
    /// `[diffusion]`.
    pub diffusion: DiffusionTable,
    /// `[balance]`.
    pub balance: BalanceTable,
    /// `[fm]`.
    pub fm: FmTable,
    /// `[federated]`.
    pub federated: FederatedTable,
    /// `[audit]`.
    pub audit: AuditTable,
}

impl Section for PipelineConfig {
    fn nested() -> Vec<(&'static str, Schema)> {
        vec![
            ("cohort", Schema::of::<CohortTable>()),
            ("diffusion", Schema::of::<DiffusionTable>()),
            ("balance", Schema::of::<BalanceTable>()),
            ("fm", Schema::of::<FmTable>()),
            ("federated", Schema::of::<FederatedTable>()),
            ("audit", Schema::of::<AuditTable>()),
        ]
    }
}

impl PipelineConfig {
    /// Checks every table's values and their interactions (no stage work, no large reads).
    pub fn check(&self, origins: &Origins) -> Result<()> {
        self.cohort.source(origins)?;
        self.cohort.fractions(origins)?;
        self.diffusion.device(origins)?;
        self.diffusion.training(self.seed, origins)?;
        self.balance.strategy(origins)?;
        self.fm.check(origins)?;
        self.federated.check(origins)?;
        self.audit.config(self.seed, origins)?;
        Ok(())
    }
}
