//! `cmr-debias balance plan`: how many synthetic subjects each train stratum needs under a strategy, then one row per
//! synthetic subject (issue 4, item 2). Writes a plan folder:
//!
//! - `plan.parquet` + `plan.csv`: the synthetic subjects ([`PLAN_COLUMNS`]; not written by `weights`);
//! - `weights.parquet` + `weights.csv`: per-subject sampling weights (only `weights`);
//! - `summary.json`: the resolved configuration and, per stratum, current/target/needed/planned counts and why a
//!   stratum gets fewer than it needs ([`PlanSummary`]);
//! - `manifest.json`: sha256 of the files above.

use std::path::PathBuf;

use cmr_core::atomic::{self, OutputDir};
use cmr_core::manifest::Manifest;
use cmr_core::{AttributeBins, Source, Split};
use polars::prelude::*;
use serde::Serialize;

use crate::draw::{self, DrawContext, PlanColumns, Subjects};
use crate::error::{BalanceError, Result};
use crate::mask::Candidates;
use crate::strata::{check_keys, Counts, Strata};
use crate::strategy::{Guards, Strategy};
use crate::table::{write_twin, CohortColumns};
use crate::{targets_file, weights};

/// Columns of `plan.parquet`, in order.
pub const PLAN_COLUMNS: [&str; 12] = [
    "plan_id",
    "sex",
    "age",
    "bmi",
    "bmi_class",
    "age_band",
    "label",
    "diagnosis",
    "site",
    "mask_source",
    "prompt",
    "seed",
];

/// File name of the plan summary.
pub const SUMMARY_JSON: &str = "summary.json";

/// What `plan` does.
#[derive(Debug, Clone)]
pub struct PlanConfig {
    /// Cohort folder (holds `cohort.parquet`).
    pub cohort: PathBuf,
    /// Plan folder to write (must not exist unless `force`).
    pub out: PathBuf,
    /// Rebalancing strategy (default `not-majority`).
    pub strategy: Strategy,
    /// Stratum keys (default [`crate::DEFAULT_KEYS`]).
    pub by: Vec<String>,
    /// Balance within each site instead of pooled (default false).
    pub per_site: bool,
    /// Root seed of every draw (default 0).
    pub seed: u64,
    /// Minimum real subjects and synthetic/real cap per stratum.
    pub guards: Guards,
    /// Bins and prompt template.
    pub attributes: AttributeBins,
    /// Replace an existing plan folder.
    pub force: bool,
}

/// Counts and targets of one stratum.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StratumNeed {
    /// Key values, in key order.
    pub values: Vec<String>,
    /// Real train subjects.
    pub real: u64,
    /// Synthetic train subjects already in the cohort.
    pub synthetic: u64,
    /// `real + synthetic`.
    pub current: u64,
    /// Target count under the strategy.
    pub target: u64,
    /// `max(target − current, 0)`.
    pub needed: u64,
    /// Synthetic subjects planned (≤ `needed`, after the guards).
    pub planned: u64,
    /// Why `planned < needed`, if so.
    pub reason: Option<String>,
}

/// `summary.json` (also the `--json` output of `plan`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlanSummary {
    /// Cohort folder.
    pub cohort: PathBuf,
    /// Strategy as given.
    pub strategy: String,
    /// Stratum keys; `site` first with `per_site`.
    pub keys: Vec<String>,
    /// Balanced within each site.
    pub per_site: bool,
    /// Root seed.
    pub seed: u64,
    /// `--min-real`.
    pub min_real: u64,
    /// `--max-synthetic-ratio` (`null`: no cap).
    pub max_synthetic_ratio: Option<f64>,
    /// Train subjects counted.
    pub train_subjects: u64,
    /// Synthetic subjects planned (rows of `plan.parquet`).
    pub planned: u64,
    /// Synthetic subjects needed but not planned.
    pub shortfall: u64,
    /// Every stratum, in key order.
    pub strata: Vec<StratumNeed>,
    /// The strata that get fewer than they need, with the reason.
    pub cannot_synthesise: Vec<StratumNeed>,
    /// Files written, relative to the plan folder.
    pub files: Vec<String>,
}

