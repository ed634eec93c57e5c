//! Training (issue 6, item 5): the text-conditional base UNet first, then the ControlNet with the base frozen, as the
//! reference trains them. Each step draws slices of the train split with prompt-balanced weights, drops 10 % of the
//! prompts (classifier-free guidance, Ho & Salimans, arXiv 2207.12598, §3.2), noises the images at one random
//! timestep per sample (DDPM, Ho et al., arXiv 2006.11239, Algorithm 1) and regresses the noise (or velocity).
//!
//! Every random draw of step `k` comes from the stream `seed / diffusion / <stage> / step / k`, so a run resumed from
//! a checkpoint makes exactly the draws the uninterrupted run would have made, and ends with the same weights.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{DType, Device, Tensor, Var};
use candle_nn::VarMap;
use cmr_core::atomic::{self, OutputDir};
use cmr_nn::checkpoint::{self, Checkpoint, LoadMode};
use cmr_nn::layers::seeded_var_builder;
use cmr_nn::optim::{AdamW, AdamWConfig, Ema, EmaConfig, LrSchedule, ParamGroup};
use cmr_nn::text::SentenceEncoder;
use rand::distr::Distribution;
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::data::SliceSet;
use super::model_dir::{ModelDir, CONTROLNET_FILE, SCHEDULER_FILE, TRAINING_FILE, UNET_FILE};
use super::preview::validation_grid;
use super::sample::standard_normal;
use super::text::{PromptTable, UNCONDITIONAL};
use crate::error::{DiffusionError, Result};
use crate::models::{
    copy_encoder_from_unet, ControlNetConfig, ControlNetModel, TextContext, UNet2dConditionConfig, UNet2dConditionModel,
};
use crate::schedulers::{NoiseSchedule, SchedulerConfig};

/// Which network a run trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The text-conditional UNet.
    Base,
    /// The mask ControlNet on a frozen base.
    Controlnet,
}

impl Stage {
    /// The stage's name in files and seed streams.
    pub fn name(self) -> &'static str {
        match self {
            Self::Base => "base",
            Self::Controlnet => "controlnet",
        }
    }
}

/// Hyper-parameters of a run, recorded in `training.json`; a resumed run must have the same ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainOptions {
    /// Optimizer steps. Default `2000`.
    pub steps: usize,
    /// Slices per step. Default `8`.
    pub batch: usize,
    /// Peak learning rate of AdamW. Default `1e-3` (a small model from scratch: on the demo cohort it gives structured
    /// samples within 500 steps where 2e-4 still gave noise; the reference fine-tunes a large model at 1e-5).
    pub lr: f64,
    /// Decoupled weight decay. Default `1e-2` (diffusers' training scripts).
    pub weight_decay: f64,
    /// Linear warmup steps before the cosine decay. Default `100`.
    pub warmup_steps: usize,
    /// Global gradient-norm clip. Default `1.0`.
    pub max_grad_norm: f64,
    /// Upper bound of the EMA decay; the saved weights are the EMA's. Default `0.999`.
    pub ema_decay: f64,
    /// Probability of replacing a prompt by the empty prompt. Default `0.1`.
    pub prompt_dropout: f64,
    /// γ of the Min-SNR-γ loss weighting ([`NoiseSchedule::min_snr_weights`]); `0` trains on the plain MSE.
    /// Default `5` (Hang et al. 2023).
    pub snr_gamma: f64,
    /// Steps between resumable checkpoints. Default `100`.
    pub checkpoint_every: usize,
    /// Steps between validation grids (`previews/step-N.png`, current weights); `0`: only the final one
    /// (`preview.png`, EMA weights). Default `500`.
    pub preview_every: usize,
    /// Root seed of every random stream of the run. Default `0`.
    pub seed: u64,
    /// Store the published weights in float16 (half the size; training and sampling stay float32, and the final
    /// preview is drawn with the rounded weights). Default `true`.
    pub store_f16: bool,
    /// Architecture of the base UNet (base stage; the ControlNet stage takes its base's). Default
    /// [`UNet2dConditionConfig::demo`].
    pub unet: UNet2dConditionConfig,
    /// Widths of the ControlNet's mask encoder (ControlNet stage). Default `[16, 32]`.
    pub conditioning_embedding_out_channels: Vec<usize>,
    /// Noise schedule (base stage; the ControlNet stage takes its base's). Default: diffusers' DDPM defaults.
    pub scheduler: SchedulerConfig,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            steps: 2000,
            batch: 8,
            lr: 1e-3,
            weight_decay: 1e-2,
            warmup_steps: 100,
            max_grad_norm: 1.0,
            ema_decay: 0.999,
            prompt_dropout: 0.1,
            snr_gamma: 5.0,
            checkpoint_every: 100,
            preview_every: 500,
            seed: 0,
            store_f16: true,
            unet: UNet2dConditionConfig::demo(),
            conditioning_embedding_out_channels: vec![16, 32],
            scheduler: SchedulerConfig::default(),
        }
    }
}

