//! `cmr-debias fed compare`: every strategy over several seeds on the same cohort, foundation model and splits, and a
//! table of mean ± sd (balanced accuracy, sensitivity, specificity, AUC, traffic, wall time) with a paired test of
//! `dual-lora` against each other strategy.
//!
//! Each (strategy, seed) run is an ordinary `fed train` folder under `runs/{strategy}/seed-{k}/`; a finished one is
//! reused when the comparison is started again, so an interrupted comparison continues where it stopped.
//!
//! The paired test resamples (subject, seed) units: the same test subject scored by two strategies trained with the
//! same seed is one pair, and the bootstrap of [`PairedBootstrap`] draws pairs with replacement. Its difference is
//! the candidate's balanced accuracy minus `dual-lora`'s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::run::{self as train, FedTrainConfig, FedTrainOptions};
use crate::data::{Arm, MeanSd, PairedBootstrap, PairedComparison, Prediction};
use crate::error::{FedError, Result};
use crate::federated::{CommLog, Strategy};

/// The strategy every other one is tested against.
pub const REFERENCE: Strategy = Strategy::DualLora;
/// Wall time of a run, beside its outputs (not part of what identifies it).
const TIMING_JSON: &str = "timing.json";

/// Inputs and output of a comparison.
#[derive(Debug, Clone)]
pub struct CompareConfig {
    /// Cohort folder.
    pub cohort: PathBuf,
    /// Foundation-model folder.
    pub fm: PathBuf,
    /// Output folder (`compare.md`, `compare.json`, `runs/`).
    pub out: PathBuf,
    /// Strategies, in table order.
    pub strategies: Vec<Strategy>,
    /// Seeds `0..seeds`; each seed is a root seed of [`FedTrainOptions::seed`].
    pub seeds: u64,
    /// Options of every run; `strategy` and `seed` are set per run.
    pub options: FedTrainOptions,
    /// Device.
    pub device: candle_core::Device,
}

/// One strategy's row of the table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StrategyRow {
    /// Strategy name.
    pub strategy: String,
    /// Pooled balanced accuracy over seeds.
    pub balanced_accuracy: Option<MeanSd>,
    /// Pooled sensitivity over seeds.
    pub sensitivity: Option<MeanSd>,
    /// Pooled specificity over seeds.
    pub specificity: Option<MeanSd>,
    /// Pooled ROC AUC over seeds.
    pub auc: Option<MeanSd>,
    /// MB (10⁶ bytes) sent by all clients per round (upload), mean over seeds.
    pub mb_up_per_round: f64,
    /// MB sent in total (up and down) over the whole run, mean over seeds.
    pub mb_total: f64,
    /// Wall time of one run in seconds, over seeds.
    pub wall_s: Option<MeanSd>,
    /// `dual-lora` against this strategy (absent on `dual-lora`'s own row or without it).
    pub paired: Option<PairedComparison>,
}

/// `compare.json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Comparison {
    /// Seeds per strategy.
    pub seeds: u64,
    /// Test subjects per run.
    pub subjects: usize,
    /// One row per strategy.
    pub rows: Vec<StrategyRow>,
}

/// What one finished (or reused) run contributes.
struct RunResult {
    predictions: Vec<Prediction>,
    metrics: crate::data::Evaluation,
    comm: CommLog,
    wall: Duration,
}

/// Runs (or reuses) every (strategy, seed) and writes `compare.md` and `compare.json`; `progress(done, total)`
/// after each run.
///
/// # Errors
/// No strategy or no seed; any error of a run (naming its folder).
pub fn run(cfg: &CompareConfig, progress: &mut dyn FnMut(usize, usize)) -> Result<Comparison> {
    if cfg.strategies.is_empty() || cfg.seeds == 0 {
        return Err(FedError::option("strategies", "name at least one strategy and one seed"));
    }
    let total = cfg.strategies.len() * cfg.seeds as usize;
    let mut results: Vec<(Strategy, Vec<RunResult>)> = Vec::new();
    for (i, &strategy) in cfg.strategies.iter().enumerate() {
        let mut runs = Vec::new();
        for seed in 0..cfg.seeds {
            runs.push(run_one(cfg, strategy, seed)?);
            progress(i * cfg.seeds as usize + seed as usize + 1, total);
        }
        results.push((strategy, runs));
    }
    let reference = results.iter().find(|(s, _)| *s == REFERENCE).map(|(_, runs)| pooled_units(runs));
    let bootstrap = PairedBootstrap::default();
    let mut rows = Vec::new();
    for (strategy, runs) in &results {
        let metric = |f: fn(&crate::data::BinaryMetrics) -> Option<f64>| {
            let values: Option<Vec<f64>> = runs.iter().map(|r| f(&r.metrics.pooled)).collect();
            values.and_then(|v| MeanSd::of(&v))
        };
        let paired = match &reference {
            Some(reference) if *strategy != REFERENCE => Some(bootstrap.compare(
                Arm { name: REFERENCE.name(), predictions: reference },
                Arm { name: strategy.name(), predictions: &pooled_units(runs) },
            )?),
            _ => None,
        };
        let n = runs.len() as f64;
        rows.push(StrategyRow {
            strategy: strategy.name().to_owned(),
            balanced_accuracy: metric(|m| m.balanced_accuracy),
            sensitivity: metric(|m| m.sensitivity),
            specificity: metric(|m| m.specificity),
            auc: metric(|m| m.auc),
            mb_up_per_round: runs.iter().map(|r| up_per_round(&r.comm)).sum::<f64>() / n / 1e6,
            mb_total: runs.iter().map(|r| (r.comm.bytes_up + r.comm.bytes_down) as f64).sum::<f64>() / n / 1e6,
            wall_s: MeanSd::of(&runs.iter().map(|r| r.wall.as_secs_f64()).collect::<Vec<_>>()),
            paired,
        });
    }
    let subjects = results[0].1[0].predictions.len();
    let comparison = Comparison { seeds: cfg.seeds, subjects, rows };
    std::fs::create_dir_all(&cfg.out).map_err(|e| cmr_core::CoreError::io(&cfg.out, e))?;
    cmr_core::atomic::write_json(&cfg.out.join("compare.json"), &comparison)?;
    cmr_core::atomic::write_bytes(&cfg.out.join("compare.md"), markdown(&comparison).as_bytes())?;
    Ok(comparison)
}

