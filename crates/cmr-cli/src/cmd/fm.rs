//! `cmr-debias fm …`: pretrain the CMR foundation model, a 3D ViT, as a masked autoencoder on a cohort's train
//! images (crate `cmr-fed`, issue 7).

use std::path::PathBuf;

use cmr_fed::model::pretrain::{self, PretrainConfig, PretrainOptions};
use cmr_fed::model::ViTConfig;
use cmr_nn::device::DeviceSpec;

use crate::progress::Progress;

/// Subcommands of `cmr-debias fm`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Pretrain the foundation model (masked autoencoder) on every train-split image of a cohort, all sites.
    Pretrain(PretrainArgs),
}

/// Arguments of `cmr-debias fm pretrain`.
#[derive(Debug, clap::Args)]
pub struct PretrainArgs {
    /// Cohort folder; the images of its train split are the data (labels are not used).
    #[arg(long)]
    cohort: PathBuf,
    /// Model folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Architecture: preset tiny (dim 192, 6 blocks) or small (dim 384, 12 blocks), both over the (8, 96, 96)
    /// volume of `ingest`'s defaults, or a JSON file of `ViTConfig` fields; a cohort of another volume is refused.
    #[arg(long, default_value = "tiny")]
    config: String,
    /// Passes over the train split (default 40).
    #[arg(long)]
    epochs: Option<usize>,
    /// Subjects per step (default 8).
    #[arg(long)]
    batch: Option<usize>,
    /// Peak learning rate (default 5e-4).
    #[arg(long)]
    lr: Option<f64>,
    /// Fraction of patches masked (default 0.75).
    #[arg(long)]
    mask_ratio: Option<f64>,
    /// Root seed of every random stream (default 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Device: cpu, cuda or cuda:N (cuda needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// Replace an existing model folder.
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a subcommand.
pub fn run(command: Command, progress: &Progress) -> anyhow::Result<()> {
    match command {
        Command::Pretrain(args) => pretrain(args, progress),
    }
}

fn pretrain(args: PretrainArgs, progress: &Progress) -> anyhow::Result<()> {
    let defaults = PretrainOptions::default();
    let options = PretrainOptions {
        epochs: args.epochs.unwrap_or(defaults.epochs),
        batch: args.batch.unwrap_or(defaults.batch),
        lr: args.lr.unwrap_or(defaults.lr),
        mask_ratio: args.mask_ratio.unwrap_or(defaults.mask_ratio),
        seed: args.seed.unwrap_or(defaults.seed),
        vit: ViTConfig::preset(&args.config)?,
        ..defaults
    };
    let cfg =
        PretrainConfig { cohort: args.cohort, out: args.out, options, device: args.device.open()?, force: args.force };
    let bar = progress.bar("pretrain");
    let report = pretrain::run(&cfg, &mut |p| {
        bar.set_length(p.steps as u64);
        bar.set_position(p.step as u64);
        bar.set_message(format!("epoch {}/{} loss {:.4}", p.epoch, p.epochs, p.loss));
    })?;
    bar.finish_and_clear();
    if args.json {
        super::print_json(&report)?;
    } else {
        let last = report.epoch_losses.last().copied().unwrap_or(f64::NAN);
        println!(
            "pretrained the foundation model on {} subjects for {} epochs (final loss {last:.4}) into {}",
            report.subjects,
            report.epochs,
            report.out.display()
        );
    }
    Ok(())
}
