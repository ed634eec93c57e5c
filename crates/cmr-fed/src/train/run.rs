//! `cmr-debias fed train`: fine-tune the foundation model's classifier across the cohort's sites with one strategy,
//! then evaluate every site's model on its test subjects.
//!
//! Output folder (written atomically when the run ends):
//! `predictions.csv` and `metrics.json` (per site and pooled), `comm.json` (bytes per client per round),
//! `rounds.json` (loss and failures per round), `run.json` (the options, the sha256 of the cohort, of the foundation
//! model and of the sample-weights file if any). While it runs, the server's and the clients' checkpoints live in
//! `.{out}.training/` beside it; a killed run started again with the same options resumes there and ends with the
//! same files.
//!
//! Which model scores a site's test subjects: for `central`, the pooled model; otherwise the site's own model after
//! the last round, with the final global tensors loaded over what it shares — for `dual-lora` the global adapters
//! plus its own local pair, for `fedsa-lora` the global A with its own B, for `local` its own model.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use candle_core::{DType, Device};
use cmr_core::{atomic::OutputDir, manifest::sha256_file, CohortRow, Split, Task};
use cmr_nn::lora::LoraTarget;
use serde::Serialize;

use super::trainer::{stack_inputs, ClassifierTrainer, LocalTraining};
use crate::data::{write_evaluation, AugmentConfig, Augmentation, Augmenter, Clients, Evaluation, Example};
use crate::data::{Prediction, ShapePrior, SubjectWeights};
use crate::error::{FedError, Result};
use crate::federated::{ClientRuntime, CommLog, InProcess, Moments, RoundRecord, Server, ServerConfig};
use crate::federated::{Strategy, StrategyConfig};
use crate::model::{Classifier, ClassifierConfig, FineTune, FmDir, LoraOptions};

/// Id of the single client of the `central` reference.
pub const CENTRAL_CLIENT: &str = "central";

/// What `fed train` does (the command's options).
#[derive(Debug, Clone, PartialEq)]
pub struct FedTrainOptions {
    /// The strategy.
    pub strategy: Strategy,
    /// Task labels from the diagnosis. Default `hcm`.
    pub task: Task,
    /// Communication rounds (for `local` and `central`: rounds of local epochs without exchange). Default 10.
    pub rounds: usize,
    /// Local training of every site per round. The learning rate, when `None`, is 1e-4 for full fine-tuning and
    /// 1e-3 for LoRA.
    pub local: LocalTraining,
    /// Learning rate; `None`: by fine-tuning mode (see [`FedTrainOptions::local`]).
    pub lr: Option<f64>,
    /// Rank of every adapter pair. Default 8.
    pub lora_rank: usize,
    /// Adapted blocks, counted from the last. Default 2 (Med-DualLoRA).
    pub lora_blocks: usize,
    /// Adapted projections. Default `q, kv, proj`.
    pub lora_targets: Vec<LoraTarget>,
    /// Shape prior of the input. Default none.
    pub shape_prior: ShapePrior,
    /// Augmentation set-up. Default none.
    pub augment: Augmentation,
    /// Whether the head is shared with the adapters. Default true.
    pub share_head: bool,
    /// Whether FedAvg also averages the Adam moments (Linardos et al.). Default false.
    pub average_moments: bool,
    /// Fewest valid updates a round aggregates; below it the previous global is kept. Default 1.
    pub min_clients: usize,
    /// Longest a client may take to answer in a round. Default none.
    pub round_timeout: Option<Duration>,
    /// Root seed of the model's fresh tensors, every client's shuffles and augmentations. Default 0.
    pub seed: u64,
    /// A CSV table `subject_id, weight` (e.g. `balance plan --strategy weights`'s `weights.csv`) whose weights
    /// multiply the loss weights of the train subjects (the weights arm; see [`crate::data::weights`]). Every
    /// train subject needs one; a subject the cohort lacks is an error. Default `None`: class weights only.
    pub sample_weights: Option<PathBuf>,
}

