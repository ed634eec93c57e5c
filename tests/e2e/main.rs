//! End-to-end tests of the `cmr-debias` binary on phantom cohorts (issue 2, "Done when"), and of each stage's
//! subcommands.

mod util;

mod audit_stage;
mod balance_stage;
mod cohort_stage;
mod diffusion_stage;
mod errors;
mod fed_stage;
mod pipeline_stage;
