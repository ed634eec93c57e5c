//! The disease classifier fine-tuned by every federated strategy: the foundation model's encoder, the mean of its
//! patch tokens, and a linear `head` to one binary logit.
//!
//! - Pooling: the mean of the patch tokens after the encoder's final `norm`, not the cls token — MAE's fine-tuning
//!   recipe (He et al., arXiv 2111.06377, Appendix A.2, `global_pool`), since MAE pretraining never trains the cls
//!   token on a task.
//! - Fine-tuning ([`FineTune`]): all weights (local, central, FedAvg), or LoRA in the last K blocks on chosen targets
//!   (the LoRA family and Med-DualLoRA, arXiv 2603.10967), where only the adapter factors the [`LoraScheme`] trains and
//!   the head train; the blocks before the first adapted one run without gradient.
//! - Shape priors (Linardos et al., arXiv 2107.03901): the `fragmented` input has 6 channels, frame-major
//!   `(ED·LV, ED·MYO, ED·RV, ES·LV, ES·MYO, ES·RV)`. Its patch embedding starts from the pretrained 2-channel kernel
//!   tiled over the three structures ([`expand_patch_channels`]); the masks are disjoint, so the initial embedding
//!   equals the pretrained embedding of image × whole-heart mask.

use std::collections::BTreeMap;

use candle_core::{DType, Device, Module, Tensor, Var};
use candle_nn::VarMap;
use cmr_nn::checkpoint::LoadMode;
use cmr_nn::layers::{seeded_var_builder, Linear, LinearConfig};
use cmr_nn::lora::{AdapterConfig, BlockLora, LoraConfig, LoraScheme, LoraTarget, ParamRole};
use serde::{Deserialize, Serialize};

use super::config::ViTConfig;
use super::dir::FmDir;
use super::encoder::{EncoderLora, VitEncoder};
use crate::error::{FedError, Result};

/// Module path of the task head: [`ParamRole::of`]`(name, HEAD)` tells head tensors apart.
pub const HEAD: &str = "head";
/// Name of the patch-embedding weight, the one tensor a shape prior with more channels reshapes.
pub const PATCH_WEIGHT: &str = "patch_embed.proj.weight";

/// LoRA settings of a classifier (`--lora-rank`, `--lora-blocks`, `--lora-targets`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoraOptions {
    /// Which factors train (and which pair exists: [`LoraScheme::DualLora`] adds the local pair). Default DualLora.
    pub scheme: LoraScheme,
    /// Rank r of every adapter pair. Default `8`.
    pub rank: usize,
    /// α of the scaling α / r. Default `8` (scaling 1 at rank 8, as PEFT).
    pub alpha: f64,
    /// Adapted blocks, counted from the last. Default `2` (Med-DualLoRA: two blocks keep accuracy).
    pub blocks: usize,
    /// Adapted projections of each adapted block. Default `q, kv, proj`.
    pub targets: Vec<LoraTarget>,
}

impl Default for LoraOptions {
    fn default() -> Self {
        Self {
            scheme: LoraScheme::DualLora,
            rank: 8,
            alpha: 8.0,
            blocks: 2,
            targets: vec![LoraTarget::Q, LoraTarget::Kv, LoraTarget::Proj],
        }
    }
}

/// How a classifier is fine-tuned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FineTune {
    /// Every weight trains.
    Full,
    /// LoRA adapters in the last blocks and the head train; everything else is frozen.
    Lora(LoraOptions),
}

/// Configuration of a [`Classifier`] on top of a foundation model's [`ViTConfig`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClassifierConfig {
    /// Input channels: `2` (ED, ES; no prior or the `heart` prior) or `6` (the `fragmented` prior). Default `2`.
    pub in_channels: usize,
    /// Full fine-tuning or LoRA. Default [`FineTune::Full`].
    pub finetune: FineTune,
    /// Seed of the fresh tensors (head, adapters): equal on every client, so all start from the same model (FFA-LoRA
    /// needs the same frozen A everywhere). Default `0`.
    pub seed: u64,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        Self { in_channels: 2, finetune: FineTune::Full, seed: 0 }
    }
}

