//! `cmr-debias fm …` (crate `cmr-fed`). Being built in this session.

/// Subcommands of `cmr-debias fm`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {}

/// Runs a subcommand.
pub fn run(command: Command, _progress: &crate::progress::Progress) -> anyhow::Result<()> {
    match command {}
}
