//! cmr-io's integration tests, linked into one binary (each file is a module) so the workspace's test build stays
//! small on disk and quick to link.

mod bad_input;
mod common;
mod ingest;
mod nibabel_fixtures;
