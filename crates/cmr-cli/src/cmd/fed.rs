//! `cmr-debias fed …`: fine-tune the foundation model's classifier across a cohort's sites with one federated
//! strategy, or compare strategies over seeds (crate `cmr-fed`, issue 7).

use std::path::PathBuf;
use std::time::Duration;

use cmr_core::Task;
use cmr_fed::data::{Augmentation, ShapePrior};
use cmr_fed::federated::Strategy;
use cmr_fed::train::{self, FedTrainConfig, FedTrainOptions};
use cmr_nn::device::DeviceSpec;
use cmr_nn::lora::LoraTarget;

use crate::progress::Progress;

/// Subcommands of `cmr-debias fed`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Fine-tune with one strategy; writes predictions, metrics and communication accounting.
    Train(TrainArgs),
    /// Run several strategies over several seeds; writes a table with a paired test against dual-lora.
    Compare(CompareArgs),
}

/// Options of one federated fine-tuning (shared by `train` and `compare`).
#[derive(Debug, clap::Args)]
pub struct Training {
    /// Cohort folder; its `site` column defines the clients.
    #[arg(long)]
    cohort: PathBuf,
    /// Foundation-model folder (`cmr-debias fm pretrain`).
    #[arg(long)]
    fm: PathBuf,
    /// Task: hcm (NOR vs HCM) or disease (NOR vs any disease).
    #[arg(long, default_value = "hcm")]
    task: Task,
    /// Communication rounds (default 10).
    #[arg(long)]
    rounds: Option<usize>,
    /// Local epochs per round (default 1).
    #[arg(long)]
    local_epochs: Option<usize>,
    /// Subjects per step (default 8).
    #[arg(long)]
    batch: Option<usize>,
    /// Learning rate (default 1e-4 for full fine-tuning, 1e-3 for LoRA).
    #[arg(long)]
    lr: Option<f64>,
    /// Rank of every LoRA pair (default 8).
    #[arg(long)]
    lora_rank: Option<usize>,
    /// Adapted transformer blocks, counted from the last (default 2).
    #[arg(long)]
    lora_blocks: Option<usize>,
    /// Adapted projections, comma-separated among q, kv, proj, fc1, fc2 (default q,kv,proj).
    #[arg(long, value_delimiter = ',')]
    lora_targets: Option<Vec<LoraTarget>>,
    /// Shape prior: none, heart (image × heart mask) or fragmented (image × LV, MYO, RV as channels).
    #[arg(long, default_value = "none")]
    shape_prior: ShapePrior,
    /// Augmentation: none, shape, intensity or both.
    #[arg(long, default_value = "none")]
    augment: Augmentation,
    /// Keep the classification head on each site instead of sharing it with the adapters.
    #[arg(long)]
    local_head: bool,
    /// Average the Adam moments with the weights (Linardos et al.).
    #[arg(long)]
    average_moments: bool,
    /// Fewest valid client updates a round aggregates; below it the previous global is kept (default 1).
    #[arg(long)]
    min_clients: Option<usize>,
    /// Seconds a client may take to answer a round; a later reply is dropped (default: no limit).
    #[arg(long)]
    round_timeout: Option<f64>,
    /// Device: cpu, cuda or cuda:N (cuda needs a build with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// CSV table `subject_id, weight` (e.g. the `weights.csv` of `balance plan --strategy weights`): each train
    /// subject's loss is also weighted by its weight, the loss-weighted form of a weighted sampler (default: none,
    /// class weights only).
    #[arg(long, value_name = "FILE")]
    sample_weights: Option<PathBuf>,
}