impl TrainOptions {
    fn validate(&self) -> Result<()> {
        let positive = [("steps", self.steps), ("batch", self.batch), ("checkpoint_every", self.checkpoint_every)];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(DiffusionError::option(name, "must be at least 1"));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(DiffusionError::option("lr", format!("must be positive, got {}", self.lr)));
        }
        if !(0.0..1.0).contains(&self.prompt_dropout) {
            return Err(DiffusionError::option(
                "prompt_dropout",
                format!("must be in [0, 1), got {}", self.prompt_dropout),
            ));
        }
        if !(self.snr_gamma >= 0.0 && self.snr_gamma.is_finite()) {
            return Err(DiffusionError::option(
                "snr_gamma",
                format!("must be 0 (off) or positive, got {}", self.snr_gamma),
            ));
        }
        if !(0.0..1.0).contains(&self.ema_decay) {
            return Err(DiffusionError::option("ema_decay", format!("must be in [0, 1), got {}", self.ema_decay)));
        }
        Ok(())
    }
}

/// Everything a training run needs.
#[derive(Debug)]
pub struct TrainConfig<'a> {
    /// Cohort folder; its train split is the data.
    pub cohort: PathBuf,
    /// Model folder to write.
    pub out: PathBuf,
    /// What to train.
    pub stage: Stage,
    /// Base model folder (ControlNet stage).
    pub base: Option<PathBuf>,
    /// Hyper-parameters.
    pub options: TrainOptions,
    /// The frozen text encoder (all-MiniLM-L6-v2).
    pub text_encoder: &'a SentenceEncoder,
    /// Where to train.
    pub device: Device,
    /// Replace an existing model folder.
    pub force: bool,
}

/// What a training run did. `resumed_from` and `seconds` describe this process, so they are only returned (and
/// logged), never written into the model folder: the folder depends on the configuration and the data alone, so an
/// interrupted-and-resumed run writes the very bytes of an uninterrupted one (see [`TrainingRecord`]).
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    /// The model folder written.
    pub out: PathBuf,
    /// The stage trained.
    pub stage: Stage,
    /// Steps taken in total.
    pub steps: usize,
    /// Step the run resumed from (0: a fresh start).
    pub resumed_from: usize,
    /// Mean loss of the last (up to) 50 steps of the run (steps before a resume included).
    pub final_loss: f64,
    /// Train-split subjects and slices used.
    pub subjects: usize,
    /// Slices used.
    pub slices: usize,
    /// Distinct prompts.
    pub prompts: usize,
    /// Trainable parameters.
    pub parameters: usize,
    /// sha256 of the saved weights.
    pub sha256: String,
    /// Wall-clock seconds of this process.
    pub seconds: f64,
}

/// `training.json`: what the model folder is the result of — options, data, the loss of every step, the weights'
/// sha256 — and nothing about the process that wrote it.
#[derive(Debug, Clone, Serialize)]
pub struct TrainingRecord<'a> {
    /// The stage trained.
    pub stage: Stage,
    /// Hyper-parameters, seed included.
    pub options: &'a TrainOptions,
    /// sha256 of the cohort table trained on.
    pub cohort_sha256: &'a str,
    /// Train-split subjects used.
    pub subjects: usize,
    /// Slices used.
    pub slices: usize,
    /// Distinct prompts.
    pub prompts: usize,
    /// Trainable parameters.
    pub parameters: usize,
    /// Mean loss of the last (up to) 50 steps.
    pub final_loss: f64,
    /// Loss of every step, in order.
    pub losses: &'a [f64],
    /// sha256 of the saved weights.
    pub sha256: &'a str,
}