impl ClassifierConfig {
    /// Checks the options against the encoder `vit`; each error names the option.
    pub fn validate(&self, vit: &ViTConfig) -> Result<()> {
        if self.in_channels == 0 || self.in_channels % vit.in_channels != 0 {
            let msg = format!("{} is not a multiple of the model's {} channels", self.in_channels, vit.in_channels);
            return Err(FedError::option("in_channels", msg));
        }
        if let FineTune::Lora(lora) = &self.finetune {
            if lora.blocks == 0 || lora.blocks > vit.depth {
                let msg = format!(
                    "{} adapted blocks; the model has {} blocks, so use 1 to {}",
                    lora.blocks, vit.depth, vit.depth
                );
                return Err(FedError::option("lora_blocks", msg));
            }
            if lora.rank == 0 {
                return Err(FedError::option("lora_rank", "must be at least 1"));
            }
            if lora.targets.is_empty() {
                return Err(FedError::option("lora_targets", "name at least one of q, kv, proj, fc1, fc2"));
            }
        }
        Ok(())
    }

    /// The encoder's LoRA, for LoRA fine-tuning.
    fn encoder_lora(&self) -> Option<EncoderLora> {
        let FineTune::Lora(lora) = &self.finetune else { return None };
        let adapter = AdapterConfig { rank: lora.rank, alpha: lora.alpha };
        let config = LoraConfig {
            global: Some(adapter),
            local: lora.scheme.uses_local().then_some(adapter),
            bias: true,
            seed: cmr_core::seed::derive(self.seed, &["classifier", "lora"]),
        };
        Some(EncoderLora { blocks: lora.blocks, lora: BlockLora { config, targets: lora.targets.clone() } })
    }
}

/// Encoder + mean pooling + `head`: `(b, c, S, H, W) → (b,)` logits. Owns its [`VarMap`].
pub struct Classifier {
    encoder: VitEncoder,
    head: Linear,
    varmap: VarMap,
    config: ClassifierConfig,
}

impl Classifier {
    /// A classifier with fresh weights from the stream `(cfg.seed, "classifier")`, in `dtype` on `device`.
    pub fn new(vit: &ViTConfig, cfg: ClassifierConfig, dtype: DType, device: &Device) -> Result<Self> {
        cfg.validate(vit)?;
        let varmap = VarMap::new();
        let vb = seeded_var_builder(&varmap, cmr_core::seed::derive(cfg.seed, &["classifier", "init"]), dtype, device);
        let lora = cfg.encoder_lora();
        let mut encoder = VitEncoder::new(vb.clone(), vit, cfg.in_channels, lora.as_ref())?;
        if let FineTune::Lora(l) = &cfg.finetune {
            encoder.apply_scheme(l.scheme);
        }
        let head = Linear::new(vb.pp(HEAD), vit.dim, 1, LinearConfig::default())?;
        Ok(Self { encoder, head, varmap, config: cfg })
    }

