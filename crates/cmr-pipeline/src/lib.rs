//! Pipeline files and their runner: the engine of `cmr-debias run` (DESIGN.md, issue 8).
//!
//! A pipeline file (TOML, e.g. `pipelines/demo.toml`) has one top-level `seed` and one table per stage —
//! `[cohort]`, `[diffusion]` (with `[diffusion.base]`, `[diffusion.controlnet]`, `[diffusion.generate]`),
//! `[balance]`, `[fm]`, `[federated]`, `[audit]` — whose keys are the command-line flags of that stage in
//! snake_case (`--max-synthetic-ratio` ↔ `max_synthetic_ratio`). Loading ([`load`]):
//!
//! - an unknown key is an error naming the file, the table and the key, with the closest known key ("did you
//!   mean …"); a value of the wrong type names its key;
//! - `${VAR}` is replaced by the environment variable (an unset one is an error naming it): data roots such as
//!   `root = "${ACDC_ROOT}"` come from the environment;
//! - relative paths are relative to the pipeline file;
//! - precedence: built-in default (the CLI's) < pipeline file < `--set TABLE.KEY=VALUE` flags.
//!
//! Running ([`runner`]): the stages ([`stages`]) run in order, each into `runs/<pipeline>/<stage>/` with a
//! `stage.json` ([`record`]) holding its config hash (sha256 of the canonical JSON of its resolved configuration),
//! the fingerprints of its inputs and the sha256 of its outputs. A stage whose record matches is skipped, so a rerun
//! of a finished pipeline only hashes; `--force` reruns, `--from` / `--only` select stages.
//!
//! # The experiment: three arms
//!
//! The federated classifier is trained three times on the same cohort, splits and seed, and each arm's test
//! predictions are audited against the baseline's (`[federated] arms`, default all three):
//!
//! - **baseline**: `federated-baseline` on the `cohort` stage's output;
//! - **augmented**: `plan` → `generate` → `merge`, then `federated-augmented` on the merged cohort;
//! - **weights**: `weights` (a balance plan with the `weights` strategy: `1 / stratum size` per train subject),
//!   then `federated-weights` on the real cohort with those weights on each train subject's loss (`weights.csv` as
//!   `fed train --sample-weights`: the loss-weighted form of the reference code's weighted sampler).
//!
//! Every arm fine-tunes the same foundation model: the `fm` stage's (pretrained on the cohort's train images) or
//! `[fm] model`'s. Then `audit` runs `cmr_audit::run` with the baseline's `predictions.csv` as `predictions`, each
//! other arm's as `compare`, and the real cohort for the attributes: augmented vs baseline in `audit/` (the
//! headline report), weights vs baseline in `audit/weights/` ([`stages::audit`]).
//!
//! # Adding a stage
//!
//! One file in [`stages`] implementing [`Stage`] (name, configuration as JSON, inputs, `run` calling the library
//! entry point with `force: true` into the given folder), and one `stages.push(…)` in [`stages::build`] at its
//! place in the order; inputs written by another stage are declared with [`stage::Input::upstream`] so `--from` /
//! `--only` can say which stage to run first.

pub mod env;
pub mod error;
pub mod fingerprint;
pub mod load;
pub mod progress;
pub mod record;
pub mod runner;
pub mod schema;
pub mod stage;
pub mod stages;
pub mod suggest;
pub mod tables;

pub use error::{Origin, PipelineError, Result};
pub use load::Pipeline;
pub use runner::{run, RunOptions, RunReport, Selection, Status};
pub use stage::Stage;
