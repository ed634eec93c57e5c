//! One module per subcommand: argument struct (clap) + `run`, which validates and calls a library.

pub mod audit;
pub mod balance;
pub mod cohort;
pub mod diffusion;
pub mod export;
pub mod fed;
pub mod fm;
pub mod ingest;
pub mod phantom;
pub mod run;

/// Prints `value` as pretty JSON on stdout (the `--json` output of every command).
pub fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
