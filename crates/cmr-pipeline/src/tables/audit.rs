//! `[audit]`: the subgroup report comparing each arm with the baseline (`cmr-debias audit`'s options `by`,
//! `intersections`, `bootstrap`, `confidence`, `min_group_size`), used by the `audit` stage
//! ([`crate::stages::audit`]).

use cmr_audit::AuditConfig;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::load::Origins;
use crate::schema::Section;

/// The `[audit]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditTable {
    /// Attribute columns audited. Default `["sex", "age_band", "bmi_class", "site"]`.
    pub by: Vec<String>,
    /// Also audit every combination of the `by` attributes. Default false.
    pub intersections: bool,
    /// Bootstrap replicates (0: point estimates only). Default 1000.
    pub bootstrap: usize,
    /// Coverage of the percentile intervals. Default 0.95.
    pub confidence: f64,
    /// Groups with fewer subjects are flagged as small. Default 20.
    pub min_group_size: usize,
}

impl Default for AuditTable {
    fn default() -> Self {
        let defaults = AuditConfig::new("", "");
        Self {
            by: defaults.by,
            intersections: defaults.intersections,
            bootstrap: defaults.bootstrap,
            confidence: defaults.confidence,
            min_group_size: defaults.min_group_size,
        }
    }
}

impl Section for AuditTable {}

impl AuditTable {
    /// The audit configuration of one comparison (`baseline` predictions against `candidate`'s) into `out`, checked
    /// by `cmr_audit` itself.
    pub fn config(&self, seed: u64, origins: &Origins) -> Result<AuditConfig> {
        let cfg = AuditConfig {
            by: self.by.clone(),
            intersections: self.intersections,
            bootstrap: self.bootstrap,
            seed,
            confidence: self.confidence,
            min_group_size: self.min_group_size,
            ..AuditConfig::new("", "")
        };
        let key = if !(self.confidence > 0.0 && self.confidence < 1.0) { "confidence" } else { "by" };
        cfg.resolved().map_err(|e| origins.invalid("audit", key, e.to_string()))
    }
}