/// The network being trained, with its frozen companion.
enum Trainee {
    Base(UNet2dConditionModel),
    Controlnet { base: Box<UNet2dConditionModel>, controlnet: ControlNetModel },
}

impl Trainee {
    fn networks(&self) -> (&UNet2dConditionModel, Option<&ControlNetModel>) {
        match self {
            Self::Base(unet) => (unet, None),
            Self::Controlnet { base, controlnet } => (base, Some(controlnet)),
        }
    }

    fn predict(&self, noisy: &Tensor, t: &Tensor, text: TextContext, condition: &Tensor) -> Result<Tensor> {
        Ok(match self.networks() {
            (unet, None) => unet.forward(noisy, t, Some(text))?,
            (base, Some(controlnet)) => {
                let residuals = controlnet.forward(noisy, t, Some(text), condition, 1.0)?;
                base.forward_with_additional_residuals(noisy, t, Some(text), &residuals)?
            }
        })
    }

    /// The validation grid (see [`super::preview`]) with the current weights.
    fn preview(
        &self,
        scheduler: &SchedulerConfig,
        data: (&SliceSet, &PromptTable),
        device: &Device,
        seed: u64,
    ) -> Result<Vec<u8>> {
        let (unet, controlnet) = self.networks();
        validation_grid(unet, controlnet, scheduler, data, device, seed)
    }
}

/// Resumable state, written every `checkpoint_every` steps to a hidden folder beside the model folder.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct ResumeState {
    stage: Stage,
    options: TrainOptions,
    base_sha256: Option<String>,
    /// sha256 of the cohort table: a checkpoint made on other data is not resumed.
    cohort_sha256: String,
    step: usize,
    /// The loss of every step before `step`, so that a resumed run records the whole history.
    losses: Vec<f64>,
}

impl ResumeState {
    /// Whether `self` was saved by a run of the same stage, options, base and data as `other`.
    fn same_run(&self, other: &Self) -> bool {
        (self.stage, &self.options, &self.base_sha256, &self.cohort_sha256)
            == (other.stage, &other.options, &other.base_sha256, &other.cohort_sha256)
    }
}

