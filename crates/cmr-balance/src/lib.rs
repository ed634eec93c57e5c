//! Balance stage (issue 4): where a cohort is thin and how to fill it with synthetic subjects.
//!
//! - [`report`]: counts per stratum (`sex × age_band × bmi_class × label` of the train split by default) and per
//!   marginal, real and synthetic, the smallest and the empty strata;
//! - [`plan`]: a [`Strategy`] (imbalanced-learn `sampling_strategy` semantics) turns counts into per-stratum targets;
//!   the guards decide what can be synthesised; [`draw`] makes one row per synthetic subject (target attributes,
//!   [`mask`] source, prompt, seed);
//! - [`merge`]: appends the subjects the diffusion stage generated ([`synthetic`] folder contract) to the train split,
//!   with a leakage guard.
//!
//! File formats are documented in the crate's README.md.

pub mod draw;
pub mod error;
pub mod mask;
pub mod merge;
pub mod plan;
pub mod report;
pub mod strata;
pub mod strategy;
pub mod synthetic;
pub mod table;
pub mod targets_file;
pub mod weights;

pub use error::{BalanceError, Result};
pub use strata::DEFAULT_KEYS;
pub use strategy::{Guards, Strategy};
