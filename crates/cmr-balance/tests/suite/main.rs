//! cmr-balance's integration tests, linked into one binary (each file is a module) so the workspace's test build
//! stays small on disk and quick to link.

mod bad_input;
mod cohorts;
mod merge;
mod pandas_oracle;
mod plan;
mod report;