/// Plans the synthetic subjects of a cohort and writes the plan folder.
pub fn run(cfg: &PlanConfig) -> Result<PlanSummary> {
    // 1. check options and keys before reading anything
    cfg.guards.check()?;
    if cfg.by.is_empty() {
        return Err(BalanceError::InvalidOption {
            option: "--by",
            expected: "at least one column",
            got: "none".into(),
        });
    }
    let table = cfg.cohort.join(cmr_core::cohort::COHORT_PARQUET);
    // With --per-site, `site` leads the keys so that each site's strata are one contiguous balancing group; a
    // targets file may then omit it unless the user asked for it in --by.
    let site_key = cfg.per_site && !cfg.by.iter().any(|k| k == "site");
    let keys: Vec<String> = if cfg.per_site {
        let others = cfg.by.iter().map(String::as_str).filter(|k| *k != "site");
        std::iter::once("site").chain(others).map(str::to_string).collect()
    } else {
        cfg.by.clone()
    };
    check_keys(&table, &keys)?;
    let out = OutputDir::create(&cfg.out, cfg.force)?;
    // 2. read the columns used and stratify the train split
    let mut columns: Vec<&str> = keys.iter().map(String::as_str).collect();
    columns.extend(["subject_id", "split", "source"]);
    if cfg.strategy != Strategy::Weights {
        columns.extend(["site", "sex", "age", "bmi", "age_band", "bmi_class", "label", "diagnosis"]);
    }
    let cols = CohortColumns::read(&cfg.cohort, &columns)?;
    let sources = cols.sources()?;
    let train: Vec<bool> = cols.splits()?.into_iter().map(|s| s == Split::Train).collect();
    let strata = Strata::build(&cols, &keys, &cfg.attributes, &train, "train")?;
    let counts = strata.counts(&sources);
    // 3. targets, needs and guards
    let listed = match cfg.strategy.file() {
        Some(path) => {
            let value = match cfg.strategy {
                Strategy::Counts(_) => targets_file::ValueColumn::Target,
                _ => targets_file::ValueColumn::Share,
            };
            Some(targets_file::read(path, &strata, value, site_key)?)
        }
        None => None,
    };
    let group_len = if cfg.per_site { strata.stride(0) } else { strata.len() }.max(1);
    let targets = cfg.strategy.targets(&counts, group_len, listed.as_deref(), |s| strata.name(s))?;
    let needs = needs(&strata, &counts, &targets, &cfg.guards);
    // 4. the plan rows (or weights), written into the staging folder
    let mut files = Vec::new();
    if cfg.strategy == Strategy::Weights {
        let ids = cols.required_strs("subject_id")?;
        write_twin(out.path(), "weights", &mut weights::frame(&strata, &counts, &ids))?;
        files.extend(["weights.parquet", "weights.csv"]);
    } else {
        let subject_id = cols.required_strs("subject_id")?;
        let site = cols.required_categories("site")?;
        let label = cols.labels()?;
        let sex = cols.sexes()?;
        let (age, bmi) = (cols.f64s("age"), cols.f64s("bmi"));
        let (age_band, bmi_class) = (cols.categories("age_band"), cols.categories("bmi_class"));
        let diagnosis = cols.required_categories("diagnosis")?;
        let candidates =
            Candidates { subject_id: &subject_id, site: &site, label: &label, sex: &sex, age: &age, bmi: &bmi };
        let subjects = Subjects { candidates, age_band: &age_band, bmi_class: &bmi_class, diagnosis: &diagnosis };
        let donors = strata.members(|i| sources[i] == Source::Real);
        let ctx = DrawContext {
            strata: &strata,
            donors: &donors,
            bins: &cfg.attributes,
            seed: cfg.seed,
            per_site: cfg.per_site,
        };
        let planned: Vec<u64> = needs.iter().map(|n| n.planned).collect();
        write_twin(out.path(), "plan", &mut plan_frame(draw::draw(ctx, subjects, &planned)))?;
        files.extend(["plan.parquet", "plan.csv"]);
    }
    // 5. summary, manifest, commit
    files.extend([SUMMARY_JSON, cmr_core::manifest::MANIFEST_JSON]);
    let summary = PlanSummary {
        cohort: cfg.cohort.clone(),
        strategy: cfg.strategy.to_string(),
        keys,
        per_site: cfg.per_site,
        seed: cfg.seed,
        min_real: cfg.guards.min_real,
        max_synthetic_ratio: cfg.guards.max_synthetic_ratio,
        train_subjects: counts.real.iter().chain(&counts.synthetic).sum(),
        planned: needs.iter().map(|n| n.planned).sum(),
        shortfall: needs.iter().map(|n| n.needed - n.planned).sum(),
        cannot_synthesise: needs.iter().filter(|n| n.planned < n.needed).cloned().collect(),
        strata: needs,
        files: files.into_iter().map(str::to_string).collect(),
    };
    atomic::write_json(&out.path().join(SUMMARY_JSON), &summary)?;
    Manifest::build(out.path())?.write(out.path())?;
    out.commit()?;
    Ok(summary)
}

fn needs(strata: &Strata, counts: &Counts, targets: &[u64], guards: &Guards) -> Vec<StratumNeed> {
    (0..strata.len())
        .map(|s| {
            let (real, synthetic, current) = (counts.real[s], counts.synthetic[s], counts.total(s));
            let needed = targets[s].saturating_sub(current);
            let (planned, reason) = guards.apply(needed, real, synthetic);
            StratumNeed {
                values: strata.values(s),
                real,
                synthetic,
                current,
                target: targets[s],
                needed,
                planned,
                reason,
            }
        })
        .collect()
}

fn plan_frame(p: PlanColumns<'_>) -> DataFrame {
    let n = p.plan_id.len();
    let columns = vec![
        Column::new("plan_id".into(), p.plan_id),
        Column::new("sex".into(), p.sex),
        Column::new("age".into(), p.age),
        Column::new("bmi".into(), p.bmi),
        Column::new("bmi_class".into(), p.bmi_class),
        Column::new("age_band".into(), p.age_band),
        Column::new("label".into(), p.label),
        Column::new("diagnosis".into(), p.diagnosis),
        Column::new("site".into(), p.site),
        Column::new("mask_source".into(), p.mask_source),
        Column::new("prompt".into(), p.prompt),
        Column::new("seed".into(), p.seed),
    ];
    DataFrame::new(n, columns).expect("plan columns have one entry per synthetic subject")
}
