//! `cmr-debias phantom`: write a procedural cohort in a dataset layout.

use std::path::PathBuf;

use anyhow::Context;
use cmr_phantom::{Layout, PhantomConfig, Scenario};

use crate::progress::{self, Progress};

/// Arguments of `cmr-debias phantom`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output folder (must not exist unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Dataset layout to write.
    #[arg(long, value_enum, default_value_t = LayoutArg::Acdc)]
    layout: LayoutArg,
    /// Number of subjects.
    #[arg(long, default_value_t = 200)]
    subjects: usize,
    /// Bias scenario: a name in metadata/phantom/scenarios/ (balanced, ukbb-like, vendor-shift) or a TOML file.
    #[arg(long, default_value = "balanced")]
    scenario: String,
    /// Root seed of every random stream.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Folder holding phantom/scenarios/ (default: metadata/, falling back to the built-in copies).
    #[arg(long, default_value = "metadata")]
    metadata: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LayoutArg {
    Acdc,
    Mnms1,
}

/// Runs the command.
pub fn run(args: Args, progress: &Progress) -> anyhow::Result<()> {
    if args.subjects == 0 {
        anyhow::bail!("--subjects must be at least 1");
    }
    let scenario = Scenario::load(&args.scenario, &args.metadata)
        .with_context(|| format!("loading phantom scenario {:?}", args.scenario))?;
    let layout = match args.layout {
        LayoutArg::Acdc => Layout::Acdc,
        LayoutArg::Mnms1 => Layout::Mnms1,
    };
    let cfg =
        PhantomConfig { out: args.out, layout, subjects: args.subjects, scenario, seed: args.seed, force: args.force };
    let bar = progress.bar("phantom");
    let report = cmr_phantom::run(&cfg, &progress::callback(&bar))?;
    bar.finish_and_clear();
    if args.json {
        super::print_json(&report)?;
    } else {
        println!("wrote {} phantom subjects to {}", report.subjects.len(), cfg.out.display());
    }
    Ok(())
}
