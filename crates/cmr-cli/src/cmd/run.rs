//! `cmr-debias run`: every stage of a pipeline file in order, skipping those already up to date (crate
//! `cmr-pipeline`).

use std::path::PathBuf;

use cmr_pipeline::{Pipeline, RunOptions, Selection, Status};

/// Arguments of `cmr-debias run`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Pipeline file.
    #[arg(default_value = "pipelines/demo.toml")]
    pipeline: PathBuf,
    /// Run this stage and every stage after it [default: all stages].
    #[arg(long, conflicts_with = "only")]
    from: Option<String>,
    /// Run this stage alone [default: all stages].
    #[arg(long)]
    only: Option<String>,
    /// Rerun the selected stages even when their outputs are up to date.
    #[arg(long)]
    force: bool,
    /// Run folder [default: runs/<pipeline file stem>/].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Override a pipeline value, TABLE.KEY=VALUE (VALUE in TOML syntax, or a bare string); repeatable. Beats the
    /// pipeline file, which beats the built-in defaults [default: none].
    #[arg(long = "set", value_name = "TABLE.KEY=VALUE")]
    sets: Vec<String>,
    /// Print what each stage did as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(args: Args, quiet: bool) -> anyhow::Result<()> {
    cmr_nn::ops::retain_freed_memory();
    let pipeline = Pipeline::load(&args.pipeline, &args.sets)?;
    let selection = match (args.from, args.only) {
        (Some(stage), _) => Selection::From(stage),
        (None, Some(stage)) => Selection::Only(stage),
        (None, None) => Selection::All,
    };
    let opts = RunOptions { out: args.out, selection, force: args.force, quiet };
    let report = cmr_pipeline::run(&pipeline, &opts)?;
    if args.json {
        return super::print_json(&report);
    }
    for stage in &report.stages {
        let what = match stage.status {
            Status::Ran => format!("ran in {:.1} s", stage.seconds),
            Status::UpToDate => "up to date".to_string(),
            Status::NotSelected => "not selected".to_string(),
        };
        println!("{:>12}  {what}", stage.stage);
    }
    println!("outputs in {}", report.out.display());
    Ok(())
}
