//! A site's classifier trainer: the [`SiteTrainer`] the federated runtime drives. It owns the model, its AdamW
//! state and the site's train examples; nothing of it leaves the site except what the strategy selects from
//! [`SiteTrainer::state`].

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use cmr_nn::checkpoint::{self, Checkpoint, LoadMode};
use cmr_nn::optim::{AdamW, AdamWConfig, ParamGroup};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::loss::weighted_bce_with_logits;
use crate::data::{Augmenter, ClassWeights, Example, ShapePrior, SubjectWeights};
use crate::error::{FedError, Result};
use crate::federated::{FitReport, Moments, NamedTensors, SiteTrainer};
use crate::model::Classifier;

/// File of the model variables in a private checkpoint folder.
const MODEL_FILE: &str = "model.safetensors";
/// File of the optimizer state in a private checkpoint folder.
const OPTIMIZER_FILE: &str = "optimizer.safetensors";

/// Local-training hyper-parameters of every site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocalTraining {
    /// Passes over the site's train set per round. Default 1.
    pub epochs: usize,
    /// Subjects per step. Default 8.
    pub batch: usize,
    /// AdamW learning rate. Default 1e-4 (full fine-tuning; `fed train` uses 1e-3 for LoRA, as PEFT's examples).
    pub lr: f64,
    /// Decoupled weight decay of matrices (vectors — biases, norms — get none). Default 0.05 (MAE fine-tuning).
    pub weight_decay: f64,
    /// Global gradient-norm clip. Default 1.0.
    pub max_grad_norm: Option<f64>,
}

impl Default for LocalTraining {
    fn default() -> Self {
        Self { epochs: 1, batch: 8, lr: 1e-4, weight_decay: 0.05, max_grad_norm: Some(1.0) }
    }
}

/// The classifier of one site with its optimizer and data.
pub struct ClassifierTrainer {
    model: Classifier,
    optimizer: AdamW,
    train: Vec<Example>,
    /// Loss weight of each train example (see [`loss_weights`]).
    weights: Vec<f32>,
    prior: ShapePrior,
    augmenter: Augmenter,
    options: LocalTraining,
}

impl ClassifierTrainer {
    /// A trainer that updates the variables named `trained` (the strategy's choice) of `model` on `train`, each
    /// example's loss weighted by its class weight times, when `subjects` is given, its subject's weight.
    ///
    /// # Errors
    /// [`FedError::Option`] for zero epochs or batch, or a trained name the model lacks; [`FedError::Input`] for a
    /// train subject the weights file has no weight for.
    pub fn new(
        model: Classifier,
        trained: &[String],
        train: Vec<Example>,
        (classes, subjects): (ClassWeights, Option<&SubjectWeights>),
        (prior, augmenter): (ShapePrior, Augmenter),
        options: LocalTraining,
    ) -> Result<Self> {
        if options.epochs == 0 || options.batch == 0 {
            return Err(FedError::option("local-epochs", "local epochs and batch size must be at least 1"));
        }
        let weights = loss_weights(&train, classes, subjects)?;
        let vars = cmr_nn::optim::named_vars(model.varmap(), |n| trained.iter().any(|t| t == n));
        if let Some(missing) = trained.iter().find(|t| !vars.iter().any(|(n, _)| n == *t)) {
            return Err(FedError::option("strategy", format!("trains {missing}, which the model does not have")));
        }
        let (matrices, vectors): (Vec<_>, Vec<_>) = vars.into_iter().partition(|(_, v)| v.rank() >= 2);
        let groups = vec![
            ParamGroup::new(matrices, options.lr, options.weight_decay),
            ParamGroup::new(vectors, options.lr, 0.0),
        ];
        let config = AdamWConfig { max_grad_norm: options.max_grad_norm, ..AdamWConfig::default() };
        let optimizer = AdamW::new(groups, config)?;
        Ok(Self { model, optimizer, train, weights, prior, augmenter, options })
    }

    /// The model (for evaluation).
    pub fn model(&self) -> &Classifier {
        &self.model
    }

    fn device(&self) -> Device {
        self.model.varmap().all_vars().first().map_or(Device::Cpu, |v| v.device().clone())
    }

    /// One optimizer step on `batch`; returns the batch's weighted mean loss, or `None` (and no step) when every
    /// example of the batch has weight 0: the batch carries no loss (its weighted mean would be 0/0).
    fn step(&mut self, batch: &[usize], rng: &mut ChaCha8Rng) -> Result<Option<f64>> {
        let weights: Vec<f32> = batch.iter().map(|&i| self.weights[i]).collect();
        if weights.iter().all(|&w| w == 0.0) {
            return Ok(None);
        }
        let device = self.device();
        let inputs: Vec<_> =
            batch.iter().map(|&i| self.train[i].augmented_input(self.prior, &self.augmenter, rng)).collect();
        let xs = stack_inputs(&inputs, &device)?;
        let labels: Vec<f32> = batch.iter().map(|&i| f32::from(u8::from(self.train[i].label))).collect();
        let labels = Tensor::new(labels, &device)?;
        let weights = Tensor::new(weights, &device)?;
        let loss = weighted_bce_with_logits(&self.model.forward(&xs)?, &labels, &weights)?;
        let value = f64::from(loss.to_dtype(DType::F32)?.to_scalar::<f32>()?);
        self.optimizer.step(&mut loss.backward()?)?;
        Ok(Some(value))
    }
}