/// Trains one stage and writes the model folder (see [`super::model_dir`]). `progress(step, steps, loss)` is called
/// after every step.
pub fn run(cfg: &TrainConfig, progress: &dyn Fn(usize, usize, f64)) -> Result<TrainReport> {
    let started = Instant::now();
    let opts = &cfg.options;
    // 1. check inputs
    opts.validate()?;
    if cfg.out.exists() && !cfg.force {
        return Err(cmr_core::CoreError::OutputExists { path: cfg.out.clone() }.into());
    }
    let base = match (cfg.stage, &cfg.base) {
        (Stage::Controlnet, Some(path)) => Some(ModelDir::open(path)?),
        (Stage::Controlnet, None) => return Err(DiffusionError::option("base", "the ControlNet stage needs --base")),
        (Stage::Base, _) => None,
    };
    let rows = cmr_core::cohort::read(&cfg.cohort)?;
    let slices = SliceSet::load(&cfg.cohort, &rows)?;
    let table = PromptTable::build(cfg.text_encoder, slices.prompts().iter().map(String::as_str))?;

    // 2. networks
    let (dtype, device) = (DType::F32, &cfg.device);
    let varmap = VarMap::new();
    let vb = seeded_var_builder(
        &varmap,
        cmr_core::seed::derive(opts.seed, &["diffusion", cfg.stage.name(), "init"]),
        dtype,
        device,
    );
    let (trainee, scheduler) = match &base {
        None => (Trainee::Base(UNet2dConditionModel::new(vb, opts.unet.clone())?), opts.scheduler.clone()),
        Some(base) => {
            let config = ControlNetConfig {
                unet: base.unet_config()?,
                conditioning_embedding_out_channels: opts.conditioning_embedding_out_channels.clone(),
                ..Default::default()
            };
            let controlnet = ControlNetModel::new(vb, config)?;
            copy_encoder_from_unet(&varmap, &base.unet_varmap(device)?)?;
            let base_unet = base.unet(dtype, device)?;
            (Trainee::Controlnet { base: Box::new(base_unet), controlnet }, base.scheduler().clone())
        }
    };
    let (h, w) = slices.size();
    let multiple = opts.unet.size_multiple();
    if h % multiple != 0 || w % multiple != 0 {
        return Err(DiffusionError::input(
            &cfg.cohort,
            format!("slices are {h}×{w}; the UNet needs multiples of {multiple}"),
        ));
    }
    let vars = named_vars(&varmap);
    let parameters = vars.iter().map(|(_, v)| v.elem_count()).sum();

    // 3. optimizer, EMA, resume
    let adamw = AdamWConfig {
        max_grad_norm: Some(opts.max_grad_norm),
        schedule: LrSchedule::WarmupCosine { warmup: opts.warmup_steps, total: opts.steps, min_ratio: 0.0 },
        ..Default::default()
    };
    let mut optimizer = AdamW::new(vec![ParamGroup::new(vars.clone(), opts.lr, opts.weight_decay)], adamw)?;
    let mut ema = Ema::new(&vars, EmaConfig { decay: opts.ema_decay })?;
    let state = ResumeState {
        stage: cfg.stage,
        options: opts.clone(),
        base_sha256: base.as_ref().map(ModelDir::generator_sha256),
        cohort_sha256: cmr_core::manifest::sha256_file(&cfg.cohort.join(cmr_core::cohort::COHORT_PARQUET))?,
        step: 0,
        losses: Vec::new(),
    };
    let resume_dir = resume_dir(&cfg.out);
    let (start, mut losses) = resume(&resume_dir, &state, &varmap, &mut optimizer, &mut ema)?;

    // 4. train
    let schedule = scheduler.noise_schedule()?;
    let sampler = slices.balanced_sampler();
    for step in start..opts.steps {
        let mut rng = cmr_core::seed::rng(opts.seed, &["diffusion", cfg.stage.name(), "step", &step.to_string()]);
        let indices: Vec<usize> = (0..opts.batch).map(|_| sampler.sample(&mut rng)).collect();
        let batch = slices.batch(&indices, device)?;
        let prompts: Vec<&str> = batch
            .prompts
            .iter()
            .map(|p| if rng.random::<f64>() < opts.prompt_dropout { UNCONDITIONAL } else { p.as_str() })
            .collect();
        let (context, mask) = table.gather(&prompts, dtype, device)?;
        let timesteps: Vec<usize> =
            (0..opts.batch).map(|_| rng.random_range(0..scheduler.num_train_timesteps)).collect();
        let noise = standard_normal(&batch.images, &mut rng)?;
        let noisy = schedule.add_noise(&batch.images, &noise, &timesteps)?;
        let target = schedule.target(&batch.images, &noise, &timesteps)?;
        let t = Tensor::from_vec(timesteps.iter().map(|&t| t as u32).collect::<Vec<_>>(), opts.batch, device)?;
        let text = TextContext { states: &context, mask: Some(&mask) };
        let prediction = trainee.predict(&noisy, &t, text, &batch.conditions)?;
        let loss = weighted_mse(&prediction, &target, &schedule, &timesteps, opts.snr_gamma)?;
        let mut grads = loss.backward()?;
        optimizer.step(&mut grads)?;
        ema.update(&vars)?;
        let loss = loss.to_scalar::<f32>()? as f64;
        if !loss.is_finite() {
            return Err(DiffusionError::option("lr", format!("the loss diverged at step {step} ({loss})")));
        }
        losses.push(loss);
        progress(step + 1, opts.steps, loss);
        if opts.preview_every > 0 && (step + 1) % opts.preview_every == 0 && step + 1 < opts.steps {
            let png = trainee.preview(&scheduler, (&slices, &table), device, opts.seed)?;
            let previews = resume_dir.join(PREVIEWS);
            std::fs::create_dir_all(&previews).map_err(|e| cmr_core::CoreError::io(&previews, e))?;
            atomic::write_bytes(&previews.join(format!("step-{}.png", step + 1)), &png)?;
        }
        if (step + 1) % opts.checkpoint_every == 0 && step + 1 < opts.steps {
            let saved = ResumeState { step: step + 1, losses: losses.clone(), ..state.clone() };
            save_resume(&resume_dir, &saved, &varmap, &optimizer, &ema)?;
        }
    }

    // 5. write the model folder: EMA weights, configs, model card
    ema.copy_to(&vars)?;
    let weights = published_weights(&vars, opts.store_f16)?;
    let out = OutputDir::create(&cfg.out, cfg.force)?;
    let sha256 = match (&trainee, &base) {
        (Trainee::Base(unet), _) => checkpoint::save(&out.path().join(UNET_FILE), &weights, unet.config())?,
        (Trainee::Controlnet { controlnet, .. }, Some(base)) => {
            copy_unet_files(base.path(), out.path())?;
            checkpoint::save(&out.path().join(CONTROLNET_FILE), &weights, controlnet.config())?
        }
        (Trainee::Controlnet { .. }, None) => unreachable!("a ControlNet run always has a base"),
    };
    atomic::write_json(&out.path().join(SCHEDULER_FILE), &scheduler)?;
    let png = trainee.preview(&scheduler, (&slices, &table), device, opts.seed)?;
    atomic::write_bytes(&out.path().join("preview.png"), &png)?;
    copy_previews(&resume_dir.join(PREVIEWS), &out.path().join(PREVIEWS))?;
    let tail = &losses[losses.len().saturating_sub(50)..];
    let record = TrainingRecord {
        stage: cfg.stage,
        options: opts,
        cohort_sha256: &state.cohort_sha256,
        subjects: slices.subject_count(),
        slices: slices.len(),
        prompts: table.len(),
        parameters,
        final_loss: if tail.is_empty() { f64::NAN } else { tail.iter().sum::<f64>() / tail.len() as f64 },
        losses: &losses,
        sha256: &sha256,
    };
    atomic::write_json(&out.path().join(TRAINING_FILE), &record)?;
    atomic::write_bytes(&out.path().join("README.md"), model_card(&record).as_bytes())?;
    out.commit()?;
    if resume_dir.exists() {
        std::fs::remove_dir_all(&resume_dir).map_err(|e| cmr_core::CoreError::io(&resume_dir, e))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    tracing::info!("{}: {} steps (resumed from step {start}) in {seconds:.1} s", cfg.out.display(), opts.steps);
    Ok(TrainReport {
        out: cfg.out.clone(),
        stage: cfg.stage,
        steps: opts.steps,
        resumed_from: start,
        final_loss: record.final_loss,
        subjects: record.subjects,
        slices: record.slices,
        prompts: record.prompts,
        parameters,
        sha256,
        seconds,
    })
}

/// The tensors to publish: `vars` as they are, or rounded to float16 — then the variables are set to the rounded
/// values too, so that what is sampled afterwards is what the file holds.
fn published_weights(vars: &[(String, Var)], f16: bool) -> Result<BTreeMap<String, Tensor>> {
    let mut weights = BTreeMap::new();
    for (name, var) in vars {
        let tensor = if f16 {
            let half = var.as_tensor().to_dtype(DType::F16)?;
            var.set(&half.to_dtype(var.dtype())?)?;
            half
        } else {
            var.as_tensor().clone()
        };
        weights.insert(name.clone(), tensor);
    }
    Ok(weights)
}

/// Mean squared error of `prediction` against `target`, each sample weighted by its Min-SNR-γ weight when `gamma` > 0.
fn weighted_mse(
    prediction: &Tensor,
    target: &Tensor,
    schedule: &NoiseSchedule,
    timesteps: &[usize],
    gamma: f64,
) -> Result<Tensor> {
    let squared = (prediction - target)?.sqr()?;
    if gamma == 0.0 {
        return Ok(squared.mean_all()?);
    }
    let per_sample = squared.flatten_from(1)?.mean(1)?;
    let weights: Vec<f32> = schedule.min_snr_weights(timesteps, gamma)?.into_iter().map(|w| w as f32).collect();
    let weights = Tensor::from_vec(weights, timesteps.len(), prediction.device())?.to_dtype(prediction.dtype())?;
    Ok((per_sample * weights)?.mean_all()?)
}

/// Variables of `varmap` with their names, sorted by name (a fixed order for the optimizer and the EMA).
fn named_vars(varmap: &VarMap) -> Vec<(String, Var)> {
    let data = varmap.data().lock().expect("VarMap lock poisoned");
    let mut vars: Vec<(String, Var)> = data.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    vars
}

/// `.{name}.resume` beside the model folder.
fn resume_dir(out: &Path) -> PathBuf {
    let name = out.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    out.with_file_name(format!(".{name}.resume"))
}

const RESUME_STATE: &str = "state.json";
/// Folder of the intermediate validation grids (in the resume folder, then in the model folder).
const PREVIEWS: &str = "previews";

/// Copies the intermediate validation grids, if any, into the model folder.
fn copy_previews(from: &Path, to: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(from) else { return Ok(()) };
    std::fs::create_dir_all(to).map_err(|e| cmr_core::CoreError::io(to, e))?;
    for entry in entries.flatten() {
        let target = to.join(entry.file_name());
        std::fs::copy(entry.path(), &target).map_err(|e| cmr_core::CoreError::io(&target, e))?;
    }
    Ok(())
}

/// Loads the resumable state in `dir` when it belongs to this very run (same stage, options, base and data); returns
/// the step to start from and the losses of the steps before it. A state of another run is discarded.
fn resume(
    dir: &Path,
    state: &ResumeState,
    varmap: &VarMap,
    optimizer: &mut AdamW,
    ema: &mut Ema,
) -> Result<(usize, Vec<f64>)> {
    let fresh = Ok((0, Vec::new()));
    let Ok(text) = std::fs::read_to_string(dir.join(RESUME_STATE)) else { return fresh };
    let saved: ResumeState = match serde_json::from_str(&text) {
        Ok(saved) => saved,
        Err(_) => return fresh,
    };
    if !saved.same_run(state) || saved.losses.len() != saved.step {
        tracing::warn!("{}: checkpoint of a different run; starting afresh", dir.display());
        return fresh;
    }
    let step_dir = dir.join(format!("step-{}", saved.step));
    Checkpoint::load(&step_dir.join("model.safetensors"), &Device::Cpu)?.load_into(varmap, LoadMode::Strict)?;
    optimizer.load_state(&step_dir.join("optimizer.safetensors"))?;
    ema.load(&step_dir.join("ema.safetensors"))?;
    tracing::info!("resuming from step {} ({})", saved.step, step_dir.display());
    Ok((saved.step, saved.losses))
}

/// Writes the state of `state.step` into `dir/step-N/`, then points `dir/state.json` at it (atomically), then
/// removes older step folders: a kill at any moment leaves a complete checkpoint behind.
fn save_resume(dir: &Path, state: &ResumeState, varmap: &VarMap, optimizer: &AdamW, ema: &Ema) -> Result<()> {
    let step_dir = dir.join(format!("step-{}", state.step));
    checkpoint::save_varmap(&step_dir.join("model.safetensors"), varmap, &serde_json::json!({}))?;
    optimizer.save_state(&step_dir.join("optimizer.safetensors"))?;
    ema.save(&step_dir.join("ema.safetensors"))?;
    atomic::write_json(&dir.join(RESUME_STATE), state)?;
    let entries = std::fs::read_dir(dir).map_err(|e| cmr_core::CoreError::io(dir, e))?;
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && path != step_dir && !path.ends_with(PREVIEWS) {
            std::fs::remove_dir_all(&path).map_err(|e| cmr_core::CoreError::io(&path, e))?;
        }
    }
    Ok(())
}

