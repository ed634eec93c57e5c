//! The stages of a pipeline, in run order, built from its tables:
//!
//! | stage        | table(s)                    | library entry point                      | output folder      |
//! |--------------|-----------------------------|------------------------------------------|--------------------|
//! | `phantom`    | `[cohort]` (phantom keys)   | `cmr_phantom::run`                       | dataset layout     |
//! | `cohort`     | `[cohort]`                  | `cmr_io::ingest::run`                    | cohort folder      |
//! | `base`       | `[diffusion.base]`          | `cmr_diffusion::pipeline::train::run`    | model folder       |
//! | `controlnet` | `[diffusion.controlnet]`    | `cmr_diffusion::pipeline::train::run`    | model folder       |
//! | `plan`       | `[balance]`                 | `cmr_balance::plan::run`                 | plan folder        |
//! | `generate`   | `[diffusion.generate]`      | `cmr_diffusion::pipeline::generate::run` | synthetic folder   |
//! | `merge`      | —                           | `cmr_balance::merge::run`                | augmented cohort   |
//! | `weights`    | `[balance]` (`by`, guards)  | `cmr_balance::plan::run` (`weights`)     | weights table      |
//!
//! `phantom` exists only without `[cohort] root`; `base` and `controlnet` only without `[diffusion] model`;
//! `plan` … `merge` only with the `augmented` arm and `weights` only with the `weights` arm (`[federated] arms`).
//! The federated stages (`fm`, then one `federated-<arm>` per arm, then `audit`) go at the end of [`build`]; see
//! the crate docs.

pub mod balance;
pub mod cohort;
pub mod diffusion;

use std::path::{Path, PathBuf};

use cmr_balance::Strategy;
use cmr_core::AttributeBins;
use cmr_diffusion::pipeline::train::Stage as Network;
use cmr_nn::resolve::{Resolver, MINILM};
use cmr_phantom::Scenario;

use self::balance::{MergeStage, PlanStage};
use self::cohort::{phantom_dataset, IngestSettings, IngestStage, PhantomStage};
use self::diffusion::{GenerateStage, TextEncoder, TrainStage};
use crate::error::Result;
use crate::load::Pipeline;
use crate::stage::{Input, InputKind, Stage};
use crate::tables::{Arm, CohortSource};

/// Stage `phantom`.
pub const PHANTOM: &str = "phantom";
/// Stage `cohort`.
pub const COHORT: &str = "cohort";
/// Stage `base`.
pub const BASE: &str = "base";
/// Stage `controlnet`.
pub const CONTROLNET: &str = "controlnet";
/// Stage `plan`.
pub const PLAN: &str = "plan";
/// Stage `generate`.
pub const GENERATE: &str = "generate";
/// Stage `merge`.
pub const MERGE: &str = "merge";
/// Stage `weights`.
pub const WEIGHTS: &str = "weights";

/// The stages of `pipeline`, in run order, each writing `run_dir/<name>/`. Loads what the configuration names
/// (scenario, attribute bins, text encoder) so that a bad one fails here, before any stage runs.
pub fn build(pipeline: &Pipeline, run_dir: &Path) -> Result<Vec<Box<dyn Stage>>> {
    let (cfg, origins) = (&pipeline.config, &pipeline.origins);
    let dir = |stage: &str| run_dir.join(stage);
    let attributes = match &cfg.cohort.attributes {
        Some(path) => AttributeBins::load(path).map_err(|e| origins.invalid("cohort", "attributes", e.to_string()))?,
        None => AttributeBins::default(),
    };
    let mut stages: Vec<Box<dyn Stage>> = Vec::new();

    // 1. the cohort: the phantom's or the datasets'
    let sources = match cfg.cohort.source(origins)? {
        CohortSource::Phantom { layout, subjects, scenario, metadata } => {
            let scenario = Scenario::load(&scenario, &metadata)
                .map_err(|e| origins.invalid("cohort", "scenario", e.to_string()))?;
            stages.push(Box::new(PhantomStage { layout, subjects, scenario, seed: cfg.seed }));
            vec![(phantom_dataset(layout), Input::upstream(PHANTOM, dir(PHANTOM), InputKind::Folder))]
        }
        CohortSource::Datasets(datasets) => {
            datasets.into_iter().map(|(dataset, root)| (dataset, Input::external(root, InputKind::Dataset))).collect()
        }
    };
    let c = &cfg.cohort;
    let fractions = c.fractions(origins)?;
    let settings = IngestSettings {
        task: c.task,
        size: c.size,
        slices: c.slices,
        spacing: c.spacing,
        seed: cfg.seed,
        val_fraction: fractions.val,
        test_fraction: fractions.test,
        attributes: attributes.clone(),
    };
    stages.push(Box::new(IngestStage { sources, settings }));
    let cohort = dir(COHORT);

    // 2. the augmented arm: diffusion model, plan, generate, merge
    let (strategy, guards) = cfg.balance.strategy(origins)?;
    let plan = |name: &'static str, strategy: Strategy| PlanStage {
        name,
        cohort: cohort.clone(),
        strategy,
        by: cfg.balance.by.clone(),
        per_site: cfg.balance.per_site,
        seed: cfg.seed,
        guards,
        attributes: attributes.clone(),
    };
    if cfg.federated.has(Arm::Augmented) {
        let encoder = TextEncoder { model: text_encoder(pipeline)?, device: cfg.diffusion.device(origins)? };
        let training = cfg.diffusion.training(cfg.seed, origins)?;
        let model = match &cfg.diffusion.model {
            Some(model) => Input::external(model.clone(), InputKind::Folder),
            None => {
                let train = |network, base: Option<PathBuf>, options| TrainStage {
                    network,
                    cohort: cohort.clone(),
                    base,
                    options,
                    encoder: encoder.clone(),
                };
                stages.push(Box::new(train(Network::Base, None, training.base)));
                stages.push(Box::new(train(Network::Controlnet, Some(dir(BASE)), training.controlnet)));
                Input::upstream(CONTROLNET, dir(CONTROLNET), InputKind::Folder)
            }
        };
        stages.push(Box::new(plan(PLAN, strategy)));
        stages.push(Box::new(GenerateStage {
            model,
            plan: dir(PLAN).join("plan.parquet"),
            cohort: cohort.clone(),
            options: cfg.diffusion.generate.clone(),
            encoder,
        }));
        stages.push(Box::new(MergeStage { cohort: cohort.clone(), synthetic: dir(GENERATE) }));
    }

    // 3. the weights arm
    if cfg.federated.has(Arm::Weights) {
        stages.push(Box::new(plan(WEIGHTS, Strategy::Weights)));
    }

    // 4. next (issue 7): `fm` (pretrain, or `[fm] model`), `federated-<arm>` for each arm on `cohort`, `merge` or
    //    `cohort` + `weights`, then `audit` of each arm's predictions against the baseline's.
    Ok(stages)
}

/// The text encoder: `[diffusion] text_encoder`, else `models/external/`, else the Hugging Face cache.
fn text_encoder(pipeline: &Pipeline) -> Result<cmr_nn::resolve::ResolvedModel> {
    let resolver = Resolver { explicit: pipeline.config.diffusion.text_encoder.clone(), ..Default::default() };
    resolver.resolve(&MINILM).map_err(|e| pipeline.origins.invalid("diffusion", "text_encoder", e.to_string()))
}