impl FedTrainOptions {
    /// The defaults for `strategy`.
    pub fn new(strategy: Strategy) -> Self {
        let lora = LoraOptions::default();
        Self {
            strategy,
            task: Task::Hcm,
            rounds: 10,
            local: LocalTraining::default(),
            lr: None,
            lora_rank: lora.rank,
            lora_blocks: lora.blocks,
            lora_targets: lora.targets,
            shape_prior: ShapePrior::None,
            augment: Augmentation::None,
            share_head: true,
            average_moments: false,
            min_clients: 1,
            round_timeout: None,
            seed: 0,
            sample_weights: None,
        }
    }

    /// The classifier every site starts from (the same on every site: same seed).
    fn classifier(&self) -> ClassifierConfig {
        let finetune = match self.strategy.lora_scheme() {
            None => FineTune::Full,
            Some(scheme) => FineTune::Lora(LoraOptions {
                scheme,
                rank: self.lora_rank,
                alpha: self.lora_rank as f64,
                blocks: self.lora_blocks,
                targets: self.lora_targets.clone(),
            }),
        };
        ClassifierConfig { in_channels: self.shape_prior.channels(), finetune, seed: self.seed }
    }

    /// Local training with the learning rate resolved.
    fn local_training(&self) -> LocalTraining {
        let default_lr = if self.strategy.lora_scheme().is_some() { 1e-3 } else { 1e-4 };
        LocalTraining { lr: self.lr.unwrap_or(default_lr), ..self.local.clone() }
    }

    fn strategy_config(&self) -> StrategyConfig {
        StrategyConfig {
            share_head: self.share_head,
            average_moments: self.average_moments,
            min_clients: self.min_clients,
            ..StrategyConfig::new(self.strategy)
        }
    }
}

/// Inputs and output of one `fed train`.
#[derive(Debug, Clone)]
pub struct FedTrainConfig {
    /// Cohort folder (clients = its `site` column).
    pub cohort: PathBuf,
    /// Foundation-model folder.
    pub fm: PathBuf,
    /// Run folder to write.
    pub out: PathBuf,
    /// The options.
    pub options: FedTrainOptions,
    /// Device of every model.
    pub device: Device,
    /// Replace an existing run folder (and discard checkpoints of other options).
    pub force: bool,
}

/// `run.json`: what was run, on what, and how long it took.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RunRecord {
    /// Strategy name.
    pub strategy: String,
    /// Task name.
    pub task: String,
    /// Rounds.
    pub rounds: usize,
    /// Local training (learning rate resolved).
    pub local: LocalTraining,
    /// The classifier (fine-tuning mode, LoRA, input channels, seed).
    pub classifier: ClassifierConfig,
    /// Shape prior.
    pub shape_prior: ShapePrior,
    /// Augmentation.
    pub augment: Augmentation,
    /// Head shared with the adapters.
    pub share_head: bool,
    /// Adam moments averaged.
    pub average_moments: bool,
    /// Quorum.
    pub min_clients: usize,
    /// Round timeout in seconds.
    pub round_timeout_s: Option<f64>,
    /// Root seed.
    pub seed: u64,
    /// sha256 of the cohort table.
    pub cohort_sha256: String,
    /// sha256 of the foundation model's weights.
    pub fm_sha256: String,
    /// sha256 of the sample-weights file, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_weights_sha256: Option<String>,
    /// Clients and their train sizes.
    pub clients: Vec<(String, usize)>,
}

/// What a finished `fed train` reports.
#[derive(Debug, Clone)]
pub struct FedTrainReport {
    /// The run folder written.
    pub out: PathBuf,
    /// Metrics per site and pooled.
    pub evaluation: Evaluation,
    /// Bytes per client per round.
    pub comm: CommLog,
    /// Wall time of this invocation (a resumed run counts only its own part).
    pub wall: Duration,
}