/// The loss weight of each of `train`: its class weight (against class imbalance) times, with a weights file, its
/// subject's weight.
///
/// Subject weights are the loss-weighted equivalent of the reference code's weighted sampler (PyTorch
/// `WeightedRandomSampler`, which draws subject `i` with probability `w_i / Σ w`): the expected loss of a batch
/// drawn by that sampler is `Σ w_i·ℓ_i / Σ w_i`, which is what weighing every example of a uniformly shuffled epoch
/// by `w_i` estimates, without repeating or skipping subjects — so every seed sees every subject once per epoch.
fn loss_weights(train: &[Example], classes: ClassWeights, subjects: Option<&SubjectWeights>) -> Result<Vec<f32>> {
    train
        .iter()
        .map(|e| {
            let subject = subjects.map_or(Ok(1.0), |s| s.of(&e.subject_id))?;
            Ok(classes.weight(e.label) * subject as f32)
        })
        .collect()
}

/// Stacks model inputs `[c, S, H, W]` into one batch tensor `(b, c, S, H, W)` on `device`.
pub fn stack_inputs(inputs: &[ndarray::Array4<f32>], device: &Device) -> Result<Tensor> {
    let dims = inputs.first().map(|a| a.dim()).ok_or_else(|| FedError::option("batch", "an empty batch"))?;
    let mut flat: Vec<f32> = Vec::with_capacity(inputs.len() * inputs[0].len());
    for input in inputs {
        flat.extend(input.iter());
    }
    Ok(Tensor::from_vec(flat, (inputs.len(), dims.0, dims.1, dims.2, dims.3), device)?)
}

impl SiteTrainer for ClassifierTrainer {
    fn state(&self) -> Result<NamedTensors> {
        let vars = cmr_nn::optim::named_vars(self.model.varmap(), |_| true);
        vars.into_iter().map(|(name, var)| Ok((name, var.as_tensor().copy()?))).collect()
    }

    fn load(&mut self, tensors: &NamedTensors) -> Result<()> {
        let vars = cmr_nn::optim::named_vars(self.model.varmap(), |n| tensors.contains_key(n));
        for (name, value) in tensors {
            let (_, var) = vars.iter().find(|(n, _)| n == name).ok_or_else(|| {
                FedError::message(format!("tensor {name}"), "the classifier has no variable of that name")
            })?;
            if value.dims() != var.dims() {
                let shapes = format!("shape {:?}, the classifier's is {:?}", value.dims(), var.dims());
                return Err(FedError::message(format!("tensor {name}"), shapes));
            }
            var.set(&value.to_dtype(var.dtype())?.to_device(var.device())?)?;
        }
        Ok(())
    }

    fn fit(&mut self, _round: usize, seed: u64) -> Result<FitReport> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut order: Vec<usize> = (0..self.train.len()).collect();
        // The mean loss is over the batches that carried one (see `step`).
        let (mut total, mut weighed, mut examples) = (0.0, 0, 0);
        for _ in 0..self.options.epochs {
            order.shuffle(&mut rng);
            for batch in order.clone().chunks(self.options.batch) {
                if let Some(loss) = self.step(batch, &mut rng)? {
                    total += loss * batch.len() as f64;
                    weighed += batch.len();
                }
                examples += batch.len();
            }
        }
        Ok(FitReport { loss: total / weighed.max(1) as f64, examples })
    }

    fn train_size(&self) -> usize {
        self.train.len()
    }

    fn save_private(&self, dir: &Path) -> Result<()> {
        checkpoint::save_varmap(&dir.join(MODEL_FILE), self.model.varmap(), self.model.config())?;
        self.optimizer.save_state(&dir.join(OPTIMIZER_FILE))?;
        Ok(())
    }

    fn load_private(&mut self, dir: &Path) -> Result<()> {
        let ckpt = Checkpoint::load(&dir.join(MODEL_FILE), &self.device())?;
        ckpt.load_into(self.model.varmap(), LoadMode::Strict)?;
        self.optimizer.load_state(&dir.join(OPTIMIZER_FILE))?;
        Ok(())
    }

    fn moments(&self, names: &[String]) -> Result<Moments> {
        let mut moments = Moments::default();
        for name in names {
            let (m, v) = self.optimizer.moments(name)?;
            moments.first.insert(name.clone(), m.to_device(&Device::Cpu)?);
            moments.second.insert(name.clone(), v.to_device(&Device::Cpu)?);
        }
        Ok(moments)
    }

    fn load_moments(&mut self, moments: &Moments) -> Result<()> {
        for (name, m) in &moments.first {
            let v = moments
                .second
                .get(name)
                .ok_or_else(|| FedError::message(format!("moments of {name}"), "a first moment without its second"))?;
            self.optimizer.set_moments(name, m.clone(), v.clone())?;
        }
        Ok(())
    }
}
