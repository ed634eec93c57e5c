//! `cmr-debias cohort …`: inspect a cohort folder.

use std::path::PathBuf;

use cmr_core::summary::{CohortSummary, SUMMARY_COLUMNS};

/// Subcommands of `cmr-debias cohort`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Counts by site, split, label, sex, age band, BMI class and source.
    Summary {
        /// Cohort folder (holds cohort.parquet).
        cohort: PathBuf,
        /// Print the counts as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Runs the command.
pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Summary { cohort, json } => {
            let rows = cmr_core::cohort::read(&cohort)?;
            let summary = CohortSummary::of(&rows);
            if json {
                return super::print_json(&summary);
            }
            println!("{}: {} subjects", cohort.display(), summary.subjects);
            for column in SUMMARY_COLUMNS {
                println!("\n{column}");
                for (value, count) in &summary.counts[column] {
                    let share = 100.0 * *count as f64 / summary.subjects.max(1) as f64;
                    println!("  {value:<16} {count:>7} {share:>6.1}%");
                }
            }
            Ok(())
        }
    }
}
