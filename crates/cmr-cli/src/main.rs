//! `cmr-debias`: the command-line tool. A thin clap layer: parse → validate → one `match` over subcommands, each
//! arm calling a library `run`. Errors are printed once and give exit code 2.

mod cmd;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Debias cardiac-MRI disease classifiers with synthetic data.
#[derive(Debug, Parser)]
#[command(name = "cmr-debias", version, about, long_about = None)]
struct Cli {
    /// Log more (-v: debug, -vv: trace); the default logs warnings and stage summaries.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Hide progress bars (default: shown when stderr is a terminal).
    #[arg(long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write a procedural CMR cohort in ACDC or M&Ms-1 layout (real NIfTI + metadata).
    Phantom(cmd::phantom::Args),
    /// Read a dataset folder into a cohort table + subject tensor store.
    Ingest(cmd::ingest::Args),
    /// Inspect a cohort folder.
    #[command(subcommand)]
    Cohort(cmd::cohort::Command),
    /// Export one subject of a cohort as NIfTI (with its affine) and a PNG preview.
    Export(cmd::export::Args),
    /// Train the mask- and text-conditioned diffusion model; generate synthetic subjects from a plan.
    #[command(subcommand)]
    Diffusion(cmd::diffusion::Command),
    /// Where the cohort is thin: strata report, rebalancing plan, merge of synthetic subjects.
    #[command(subcommand)]
    Balance(cmd::balance::Command),
    /// Pretrain the CMR foundation model (3D ViT) as a masked autoencoder.
    #[command(subcommand)]
    Fm(cmd::fm::Command),
    /// Fine-tune the classifier across sites with a federated strategy; compare strategies.
    #[command(subcommand)]
    Fed(cmd::fed::Command),
    /// Subgroup fairness report of a classifier's predictions, with bootstrap CIs and before/after comparison.
    Audit(cmd::audit::Args),
    /// Run a pipeline file's stages in order (default pipelines/demo.toml), skipping those already up to date.
    Run(cmd::run::Args),
}

fn main() -> ExitCode {
    exit_quietly_on_closed_pipe();
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let progress = progress::Progress::new(cli.quiet);
    let result = match cli.command {
        Command::Phantom(args) => cmd::phantom::run(args, &progress),
        Command::Ingest(args) => cmd::ingest::run(args, &progress),
        Command::Cohort(command) => cmd::cohort::run(command),
        Command::Export(args) => cmd::export::run(args),
        Command::Diffusion(command) => cmd::diffusion::run(command, &progress),
        Command::Balance(command) => cmd::balance::run(command),
        Command::Fm(command) => cmd::fm::run(command, &progress),
        Command::Fed(command) => cmd::fed::run(command, &progress),
        Command::Audit(args) => cmd::audit::run(args),
        Command::Run(args) => cmd::run::run(args, cli.quiet),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Restores the default action of SIGPIPE, which Rust's runtime ignores: a report piped into a reader that stops early
/// (`cmr-debias cohort summary ... | head`) then ends the process silently, as it would any Unix tool, instead of
/// making `println!` panic on the closed pipe. Outputs are written atomically, so nothing half-written is left.
fn exit_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: setting a signal's disposition to SIG_DFL installs no handler code; it runs before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn,cmr=info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CMR_LOG").unwrap_or_else(|_| default.into());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).init();
}
