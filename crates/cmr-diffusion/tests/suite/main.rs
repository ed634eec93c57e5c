//! cmr-diffusion's integration tests, linked into one binary (each file is a module) so the workspace's test build stays
//! small on disk and quick to link.

mod eval_attribute_probe;
mod eval_dice;
mod eval_frechet;
mod eval_memorisation;
mod eval_msssim;
mod eval_run;
mod eval_segmenter;
mod models;
mod pipeline;
mod scheduler_contract;
mod schedulers;
