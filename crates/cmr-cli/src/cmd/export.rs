//! `cmr-debias export`: one subject of a cohort as NIfTI + PNG preview.

use std::path::PathBuf;

/// Arguments of `cmr-debias export`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Cohort folder.
    #[arg(long)]
    cohort: PathBuf,
    /// Subject id as in the cohort table (`{dataset}:{id}`).
    #[arg(long)]
    subject: String,
    /// Output folder (must not exist unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let written = cmr_io::export::export_subject(&args.cohort, &args.subject, &args.out, args.force)?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}