/// Runs `strategy` with `seed`, or reads the finished run folder back.
fn run_one(cfg: &CompareConfig, strategy: Strategy, seed: u64) -> Result<RunResult> {
    let out = run_dir(&cfg.out, strategy, seed);
    let options = FedTrainOptions { strategy, seed, ..cfg.options.clone() };
    let train_cfg = FedTrainConfig {
        cohort: cfg.cohort.clone(),
        fm: cfg.fm.clone(),
        out: out.clone(),
        options,
        device: cfg.device.clone(),
        force: false,
    };
    if !out.join(TIMING_JSON).exists() {
        // A folder without its timing is an interrupted earlier comparison's: replace it.
        let cfg = FedTrainConfig { force: true, ..train_cfg };
        let report = train::run(&cfg, &mut |_, _| {})?;
        cmr_core::atomic::write_json(&out.join(TIMING_JSON), &report.wall.as_secs_f64())?;
    }
    read_run(&out)
}

/// `runs/{strategy}/seed-{k}` under a comparison folder.
pub fn run_dir(out: &Path, strategy: Strategy, seed: u64) -> PathBuf {
    out.join("runs").join(strategy.name()).join(format!("seed-{seed}"))
}

fn read_run(dir: &Path) -> Result<RunResult> {
    let read = |name: &str| -> Result<String> {
        let path = dir.join(name);
        std::fs::read_to_string(&path).map_err(|e| cmr_core::CoreError::io(&path, e).into())
    };
    let parse = |name: &str, text: String| -> Result<serde_json::Value> {
        serde_json::from_str(&text).map_err(|e| FedError::input(dir.join(name), e.to_string()))
    };
    let comm: CommLog = serde_json::from_value(parse("comm.json", read("comm.json")?)?)
        .map_err(|e| FedError::input(dir.join("comm.json"), e.to_string()))?;
    let wall = parse(TIMING_JSON, read(TIMING_JSON)?)?.as_f64().unwrap_or(f64::NAN);
    let predictions = crate::data::evaluation::read_predictions(&dir.join(crate::data::evaluation::PREDICTIONS_CSV))?;
    let metrics = crate::data::evaluate(&predictions)?;
    Ok(RunResult { predictions, metrics, comm, wall: Duration::from_secs_f64(wall.max(0.0)) })
}

/// Every run's predictions as (subject, seed) units: `subject_id#seed-k`.
fn pooled_units(runs: &[RunResult]) -> Vec<Prediction> {
    runs.iter()
        .enumerate()
        .flat_map(|(seed, r)| {
            r.predictions
                .iter()
                .map(move |p| Prediction { subject_id: format!("{}#seed-{seed}", p.subject_id), ..p.clone() })
        })
        .collect()
}

fn up_per_round(comm: &CommLog) -> f64 {
    comm.bytes_up as f64 / comm.rounds.len().max(1) as f64
}

/// The table as Markdown.
pub fn markdown(c: &Comparison) -> String {
    let show = |v: &Option<MeanSd>| v.as_ref().map_or("n/a".to_owned(), |m| format!("{m:.3}"));
    let mut md = format!(
        "# Strategy comparison\n\n{} seed(s), {} test subjects per run; mean ± sd over seeds (pooled test metrics).\n\n",
        c.seeds, c.subjects
    );
    md.push_str(
        "| strategy | balanced accuracy | sensitivity | specificity | AUC | MB up / round | MB total | wall s |\n",
    );
    md.push_str("|---|---|---|---|---|---:|---:|---|\n");
    for r in &c.rows {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {:.3} | {:.2} | {} |\n",
            r.strategy,
            show(&r.balanced_accuracy),
            show(&r.sensitivity),
            show(&r.specificity),
            show(&r.auc),
            r.mb_up_per_round,
            r.mb_total,
            r.wall_s.as_ref().map_or("n/a".to_owned(), |m| format!("{:.1} ± {:.1}", m.mean, m.sd.unwrap_or(0.0))),
        ));
    }
    let paired: Vec<&StrategyRow> = c.rows.iter().filter(|r| r.paired.is_some()).collect();
    if !paired.is_empty() {
        md.push_str(&format!(
            "\n## Paired bootstrap: each strategy − {}\n\nBalanced accuracy on (subject, seed) pairs; 95 % percentile \
             interval; two-sided p.\n\n| strategy | difference | 95 % CI | p |\n|---|---:|---|---:|\n",
            REFERENCE.name()
        ));
        for r in paired {
            let p = r.paired.as_ref().expect("filtered");
            let d = &p.difference;
            md.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                r.strategy,
                d.value.map_or("n/a".to_owned(), |v| format!("{v:+.3}")),
                match (d.ci_low, d.ci_high) {
                    (Some(lo), Some(hi)) => format!("[{lo:+.3}, {hi:+.3}]"),
                    _ => "n/a".to_owned(),
                },
                p.p_value.map_or("n/a".to_owned(), |v| format!("{v:.3}")),
            ));
        }
    }
    md
}
