//! `cmr-debias diffusion …`: train the base UNet and the mask ControlNet, generate synthetic subjects from a plan,
//! evaluate a trained model (crate `cmr-diffusion`).

use std::path::PathBuf;

use cmr_diffusion::evaluation::run::{self as evaluation, EvaluateConfig};
use cmr_diffusion::pipeline::generate::{self, GenerateConfig, SamplingOptions};
use cmr_diffusion::pipeline::train::{self, Stage, TrainConfig, TrainOptions};
use cmr_nn::device::DeviceSpec;
use cmr_nn::resolve::{Resolver, MINILM};
use cmr_nn::text::{SentenceEncoder, SentenceEncoderConfig};

use crate::progress::{self, Progress};

/// Subcommands of `cmr-debias diffusion`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Train the text-conditional base UNet, or the mask ControlNet on a frozen base.
    Train(TrainArgs),
    /// Generate one synthetic subject per row of a generation plan.
    Generate(GenerateArgs),
    /// Evaluate a model on real train subjects: mask fidelity (Dice of an independent segmenter), Fréchet distance,
    /// diversity, memorisation and attribute fidelity.
    Evaluate(EvaluateArgs),
}

/// Options every diffusion command shares.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// Device: cpu, cuda or cuda:N (cuda needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// Folder holding all-MiniLM-L6-v2 (default: models/external/, then the Hugging Face cache).
    #[arg(long)]
    text_encoder: Option<PathBuf>,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `cmr-debias diffusion train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// Cohort folder; its train split is the training data.
    #[arg(long)]
    cohort: PathBuf,
    /// Model folder to write.
    #[arg(long)]
    out: PathBuf,
    /// base (the text-conditional UNet) or controlnet (needs --base).
    #[arg(long, value_parser = ["base", "controlnet"], default_value = "base")]
    stage: String,
    /// Base model folder (ControlNet stage).
    #[arg(long)]
    base: Option<PathBuf>,
    /// Optimizer steps (default 2000).
    #[arg(long)]
    steps: Option<usize>,
    /// Slices per step (default 8).
    #[arg(long)]
    batch: Option<usize>,
    /// Peak learning rate (default 1e-3).
    #[arg(long)]
    lr: Option<f64>,
    /// γ of the Min-SNR-γ loss weighting; 0 trains on the plain MSE (default 5).
    #[arg(long)]
    snr_gamma: Option<f64>,
    /// Root seed of every random stream (default 0).
    #[arg(long)]
    seed: Option<u64>,
    /// Steps between resumable checkpoints (default 100).
    #[arg(long)]
    checkpoint_every: Option<usize>,
    #[command(flatten)]
    common: Common,
}

/// Sampling options `generate` and `evaluate` share (defaults: [`SamplingOptions::default`]).
#[derive(Debug, clap::Args)]
pub struct Sampling {
    /// DDIM steps.
    #[arg(long, default_value_t = SamplingOptions::default().steps)]
    steps: usize,
    /// Classifier-free guidance weight (1 = off).
    #[arg(long, default_value_t = SamplingOptions::default().guidance)]
    guidance: f64,
    /// Scale of the ControlNet's mask residuals (1 = as trained, 0 = mask ignored).
    #[arg(long, default_value_t = SamplingOptions::default().conditioning_scale)]
    conditioning_scale: f64,
    /// Slices denoised together.
    #[arg(long, default_value_t = SamplingOptions::default().batch)]
    batch: usize,
}

impl Sampling {
    fn options(&self) -> SamplingOptions {
        SamplingOptions {
            steps: self.steps,
            guidance: self.guidance,
            conditioning_scale: self.conditioning_scale,
            batch: self.batch,
        }
    }
}

/// Arguments of `cmr-debias diffusion generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// Model folder with a ControlNet (from `diffusion train --stage controlnet`).
    #[arg(long)]
    model: PathBuf,
    /// Generation plan (Parquet or CSV; from `balance plan`).
    #[arg(long)]
    plan: PathBuf,
    /// Cohort the plan's mask sources come from.
    #[arg(long)]
    cohort: PathBuf,
    /// Synthetic folder to write.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    sampling: Sampling,
    #[command(flatten)]
    common: Common,
}