impl Training {
    /// The library options for `strategy` with root seed `seed`.
    fn options(&self, strategy: Strategy, seed: u64) -> anyhow::Result<FedTrainOptions> {
        let defaults = FedTrainOptions::new(strategy);
        if let Some(t) = self.round_timeout.filter(|t| !(t.is_finite() && *t > 0.0)) {
            anyhow::bail!("--round-timeout must be a positive number of seconds, got {t}");
        }
        Ok(FedTrainOptions {
            task: self.task,
            rounds: self.rounds.unwrap_or(defaults.rounds),
            local: train::LocalTraining {
                epochs: self.local_epochs.unwrap_or(defaults.local.epochs),
                batch: self.batch.unwrap_or(defaults.local.batch),
                ..defaults.local.clone()
            },
            lr: self.lr,
            lora_rank: self.lora_rank.unwrap_or(defaults.lora_rank),
            lora_blocks: self.lora_blocks.unwrap_or(defaults.lora_blocks),
            lora_targets: self.lora_targets.clone().unwrap_or(defaults.lora_targets.clone()),
            shape_prior: self.shape_prior,
            augment: self.augment,
            share_head: !self.local_head,
            average_moments: self.average_moments,
            min_clients: self.min_clients.unwrap_or(defaults.min_clients),
            round_timeout: self.round_timeout.map(Duration::from_secs_f64),
            seed,
            sample_weights: self.sample_weights.clone(),
            ..defaults
        })
    }
}

/// Arguments of `cmr-debias fed train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    #[command(flatten)]
    training: Training,
    /// Strategy: local, central, fedavg, fedavg-lora, ffa-lora, fedsa-lora or dual-lora.
    #[arg(long)]
    strategy: Strategy,
    /// Run folder to write.
    #[arg(long)]
    out: PathBuf,
    /// Root seed of every random stream.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace an existing run folder (and discard checkpoints of a run with other options).
    #[arg(long)]
    force: bool,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Arguments of `cmr-debias fed compare`.
#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    #[command(flatten)]
    training: Training,
    /// Strategies, comma-separated (default: all seven).
    #[arg(long, value_delimiter = ',')]
    strategies: Option<Vec<Strategy>>,
    /// Seeds per strategy: runs use root seeds 0..N.
    #[arg(long, default_value_t = 3)]
    seeds: u64,
    /// Output folder: compare.md, compare.json and runs/ (finished runs there are reused).
    #[arg(long)]
    out: PathBuf,
    /// Print the table as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs a subcommand.
pub fn run(command: Command, progress: &Progress) -> anyhow::Result<()> {
    match command {
        Command::Train(args) => train_one(args, progress),
        Command::Compare(args) => compare(args, progress),
    }
}

fn compare(args: CompareArgs, progress: &Progress) -> anyhow::Result<()> {
    let strategies = args.strategies.unwrap_or(Strategy::ALL.to_vec());
    let Some(&first) = strategies.first() else { anyhow::bail!("--strategies names no strategy") };
    let cfg = train::CompareConfig {
        cohort: args.training.cohort.clone(),
        fm: args.training.fm.clone(),
        out: args.out,
        options: args.training.options(first, 0)?,
        strategies,
        seeds: args.seeds,
        device: args.training.device.open()?,
    };
    let bar = progress.bar("compare");
    let comparison = train::compare::run(&cfg, &mut crate::progress::callback(&bar))?;
    bar.finish_and_clear();
    if args.json {
        super::print_json(&comparison)?;
    } else {
        print!("{}", train::compare::markdown(&comparison));
    }
    Ok(())
}

fn train_one(args: TrainArgs, progress: &Progress) -> anyhow::Result<()> {
    let cfg = FedTrainConfig {
        cohort: args.training.cohort.clone(),
        fm: args.training.fm.clone(),
        out: args.out,
        options: args.training.options(args.strategy, args.seed)?,
        device: args.training.device.open()?,
        force: args.force,
    };
    let bar = progress.bar(args.strategy.name());
    let report = train::run(&cfg, &mut crate::progress::callback(&bar))?;
    bar.finish_and_clear();
    if args.json {
        super::print_json(&serde_json::json!({
            "out": report.out,
            "metrics": report.evaluation,
            "bytes_up": report.comm.bytes_up,
            "bytes_down": report.comm.bytes_down,
            "wall_s": report.wall.as_secs_f64(),
        }))?;
    } else {
        let pooled = &report.evaluation.pooled;
        let show = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.3}"));
        println!(
            "{}: balanced accuracy {} (sensitivity {}, specificity {}, AUC {}) on {} test subjects; {} into {}",
            args.strategy.name(),
            show(pooled.balanced_accuracy),
            show(pooled.sensitivity),
            show(pooled.specificity),
            show(pooled.auc),
            pooled.n,
            report.comm.summary(),
            report.out.display()
        );
    }
    Ok(())
}