/// Runs `fed train`; `progress(done, total)` after every round.
///
/// # Errors
/// Bad options or inputs (each naming the option, file, site or tensor), an existing output without `force`, or
/// checkpoints of a different run in the work folder without `force`.
pub fn run(cfg: &FedTrainConfig, progress: &mut dyn FnMut(usize, usize)) -> Result<FedTrainReport> {
    let started = Instant::now();
    let opts = &cfg.options;
    if opts.rounds == 0 {
        return Err(FedError::option("rounds", "at least 1"));
    }
    if cfg.out.exists() && !cfg.force {
        return Err(cmr_core::CoreError::OutputExists { path: cfg.out.clone() }.into());
    }
    let fm = FmDir::open(&cfg.fm)?;
    let classifier = opts.classifier();
    classifier.validate(fm.config())?;
    let rows = cmr_core::cohort::read(&cfg.cohort)?;
    let clients = Clients::from_rows(&cfg.cohort, &rows, opts.task)?;
    let sites: Vec<(String, Vec<Example>)> = match opts.strategy {
        Strategy::Central => {
            vec![(CENTRAL_CLIENT.to_owned(), clients.pooled(Split::Train).into_iter().cloned().collect())]
        }
        _ => clients.clients.iter().map(|c| (c.site.clone(), c.train.clone())).collect(),
    };
    let subject_weights = opts.sample_weights.as_deref().map(|path| sample_weights(path, &rows, &sites)).transpose()?;
    let record = RunRecord {
        strategy: opts.strategy.name().to_owned(),
        task: opts.task.name().to_owned(),
        rounds: opts.rounds,
        local: opts.local_training(),
        classifier: classifier.clone(),
        shape_prior: opts.shape_prior,
        augment: opts.augment,
        share_head: opts.share_head,
        average_moments: opts.average_moments,
        min_clients: opts.min_clients,
        round_timeout_s: opts.round_timeout.map(|d| d.as_secs_f64()),
        seed: opts.seed,
        cohort_sha256: sha256_file(&cfg.cohort.join(cmr_core::cohort::COHORT_PARQUET))?,
        fm_sha256: fm.sha256().to_owned(),
        sample_weights_sha256: opts.sample_weights.as_deref().map(sha256_file).transpose()?,
        clients: sites.iter().map(|(id, train)| (id.clone(), train.len())).collect(),
    };
    let work = prepare_work_dir(&cfg.out, &record, cfg.force)?;

    // 1. one runtime per site, all from the same initial classifier
    let strategy = opts.strategy_config();
    let mut runtimes = Vec::with_capacity(sites.len());
    for (id, train) in sites {
        let model = Classifier::from_fm(&fm, classifier.clone(), &cfg.device)?;
        let names = cmr_nn::optim::named_vars(model.varmap(), |_| true);
        let trained = strategy.trained_names(names.iter().map(|(n, _)| n.as_str()));
        let weights = (crate::data::ClassWeights::of(&train), subject_weights.as_ref());
        let augmenter = Augmenter::new(opts.augment, AugmentConfig::default())?;
        let trainer = ClassifierTrainer::new(
            model,
            &trained,
            train,
            weights,
            (opts.shape_prior, augmenter),
            record.local.clone(),
        )?;
        runtimes.push(ClientRuntime::new(&id, Box::new(trainer), strategy.clone(), opts.seed)?.with_checkpoints(&work));
    }

    // 2. rounds
    let initial = match opts.strategy.federates() {
        true => strategy.shared(&runtimes[0].trainer().state()?),
        false => Default::default(),
    };
    let server_config =
        ServerConfig { rounds: opts.rounds, round_timeout: opts.round_timeout, checkpoint_dir: Some(work.clone()) };
    let mut server = Server::new(strategy.clone(), server_config, initial)?;
    let rounds = opts.rounds;
    let mut on_round = |r: &RoundRecord| progress(r.round, rounds);
    let mut transport = InProcess::new(runtimes)?;
    if opts.strategy.federates() {
        server.run(&mut transport, &mut on_round)?;
    } else {
        server.run_isolated(transport.runtimes_mut(), &mut on_round)?;
    }

    // 3. evaluation: each site's test subjects with the model that serves it
    let (global, _) = Moments::split(server.global());
    let evaluator = Classifier::from_fm(&fm, classifier, &cfg.device)?;
    let mut predictions = Vec::new();
    for client in &clients.clients {
        let runtime = match opts.strategy {
            Strategy::Central => &transport.runtimes()[0],
            _ => transport.runtimes().iter().find(|r| r.id() == client.site).expect("one runtime per site"),
        };
        let mut state = runtime.trainer().state()?;
        state.extend(global.iter().map(|(n, t)| (n.clone(), t.clone())));
        load_state(&evaluator, &state)?;
        predictions.extend(predict(&evaluator, &client.test, opts.shape_prior, record.local.batch)?);
    }

    // 4. outputs
    let out = OutputDir::create(&cfg.out, cfg.force)?;
    let evaluation = write_evaluation(out.path(), &predictions)?;
    let comm = server.comm_log();
    comm.write(&out.path().join("comm.json"))?;
    cmr_core::atomic::write_json(&out.path().join("rounds.json"), &server.records())?;
    cmr_core::atomic::write_json(&out.path().join("run.json"), &record)?;
    out.commit()?;
    std::fs::remove_dir_all(&work).map_err(|e| cmr_core::CoreError::io(&work, e))?;
    Ok(FedTrainReport { out: cfg.out.clone(), evaluation, comm, wall: started.elapsed() })
}

