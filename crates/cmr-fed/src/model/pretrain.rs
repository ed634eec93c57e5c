//! `fm pretrain` (issue 7, item 1): masked-autoencoder pretraining (He et al., arXiv 2111.06377) of the 3D ViT on
//! the images of every train-split subject of every site of a cohort, without labels. AdamW with MAE's betas
//! (0.9, 0.95) and weight decay 0.05, linear warmup then cosine decay (MAE, Appendix A.1, Table 8), one shuffle of
//! the subjects per epoch, one random masking per step.
//!
//! Every random draw comes from a named stream of the seed (`fm/pretrain/init`, `…/epoch/{e}`, `…/mask/{step}`), so
//! the same cohort and seed give a byte-identical `fm.safetensors` (on CPU).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarMap;
use cmr_core::atomic::{self, OutputDir};
use cmr_core::Split;
use cmr_nn::checkpoint;
use cmr_nn::layers::seeded_var_builder;
use cmr_nn::optim::{AdamW, AdamWConfig, LrSchedule, ParamGroup};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::config::ViTConfig;
use super::dir::{FM_FILE, README_FILE, TRAINING_FILE};
use super::mae::{Mae, Masking};
use crate::error::{FedError, Result};

/// Hyper-parameters of a pretraining run, recorded in `training.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PretrainOptions {
    /// Passes over the train split. Default `40`.
    pub epochs: usize,
    /// Subjects per step (the last step of an epoch takes the rest). Default `8`.
    pub batch: usize,
    /// Peak learning rate. Default `5e-4`: MAE's `1.5e-4 · batch/256` is tuned for 4096-image batches and 800
    /// epochs; a cohort of hundreds of subjects needs a larger rate to move in a few hundred steps.
    pub lr: f64,
    /// Decoupled weight decay. Default `0.05` (MAE).
    pub weight_decay: f64,
    /// Epochs of linear warmup before the cosine decay. Default `2` (MAE: 40 of 800).
    pub warmup_epochs: usize,
    /// Fraction of patch tokens masked. Default `0.75` (MAE).
    pub mask_ratio: f64,
    /// Regress each patch normalised to zero mean and unit variance. Default `true` (MAE's best setting).
    pub norm_pix_loss: bool,
    /// Root seed of every random stream. Default `0`.
    pub seed: u64,
    /// Architecture; its `volume` must be the cohort's. Default [`ViTConfig::tiny`].
    pub vit: ViTConfig,
}

impl Default for PretrainOptions {
    fn default() -> Self {
        Self {
            epochs: 40,
            batch: 8,
            lr: 5e-4,
            weight_decay: 0.05,
            warmup_epochs: 2,
            mask_ratio: 0.75,
            norm_pix_loss: true,
            seed: 0,
            vit: ViTConfig::tiny(),
        }
    }
}

impl PretrainOptions {
    fn validate(&self) -> Result<()> {
        if let Some((name, _)) = [("epochs", self.epochs), ("batch", self.batch)].iter().find(|(_, v)| *v == 0) {
            return Err(FedError::option(name, "must be at least 1"));
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return Err(FedError::option("lr", format!("must be positive, got {}", self.lr)));
        }
        if !(self.mask_ratio > 0.0 && self.mask_ratio < 1.0) {
            return Err(FedError::option("mask_ratio", format!("must be in (0, 1), got {}", self.mask_ratio)));
        }
        self.vit.validate()
    }
}

/// Everything a pretraining run needs.
#[derive(Debug, Clone)]
pub struct PretrainConfig {
    /// Cohort folder; the images of its train split (all sites) are the data.
    pub cohort: PathBuf,
    /// Model folder to write.
    pub out: PathBuf,
    /// Hyper-parameters and architecture.
    pub options: PretrainOptions,
    /// Where to train.
    pub device: Device,
    /// Replace an existing model folder.
    pub force: bool,
}

/// Where a run is, after each optimizer step.
#[derive(Debug, Clone, Copy)]
pub struct PretrainProgress {
    /// Current epoch, from 1.
    pub epoch: usize,
    /// Epochs in the run.
    pub epochs: usize,
    /// Steps taken so far, from 1.
    pub step: usize,
    /// Steps in the run.
    pub steps: usize,
    /// Loss of this step.
    pub loss: f64,
}

