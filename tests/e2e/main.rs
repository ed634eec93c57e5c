//! End-to-end tests of the `cmr-debias` binary on phantom cohorts (issue 2, "Done when").

mod util;

mod cohort_stage;
mod errors;