    /// A classifier (f32) whose encoder is the foundation model's: every encoder base tensor is loaded from
    /// `fm.safetensors` (the decoder's are ignored); the head and adapters are fresh. A `6`-channel input gets the
    /// tiled 2-channel patch kernel ([`expand_patch_channels`]).
    ///
    /// # Errors
    /// A tensor the encoder needs is missing from the file or has another shape (the error names it), or `cfg` does
    /// not fit the model (the error names the option).
    pub fn from_fm(fm: &FmDir, cfg: ClassifierConfig, device: &Device) -> Result<Self> {
        let vit = fm.config();
        let model = Self::new(vit, cfg, DType::F32, device)?;
        let ckpt = fm.checkpoint();
        // 1. what the file must hold: every base tensor of the encoder, in the file's shape
        let vars = cmr_nn::optim::named_vars(&model.varmap, |n| ParamRole::of(n, HEAD) == ParamRole::Base);
        let expected: BTreeMap<String, Vec<usize>> = vars
            .iter()
            .map(|(name, var)| {
                let shape = if name == PATCH_WEIGHT {
                    vec![vit.dim, vit.patch_len(vit.in_channels)]
                } else {
                    var.dims().to_vec()
                };
                (name.clone(), shape)
            })
            .collect();
        let report = ckpt.check(&expected, LoadMode::NonStrict)?;
        if !report.missing.is_empty() {
            return Err(FedError::input(
                ckpt.path(),
                format!("missing tensor {} that the classifier's encoder needs", report.missing.join(", ")),
            ));
        }
        // 2. load, tiling the patch kernel over the extra channels
        for (name, var) in &vars {
            let mut value = ckpt.tensors()[name].clone();
            if name == PATCH_WEIGHT {
                value = expand_patch_channels(&value, vit.in_channels, model.config.in_channels)?;
            }
            var.set(&value.to_dtype(var.dtype())?.to_device(var.device())?)?;
        }
        Ok(model)
    }

    /// Logits `(b,)` of `xs` `(b, c, S, H, W)`.
    pub fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let tokens = self.encoder.forward(xs)?; // (b, 1 + n, dim)
        let n = tokens.dim(1)? - 1;
        let pooled = tokens.narrow(1, 1, n)?.mean(1)?; // (b, dim)
        self.head.forward(&pooled)?.squeeze(1) // (b,)
    }

    /// Every variable, by name (base, adapters, head): what a checkpoint of the classifier holds.
    pub fn varmap(&self) -> &VarMap {
        &self.varmap
    }

    /// The configuration.
    pub fn config(&self) -> &ClassifierConfig {
        &self.config
    }

    /// The encoder.
    pub fn encoder(&self) -> &VitEncoder {
        &self.encoder
    }

    /// Names of the variables that train, sorted: all of them in full fine-tuning; the adapter factors the scheme
    /// trains and the head's tensors under LoRA.
    pub fn trainable_names(&self) -> Vec<String> {
        let all = self.varmap.data().lock().expect("VarMap lock poisoned").keys().cloned().collect::<Vec<_>>();
        let mut names: Vec<String> = match self.config.finetune {
            FineTune::Full => all,
            FineTune::Lora(_) => {
                let head = all.into_iter().filter(|n| ParamRole::of(n, HEAD) == ParamRole::Head);
                self.encoder.adapters().iter().flat_map(|l| l.trainable_names()).chain(head).collect()
            }
        };
        names.sort();
        names
    }

    /// The trainable variables (see [`Classifier::trainable_names`]), sorted by name: an optimizer's parameters.
    pub fn trainable_vars(&self) -> Vec<(String, Var)> {
        let names = self.trainable_names();
        cmr_nn::optim::named_vars(&self.varmap, |n| names.binary_search_by(|m| m.as_str().cmp(n)).is_ok())
    }
}

/// Widens a patch-embedding weight `(dim, from·k)` made for `from` input channels to `to` channels (a multiple of
/// `from`) by tiling: input channel `f` of the result is channel `⌊f / (to/from)⌋` of the original, so each original
/// channel serves `to/from` consecutive ones. For inputs that split each original channel into parts which add up to
/// it (image × disjoint masks), the embedding is unchanged.
pub fn expand_patch_channels(weight: &Tensor, from: usize, to: usize) -> candle_core::Result<Tensor> {
    let (dim, len) = weight.dims2()?;
    if from == 0 || to % from != 0 || len % from != 0 {
        candle_core::bail!("{PATCH_WEIGHT}: cannot tile {from} input channels to {to}");
    }
    let k = len / from;
    weight.reshape((dim, from, 1, k))?.broadcast_as((dim, from, to / from, k))?.contiguous()?.reshape((dim, to * k))
}