/// The weights file `path`, checked against the cohort: each of its subjects is one of the cohort's `rows`, and each
/// train subject of `sites` has a weight.
fn sample_weights(path: &Path, rows: &[CohortRow], sites: &[(String, Vec<Example>)]) -> Result<SubjectWeights> {
    let weights = SubjectWeights::read(path)?;
    let ids: HashSet<&str> = rows.iter().map(|r| r.subject_id.as_str()).collect();
    weights.check_known(|id| ids.contains(id))?;
    for example in sites.iter().flat_map(|(_, train)| train) {
        weights.of(&example.subject_id)?;
    }
    Ok(weights)
}

/// The checkpoint folder of a run: `.{name}.training` beside `out`, holding `run.json` of the run it belongs to.
/// Checkpoints of another run (other options or inputs) are an error, or removed with `force`.
fn prepare_work_dir(out: &Path, record: &RunRecord, force: bool) -> Result<PathBuf> {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let work = out.with_file_name(format!(".{name}.training"));
    let identity = serde_json::to_string_pretty(record).map_err(|e| FedError::option("run", e.to_string()))?;
    let marker = work.join("run.json");
    if work.exists() {
        let same = std::fs::read_to_string(&marker).is_ok_and(|saved| saved.trim_end() == identity);
        if same {
            tracing::info!(work = %work.display(), "resuming from checkpoints");
            return Ok(work);
        }
        if !force {
            return Err(FedError::input(
                &work,
                "holds checkpoints of a run with other options or inputs; use --force to discard them",
            ));
        }
        std::fs::remove_dir_all(&work).map_err(|e| cmr_core::CoreError::io(&work, e))?;
    }
    std::fs::create_dir_all(&work).map_err(|e| cmr_core::CoreError::io(&work, e))?;
    cmr_core::atomic::write_bytes(&marker, format!("{identity}\n").as_bytes())?;
    Ok(work)
}

/// Loads every tensor of `state` into `model`'s variable of the same name.
fn load_state(model: &Classifier, state: &crate::federated::NamedTensors) -> Result<()> {
    for (name, var) in cmr_nn::optim::named_vars(model.varmap(), |_| true) {
        let value = state.get(&name).ok_or_else(|| {
            FedError::message(format!("tensor {name}"), "a site's model lacks a variable of the classifier")
        })?;
        var.set(&value.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    Ok(())
}

/// Scores (probabilities of the positive class) of `examples` by `model`, in batches, without augmentation.
pub fn predict(model: &Classifier, examples: &[Example], prior: ShapePrior, batch: usize) -> Result<Vec<Prediction>> {
    let device = model.varmap().all_vars().first().map_or(Device::Cpu, |v| v.device().clone());
    let mut out = Vec::with_capacity(examples.len());
    for chunk in examples.chunks(batch.max(1)) {
        let inputs: Vec<_> = chunk.iter().map(|e| e.input(prior)).collect();
        let logits = model.forward(&stack_inputs(&inputs, &device)?)?.detach();
        let scores = candle_nn::ops::sigmoid(&logits)?.to_dtype(DType::F64)?.to_vec1::<f64>()?;
        out.extend(chunk.iter().zip(scores).map(|(e, y_score)| Prediction {
            subject_id: e.subject_id.clone(),
            site: e.site.clone(),
            y_true: e.label,
            y_score,
        }));
    }
    Ok(out)
}