/// What a pretraining run did (also in `training.json`).
#[derive(Debug, Clone, Serialize)]
pub struct PretrainReport {
    /// The model folder written.
    pub out: PathBuf,
    /// Train-split subjects used.
    pub subjects: usize,
    /// Epochs run.
    pub epochs: usize,
    /// Optimizer steps taken.
    pub steps: usize,
    /// Mean loss of each epoch.
    pub epoch_losses: Vec<f64>,
    /// Parameters (encoder and decoder).
    pub parameters: usize,
    /// sha256 of `fm.safetensors`.
    pub sha256: String,
    /// sha256 of the cohort table the run read.
    pub cohort_sha256: String,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Pretrains the MAE and writes the model folder (see [`super::dir`]); `progress` is called after every step.
pub fn run(cfg: &PretrainConfig, progress: &mut dyn FnMut(PretrainProgress)) -> Result<PretrainReport> {
    let started = Instant::now();
    let opts = &cfg.options;
    // 1. check inputs, read the train images
    opts.validate()?;
    if cfg.out.exists() && !cfg.force {
        return Err(cmr_core::CoreError::OutputExists { path: cfg.out.clone() }.into());
    }
    let images = train_images(cfg)?;
    let cohort_sha256 = cmr_core::manifest::sha256_file(&cfg.cohort.join(cmr_core::cohort::COHORT_PARQUET))?;

    // 2. model and optimizer
    let (vit, device) = (&opts.vit, &cfg.device);
    let varmap = VarMap::new();
    let init = cmr_core::seed::derive(opts.seed, &["fm", "pretrain", "init"]);
    let mae = Mae::new(seeded_var_builder(&varmap, init, DType::F32, device), vit)?;
    let vars = cmr_nn::optim::named_vars(&varmap, |_| true);
    let parameters = vars.iter().map(|(_, v)| v.elem_count()).sum();
    let steps_per_epoch = images.len().div_ceil(opts.batch);
    let steps = opts.epochs * steps_per_epoch;
    let adamw = AdamWConfig {
        beta2: 0.95,
        schedule: LrSchedule::WarmupCosine {
            warmup: opts.warmup_epochs * steps_per_epoch,
            total: steps,
            min_ratio: 0.0,
        },
        ..Default::default()
    };
    let mut optimizer = AdamW::new(vec![ParamGroup::new(vars, opts.lr, opts.weight_decay)], adamw)?;

    // 3. train
    let mut epoch_losses = Vec::with_capacity(opts.epochs);
    let mut step = 0;
    for epoch in 0..opts.epochs {
        let mut order: Vec<usize> = (0..images.len()).collect();
        order.shuffle(&mut cmr_core::seed::rng(opts.seed, &["fm", "pretrain", "epoch", &epoch.to_string()]));
        let mut sum = 0.0;
        for chunk in order.chunks(opts.batch) {
            let batch = Tensor::stack(&chunk.iter().map(|&i| &images[i]).collect::<Vec<_>>(), 0)?.to_device(device)?;
            let mut rng = cmr_core::seed::rng(opts.seed, &["fm", "pretrain", "mask", &step.to_string()]);
            let masking = Masking::random(chunk.len(), vit.tokens(), opts.mask_ratio, &mut rng, device)?;
            let loss = mae.loss(&batch, &masking, opts.norm_pix_loss)?;
            optimizer.step(&mut loss.backward()?)?;
            let loss = f64::from(loss.to_scalar::<f32>()?);
            if !loss.is_finite() {
                return Err(FedError::option("lr", format!("the loss diverged at step {step} ({loss}); lower --lr")));
            }
            sum += loss;
            step += 1;
            progress(PretrainProgress { epoch: epoch + 1, epochs: opts.epochs, step, steps, loss });
        }
        epoch_losses.push(sum / steps_per_epoch as f64);
    }

    // 4. write the model folder
    let out = OutputDir::create(&cfg.out, cfg.force)?;
    let sha256 = checkpoint::save_varmap(&out.path().join(FM_FILE), &varmap, vit)?;
    let report = PretrainReport {
        out: cfg.out.clone(),
        subjects: images.len(),
        epochs: opts.epochs,
        steps,
        epoch_losses,
        parameters,
        sha256,
        cohort_sha256,
        seconds: started.elapsed().as_secs_f64(),
    };
    // Only what the inputs and options determine goes into the folder, so the same run gives the same bytes: no
    // wall time, no output or cohort path (the cohort is identified by its sha256).
    let mut record = serde_json::to_value(&report).map_err(|e| FedError::option("report", e.to_string()))?;
    if let Some(fields) = record.as_object_mut() {
        fields.remove("out");
        fields.remove("seconds");
    }
    let training = serde_json::json!({ "options": opts, "report": record });
    atomic::write_json(&out.path().join(TRAINING_FILE), &training)?;
    atomic::write_bytes(&out.path().join(README_FILE), model_card(opts, &report).as_bytes())?;
    out.commit()?;
    Ok(report)
}

/// The images `(c, S, H, W)` of every train-split subject, in cohort order, checked against the architecture.
fn train_images(cfg: &PretrainConfig) -> Result<Vec<Tensor>> {
    let vit = &cfg.options.vit;
    let want = [vit.in_channels, vit.volume[0], vit.volume[1], vit.volume[2]];
    let mut images = Vec::new();
    for row in cmr_core::cohort::read(&cfg.cohort)?.iter().filter(|r| r.split == Split::Train) {
        let path = cfg.cohort.join(&row.tensor_path);
        let image = cmr_io::store::read_tensor(&path)?.image;
        if image.shape() != want {
            return Err(FedError::input(
                &path,
                format!(
                    "subject {} has an image of shape {:?}; the model takes {want:?} (channels, S, H, W): choose a \
                     config whose volume is the cohort's, or ingest with that size",
                    row.subject_id,
                    image.shape()
                ),
            ));
        }
        let values: Vec<f32> = image.iter().copied().collect();
        images.push(Tensor::from_vec(values, &want, &Device::Cpu)?);
    }
    if images.is_empty() {
        return Err(FedError::input(&cfg.cohort, "no train-split subject to pretrain on"));
    }
    Ok(images)
}

/// The model card: what the model is, on what and how it was trained.
fn model_card(opts: &PretrainOptions, report: &PretrainReport) -> String {
    let v = &opts.vit;
    let mut card = BTreeMap::new();
    card.insert(
        "architecture",
        format!(
            "3D ViT, dim {}, {} blocks, {} heads, MLP ×{}; {} channels × {:?} in {}×{}×{} patches ({} tokens); \
             MAE decoder dim {}, {} blocks, {} heads",
            v.dim,
            v.depth,
            v.heads,
            v.mlp_ratio,
            v.in_channels,
            v.volume,
            v.patch_depth,
            v.patch_size,
            v.patch_size,
            v.tokens(),
            v.decoder_dim,
            v.decoder_depth,
            v.decoder_heads
        ),
    );
    card.insert("parameters", report.parameters.to_string());
    card.insert("data", format!("{} train-split subjects (all sites), images only", report.subjects));
    card.insert("cohort table sha256", report.cohort_sha256.clone());
    card.insert(
        "objective",
        format!(
            "masked autoencoder, {:.0} % of patches masked, MSE on masked patches{}",
            100.0 * opts.mask_ratio,
            if opts.norm_pix_loss { " (per-patch normalised pixels)" } else { "" }
        ),
    );
    card.insert(
        "training",
        format!(
            "{} epochs, {} steps, batch {}, AdamW lr {} (warmup {} epochs, cosine), weight decay {}, seed {}",
            opts.epochs, report.steps, opts.batch, opts.lr, opts.warmup_epochs, opts.weight_decay, opts.seed
        ),
    );
    let last = report.epoch_losses.last().copied().unwrap_or(f64::NAN);
    card.insert("final loss", format!("{last:.5} (mean of the last epoch)"));
    card.insert("weights sha256", report.sha256.clone());
    let mut text = String::from(
        "# cmr-debias foundation model\n\nA 3D Vision Transformer over the short-axis ED/ES stack, pretrained by \
         `cmr-debias fm pretrain` as a masked autoencoder (He et al., arXiv 2111.06377) on unlabelled images: the \
         foundation that `cmr-debias fed train` fine-tunes into a classifier. Attention and MLP tensors use \
         CineMA's names (`attn.q`, `attn.kv`, `attn.proj`, `mlp.fc1`, `mlp.fc2`).\n\n",
    );
    for (key, value) in card {
        text.push_str(&format!("- **{key}**: {value}\n"));
    }
    text.push_str("\nFull options and the loss of every epoch: `training.json`.\n");
    text
}
