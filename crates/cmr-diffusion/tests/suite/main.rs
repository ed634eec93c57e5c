//! cmr-diffusion's integration tests, linked into one binary (each file is a module) so the workspace's test build stays
//! small on disk and quick to link.

mod models;
mod pipeline;
mod scheduler_contract;
mod schedulers;
