//! Audit stage (DESIGN.md stage 5; issue 5): how a CMR classifier performs across sex, age band, BMI class, site
//! and their intersections, with stratified-bootstrap confidence intervals, disparities as Fairlearn's
//! `between_groups` difference and ratio, a paired before/after comparison of two models, and reports in JSON, CSV,
//! Markdown and one self-contained HTML page.
//!
//! - [`input`], [`attributes`] — predictions files, validated, and their attributes (or the cohort's);
//! - [`groups`] — groupings by attribute and intersection;
//! - [`metrics`] — per-group metrics on bootstrap-weighted subjects, undefined values with a reason (shared with the
//!   federated stage, so they live in `cmr_core::metrics` and are re-exported here);
//! - [`bootstrap`] — resampling within groups and percentile intervals (`cmr_core::bootstrap`, re-exported);
//! - [`disparity`] — differences, ratios and the named fairness metrics;
//! - [`audit`] — the evaluation of every group and grouping; [`compare`] — the paired comparison;
//! - [`report`] — the output files, opened by [`examples`] of synthetic subjects when given; [`stage`] — [`run`], the library entry of `cmr-debias audit`.
//!
//! ```no_run
//! let mut cfg = cmr_audit::AuditConfig::new("predictions.csv", "runs/audit");
//! cfg.cohort = Some("runs/cohort".into());
//! cfg.intersections = true;
//! let report = cmr_audit::run(&cfg)?;
//! println!("{} subjects audited", report.subjects);
//! # Ok::<(), cmr_audit::AuditError>(())
//! ```

pub mod attributes;
pub mod audit;
pub mod compare;
pub mod disparity;
pub mod error;
pub mod examples;
pub mod groups;
pub mod input;
pub mod keyed;
pub mod report;
pub mod stage;

pub use cmr_core::{bootstrap, metrics};
pub use error::{AuditError, Result};
pub use report::Report;
pub use stage::{run, AuditConfig};
