//! `cmr-debias ingest`: dataset folder → cohort table + subject tensors.

use std::path::PathBuf;

use cmr_core::attributes::AttributeBins;
use cmr_core::split::SplitFractions;
use cmr_core::{Dataset, Task};
use cmr_io::ingest::IngestConfig;

use crate::progress::{self, Progress};

/// Arguments of `cmr-debias ingest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Dataset layout of --root: acdc, mnms1, mnms2 or ukbb.
    #[arg(long)]
    dataset: Dataset,
    /// Dataset folder.
    #[arg(long)]
    root: PathBuf,
    /// Cohort folder to write (must not exist unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Task that maps diagnoses to labels: hcm (NOR 0, HCM 1, others left out) or disease (NOR 0, any other 1).
    #[arg(long, default_value = "hcm")]
    task: Task,
    /// In-plane size H = W of the subject tensor, in pixels.
    #[arg(long, default_value_t = 96)]
    size: usize,
    /// Number of short-axis slices S, spread base→apex over the slices that contain LV.
    #[arg(long, default_value_t = 8)]
    slices: usize,
    /// In-plane pixel spacing after resampling, in mm.
    #[arg(long, default_value_t = 1.5)]
    spacing: f64,
    /// Seed of the train/val/test split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Share of each (site, label) stratum in the validation split.
    #[arg(long, default_value_t = 0.15)]
    val_fraction: f64,
    /// Share of each (site, label) stratum in the test split.
    #[arg(long, default_value_t = 0.15)]
    test_fraction: f64,
    /// Attribute bins and prompt template (default: the built-in metadata/attributes.toml).
    #[arg(long)]
    attributes: Option<PathBuf>,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(args: Args, progress: &Progress) -> anyhow::Result<()> {
    // 1. validate flag values before any work
    if args.size < 8 || args.slices == 0 || !(args.spacing > 0.0 && args.spacing.is_finite()) {
        anyhow::bail!(
            "--size must be ≥ 8, --slices ≥ 1 and --spacing > 0 (got {}, {}, {})",
            args.size,
            args.slices,
            args.spacing
        );
    }
    let fractions = SplitFractions { val: args.val_fraction, test: args.test_fraction };
    if !(0.0..1.0).contains(&fractions.val)
        || !(0.0..1.0).contains(&fractions.test)
        || fractions.val + fractions.test >= 1.0
    {
        anyhow::bail!(
            "--val-fraction and --test-fraction must be in [0, 1) and leave a train share (got {} and {})",
            fractions.val,
            fractions.test
        );
    }
    let attributes = match &args.attributes {
        Some(path) => AttributeBins::load(path)?,
        None => AttributeBins::default(),
    };
    // 2. ingest
    let cfg = IngestConfig {
        dataset: args.dataset,
        root: args.root,
        out: args.out,
        task: args.task,
        size: args.size,
        slices: args.slices,
        spacing_mm: args.spacing,
        seed: args.seed,
        force: args.force,
        fractions,
        attributes,
    };
    let bar = progress.bar("ingest");
    let report = cmr_io::ingest::run(&cfg, &progress::callback(&bar))?;
    bar.finish_and_clear();
    // 3. report
    if args.json {
        super::print_json(&report)?;
    } else {
        println!("ingested {} subjects into {}", report.subjects, report.out.display());
        if !report.excluded_by_task.is_empty() {
            println!("left out by task {}: {} subjects", cfg.task.name(), report.excluded_by_task.len());
        }
    }
    Ok(())
}
