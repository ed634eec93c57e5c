//! `cmr-debias balance …`: strata report, rebalancing plan, merge of synthetic subjects (crate `cmr-balance`).

use std::path::PathBuf;

use cmr_balance::merge::MergeConfig;
use cmr_balance::plan::PlanConfig;
use cmr_balance::report::ReportConfig;
use cmr_balance::{Guards, Strategy};
use cmr_core::{AttributeBins, Split};

/// Subcommands of `cmr-debias balance`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Counts per stratum and per marginal (real and synthetic), the smallest and the empty strata.
    Report(ReportArgs),
    /// How many synthetic subjects each train stratum needs, and one row per synthetic subject.
    Plan(PlanArgs),
    /// Append generated subjects to the train split, with a leakage guard, into a new cohort folder.
    Merge(MergeArgs),
}

/// Options shared by `report` and `plan`.
#[derive(Debug, clap::Args)]
pub struct StrataArgs {
    /// Cohort folder (holds cohort.parquet).
    #[arg(long)]
    cohort: PathBuf,
    /// Stratum keys, comma-separated: any cohort column; numeric `age`/`bmi` are binned by the attributes file
    /// [default: sex,age_band,bmi_class,label].
    #[arg(long, value_delimiter = ',')]
    by: Vec<String>,
    /// Attribute bins and prompt template [default: the built-in metadata/attributes.toml].
    #[arg(long)]
    attributes: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

impl StrataArgs {
    fn keys(&self) -> Vec<String> {
        if self.by.is_empty() {
            cmr_balance::DEFAULT_KEYS.map(str::to_string).to_vec()
        } else {
            self.by.iter().map(|k| k.trim().to_string()).collect()
        }
    }

    fn attributes(&self) -> anyhow::Result<AttributeBins> {
        Ok(match &self.attributes {
            Some(path) => AttributeBins::load(path)?,
            None => AttributeBins::default(),
        })
    }
}

/// Arguments of `balance report`.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    #[command(flatten)]
    strata: StrataArgs,
    /// Split to count: train, val, test or all [default: train].
    #[arg(long, default_value = "train")]
    split: String,
    /// How many of the smallest non-empty strata to list [default: 5].
    #[arg(long, default_value_t = 5)]
    smallest: usize,
}

/// Arguments of `balance plan`.
#[derive(Debug, clap::Args)]
pub struct PlanArgs {
    #[command(flatten)]
    strata: StrataArgs,
    /// Rebalancing strategy: not-majority, counts:FILE, ratio:R (0 < R ≤ 1), reference:FILE or weights
    /// [default: not-majority].
    #[arg(long, default_value = "not-majority")]
    strategy: String,
    /// Plan folder to write (must not exist unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Balance within each site (federated clients) instead of pooled [default: pooled].
    #[arg(long)]
    per_site: bool,
    /// Root seed of every draw [default: 0].
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Strata with fewer real train subjects are not synthesised from (no mask to condition on) [default: 1].
    #[arg(long, default_value_t = 1)]
    min_real: u64,
    /// Cap on synthetic/real subjects per stratum [default: no cap].
    #[arg(long)]
    max_synthetic_ratio: Option<f64>,
    /// Replace an existing plan folder.
    #[arg(long)]
    force: bool,
}

/// Arguments of `balance merge`.
#[derive(Debug, clap::Args)]
pub struct MergeArgs {
    /// Cohort folder.
    #[arg(long)]
    cohort: PathBuf,
    /// Synthetic folder written by the diffusion stage (cohort.parquet, tensors, manifest.json).
    #[arg(long)]
    synthetic: PathBuf,
    /// Merged cohort folder to write (must not exist unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Report(args) => {
            let split = match args.split.as_str() {
                "all" => None,
                other => Some(other.parse::<Split>().map_err(|e| anyhow::anyhow!("--split: expected all or {e}"))?),
            };
            let cfg = ReportConfig {
                by: args.strata.keys(),
                attributes: args.strata.attributes()?,
                cohort: args.strata.cohort,
                split,
                smallest: args.smallest,
            };
            let report = cmr_balance::report::run(&cfg)?;
            if args.strata.json {
                super::print_json(&report)
            } else {
                print!("{report}");
                Ok(())
            }
        }
        Command::Plan(args) => {
            let cfg = PlanConfig {
                by: args.strata.keys(),
                attributes: args.strata.attributes()?,
                cohort: args.strata.cohort,
                out: args.out,
                strategy: args.strategy.parse::<Strategy>()?,
                per_site: args.per_site,
                seed: args.seed,
                guards: Guards { min_real: args.min_real, max_synthetic_ratio: args.max_synthetic_ratio },
                force: args.force,
            };
            let summary = cmr_balance::plan::run(&cfg)?;
            if args.strata.json {
                return super::print_json(&summary);
            }
            println!("planned {} synthetic subjects into {}", summary.planned, cfg.out.display());
            for need in &summary.cannot_synthesise {
                let why = need.reason.as_deref().unwrap_or_default();
                println!("  {}: {} of {} needed: {why}", need.values.join(" | "), need.planned, need.needed);
            }
            Ok(())
        }
        Command::Merge(args) => {
            let cfg = MergeConfig { cohort: args.cohort, synthetic: args.synthetic, out: args.out, force: args.force };
            let report = cmr_balance::merge::run(&cfg)?;
            if args.json {
                super::print_json(&report)
            } else {
                println!("added {} synthetic train subjects; wrote {}", report.added, cfg.out.display());
                Ok(())
            }
        }
    }
}