/// Copies the base UNet's weight file and sidecars into a ControlNet model folder.
fn copy_unet_files(base: &Path, out: &Path) -> Result<()> {
    let weights = base.join(UNET_FILE);
    for from in [weights.clone(), checkpoint::config_path(&weights), checkpoint::sha256_path(&weights)] {
        let to = out.join(from.file_name().expect("a file name"));
        std::fs::copy(&from, &to).map_err(|e| cmr_core::CoreError::io(&from, e))?;
    }
    Ok(())
}

/// The model card: what was trained, on what, how, and how to reproduce it.
fn model_card(report: &TrainingRecord) -> String {
    let o = report.options;
    let mut card = BTreeMap::new();
    card.insert("stage", report.stage.name().to_string());
    card.insert("cohort table sha256", report.cohort_sha256.to_string());
    card.insert(
        "data",
        format!("{} train subjects, {} slices, {} prompts", report.subjects, report.slices, report.prompts),
    );
    card.insert(
        "steps",
        format!("{} (batch {}, lr {}, warmup {}, EMA ≤ {})", o.steps, o.batch, o.lr, o.warmup_steps, o.ema_decay),
    );
    card.insert(
        "loss",
        if o.snr_gamma > 0.0 { format!("MSE, Min-SNR-{} weighted", o.snr_gamma) } else { "MSE".into() },
    );
    card.insert("weights dtype", if o.store_f16 { "float16" } else { "float32" }.into());
    card.insert("seed", o.seed.to_string());
    card.insert("parameters", report.parameters.to_string());
    card.insert("final loss", format!("{:.5} (mean of the last 50 steps)", report.final_loss));
    card.insert("weights sha256", report.sha256.to_string());
    card.insert(
        "command",
        match command_line(report) {
            Some(command) => format!("`{command}` (COHORT: a cohort folder with the table sha256 above)"),
            None => "options the command line does not set differ from their defaults: see `training.json`".into(),
        },
    );
    let mut text = format!(
        "# cmr-debias diffusion model: {}\n\nTrained by `cmr-debias diffusion train`; weights are the EMA average. \
         Images are 2-channel (ED, ES) short-axis slices scaled to [-1, 1]; the text condition is \
         all-MiniLM-L6-v2's per-token states of the subject prompt{}.\n\n",
        report.stage.name(),
        if report.stage == Stage::Controlnet {
            "; the ControlNet adds the one-hot mask (4 classes × ED/ES)"
        } else {
            ""
        },
    );
    for (key, value) in card {
        text.push_str(&format!("- **{key}**: {value}\n"));
    }
    text.push_str(
        "\nFull options: `training.json`. Sampling: `cmr-debias diffusion generate --model <this folder>`.\n",
    );
    text
}

