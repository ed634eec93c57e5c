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
//! | `fm`         | `[fm]`                      | `cmr_fed::model::pretrain::run`          | model folder       |
//! | `federated-<arm>` | `[federated]`          | `cmr_fed::train::run`                    | run folder         |
//! | `audit`      | `[audit]`                   | `cmr_audit::run`                         | reports            |
//!
//! `phantom` exists only without `[cohort] root`; `base` and `controlnet` only without `[diffusion] model`;
//! `plan` … `merge` only with the `augmented` arm and `weights` only with the `weights` arm (`[federated] arms`);
//! `fm` only without `[fm] model`; one `federated-<arm>` per arm.

pub mod audit;
pub mod balance;
pub mod cohort;
pub mod diffusion;
pub mod federated;
pub mod fm;

use std::path::{Path, PathBuf};

use cmr_balance::Strategy;
use cmr_core::AttributeBins;
use cmr_diffusion::pipeline::train::Stage as Network;
use cmr_nn::resolve::{Resolver, MINILM};
use cmr_phantom::Scenario;

use self::audit::{Audit, AuditStage};
use self::balance::{MergeStage, PlanStage};
use self::cohort::{phantom_dataset, IngestSettings, IngestStage, PhantomStage};
use self::diffusion::{GenerateStage, TextEncoder, TrainStage};
use self::federated::FederatedStage;
use self::fm::PretrainStage;
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
/// Stage `fm`.
pub const FM: &str = "fm";
/// Stage `federated-baseline`.
pub const FEDERATED_BASELINE: &str = "federated-baseline";
/// Stage `federated-augmented`.
pub const FEDERATED_AUGMENTED: &str = "federated-augmented";
/// Stage `federated-weights`.
pub const FEDERATED_WEIGHTS: &str = "federated-weights";
/// Stage `audit`.
pub const AUDIT: &str = "audit";

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
            options: cfg.diffusion.generate,
            encoder,
        }));
        stages.push(Box::new(MergeStage { cohort: cohort.clone(), synthetic: dir(GENERATE) }));
    }

    // 3. the weights arm
    if cfg.federated.has(Arm::Weights) {
        stages.push(Box::new(plan(WEIGHTS, Strategy::Weights)));
    }

    // 4. the foundation model: pretrained on the cohort, or `[fm] model`
    let fm = match &cfg.fm.model {
        Some(model) => fm::model_input(model, origins)?,
        None => {
            let (options, device) = (cfg.fm.options(cfg.seed, origins)?, cfg.fm.device(origins)?);
            stages.push(Box::new(PretrainStage { cohort: cohort.clone(), options, device }));
            Input::upstream(FM, dir(FM), InputKind::Folder)
        }
    };

    // 5. one classifier per arm, then the audit of each against the baseline
    let mut arms = cfg.federated.arms.clone();
    arms.sort();
    for arm in arms {
        stages.push(Box::new(FederatedStage::new(arm, pipeline, run_dir, fm.clone())?));
    }
    let settings = cfg.audit.config(cfg.seed, origins)?;
    let audits = Audit::of(&cfg.federated.arms);
    stages.push(Box::new(AuditStage { settings, audits, cohort, run_dir: run_dir.into() }));
    Ok(stages)
}

/// The text encoder: `[diffusion] text_encoder`, else `models/external/`, else the Hugging Face cache.
fn text_encoder(pipeline: &Pipeline) -> Result<cmr_nn::resolve::ResolvedModel> {
    let resolver = Resolver { explicit: pipeline.config.diffusion.text_encoder.clone(), ..Default::default() };
    resolver.resolve(&MINILM).map_err(|e| pipeline.origins.invalid("diffusion", "text_encoder", e.to_string()))
}