/// Arguments of `cmr-debias diffusion evaluate`.
#[derive(Debug, clap::Args)]
pub struct EvaluateArgs {
    /// Model folder with a ControlNet (from `diffusion train --stage controlnet`).
    #[arg(long)]
    model: PathBuf,
    /// Cohort folder; its real train subjects are evaluated.
    #[arg(long)]
    cohort: PathBuf,
    /// Folder to write evaluation.json and evaluation.md into.
    #[arg(long)]
    out: PathBuf,
    /// Real train subjects to evaluate (at least 2, fewer than the cohort's train subjects).
    #[arg(long, default_value_t = 16)]
    subjects: usize,
    /// Samples generated per subject (at least 2).
    #[arg(long, default_value_t = 2)]
    samples: usize,
    #[command(flatten)]
    sampling: Sampling,
    /// Root seed: which subjects, every sample's noise, the attribute probes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The segmenter's ONNX file (fetch it with `scripts/fetch-assets.sh myopari`).
    #[arg(long, default_value = "models/external/myopari/tiramisu_acdc_fp32.onnx")]
    segmenter: PathBuf,
    #[command(flatten)]
    common: Common,
}

/// Runs the command.
pub fn run(command: Command, progress: &Progress) -> anyhow::Result<()> {
    cmr_nn::ops::retain_freed_memory();
    match command {
        Command::Train(args) => train(args, progress),
        Command::Generate(args) => generate(args, progress),
        Command::Evaluate(args) => evaluate(args, progress),
    }
}

fn text_encoder(common: &Common, device: &candle_core::Device) -> anyhow::Result<SentenceEncoder> {
    let resolver = Resolver { explicit: common.text_encoder.clone(), ..Default::default() };
    let model = resolver.resolve(&MINILM)?;
    Ok(SentenceEncoder::load(&model, device, SentenceEncoderConfig::default())?)
}

fn train(args: TrainArgs, progress: &Progress) -> anyhow::Result<()> {
    let defaults = TrainOptions::default();
    let options = TrainOptions {
        steps: args.steps.unwrap_or(defaults.steps),
        batch: args.batch.unwrap_or(defaults.batch),
        lr: args.lr.unwrap_or(defaults.lr),
        snr_gamma: args.snr_gamma.unwrap_or(defaults.snr_gamma),
        seed: args.seed.unwrap_or(defaults.seed),
        checkpoint_every: args.checkpoint_every.unwrap_or(defaults.checkpoint_every),
        ..defaults
    };
    let stage = if args.stage == "controlnet" { Stage::Controlnet } else { Stage::Base };
    let device = args.common.device.open()?;
    let encoder = text_encoder(&args.common, &device)?;
    let cfg = TrainConfig {
        cohort: args.cohort,
        out: args.out,
        stage,
        base: args.base,
        options,
        text_encoder: &encoder,
        device,
        force: args.common.force,
    };
    let bar = progress.bar(stage.name());
    let report = train::run(&cfg, &|step, total, loss| {
        bar.set_length(total as u64);
        bar.set_position(step as u64);
        bar.set_message(format!("loss {loss:.4}"));
    })?;
    bar.finish_and_clear();
    if args.common.json {
        super::print_json(&report)?;
    } else {
        println!(
            "trained {} for {} steps (final loss {:.4}) into {}",
            stage.name(),
            report.steps,
            report.final_loss,
            report.out.display()
        );
    }
    Ok(())
}

fn generate(args: GenerateArgs, progress: &Progress) -> anyhow::Result<()> {
    let device = args.common.device.open()?;
    let encoder = text_encoder(&args.common, &device)?;
    let cfg = GenerateConfig {
        model: args.model,
        plan: args.plan,
        cohort: args.cohort,
        out: args.out,
        sampling: args.sampling.options(),
        text_encoder: &encoder,
        device,
        force: args.common.force,
    };
    let bar = progress.bar("generate");
    let report = generate::run(&cfg, &progress::callback(&bar))?;
    bar.finish_and_clear();
    if args.common.json {
        super::print_json(&report)?;
    } else {
        println!(
            "generated {} subjects ({} reused from an interrupted run) into {}",
            report.generated,
            report.reused,
            report.out.display()
        );
    }
    Ok(())
}

fn evaluate(args: EvaluateArgs, progress: &Progress) -> anyhow::Result<()> {
    let device = args.common.device.open()?;
    let encoder = text_encoder(&args.common, &device)?;
    let cfg = EvaluateConfig {
        model: args.model,
        cohort: args.cohort,
        out: args.out,
        subjects: args.subjects,
        samples: args.samples,
        sampling: args.sampling.options(),
        seed: args.seed,
        segmenter: args.segmenter,
        text_encoder: &encoder,
        device,
        force: args.common.force,
    };
    let bar = progress.bar("evaluate");
    let report = evaluation::evaluate(&cfg, &progress::callback(&bar))?;
    bar.finish_and_clear();
    if args.common.json {
        super::print_json(&report)?;
    } else {
        print!("{}", report.markdown());
        println!("\nwritten to {}", cfg.out.display());
    }
    Ok(())
}