/// The `cmr-debias diffusion train` command that trains this model again from its cohort, with every option the
/// command line sets written out; `None` when another option differs from its default.
fn command_line(report: &TrainingRecord) -> Option<String> {
    let o = report.options;
    let set_by_cli = TrainOptions {
        steps: o.steps,
        batch: o.batch,
        lr: o.lr,
        snr_gamma: o.snr_gamma,
        seed: o.seed,
        checkpoint_every: o.checkpoint_every,
        ..TrainOptions::default()
    };
    if *o != set_by_cli {
        return None;
    }
    let base = if report.stage == Stage::Controlnet { " --base BASE_MODEL_DIR" } else { "" };
    Some(format!(
        "cmr-debias diffusion train --cohort COHORT --out MODEL_DIR --stage {}{base} --steps {} --batch {} --lr {} \
         --snr-gamma {} --seed {} --checkpoint-every {}",
        report.stage.name(),
        o.steps,
        o.batch,
        o.lr,
        o.snr_gamma,
        o.seed,
        o.checkpoint_every
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_snr_weighting_scales_each_sample_error_by_its_weight() {
        let schedule = SchedulerConfig::default().noise_schedule().unwrap();
        let timesteps = [0, 999];
        // sample 0 errs by 1 everywhere, sample 1 by 2: squared errors 1 and 4
        let prediction = Tensor::from_vec(vec![1f32, 1., 1., 1., 2., 2., 2., 2.], (2, 1, 2, 2), &Device::Cpu).unwrap();
        let target = prediction.zeros_like().unwrap();
        let plain = weighted_mse(&prediction, &target, &schedule, &timesteps, 0.0).unwrap();
        assert!((plain.to_scalar::<f32>().unwrap() - 2.5).abs() < 1e-6);
        let w = schedule.min_snr_weights(&timesteps, 5.0).unwrap();
        assert!(w[0] < 1e-3 && w[1] == 1.0, "ε weights: γ/SNR at t = 0, 1 once SNR < γ: {w:?}");
        let weighted = weighted_mse(&prediction, &target, &schedule, &timesteps, 5.0).unwrap();
        let expected = (w[0] * 1.0 + w[1] * 4.0) / 2.0;
        assert!((weighted.to_scalar::<f32>().unwrap() as f64 - expected).abs() < 1e-6);
    }
}
