//! Attribute fidelity (issue 6, item 7): does a generated image show the attribute (sex, age band, …) its prompt
//! asked for? A probe — multinomial logistic regression on standardised features — is fit on real images with their
//! recorded attributes, then predicts the attribute of generated images; its accuracy against the prompted values,
//! with a bootstrap interval, is the fidelity. Compare with the probe's accuracy on held-out real images: that is
//! the ceiling.
//!
//! The fit minimises the mean cross-entropy plus an L2 penalty on the weights (not the bias),
//!
//! ```text
//! L(W, b) = (1/n) Σ_i [ log Σ_k exp(z_ik) − z_i,y_i ] + (λ/2) ‖W‖²,    z_i = W x_i + b
//! ```
//!
//! with full-batch AdamW for a fixed number of epochs from a seeded initialisation, in f64.

use candle_core::{DType, Device, Tensor, Var};
use cmr_core::bootstrap::{percentile, Resampler};
use cmr_nn::optim::{AdamW, AdamWConfig, ParamGroup};
use rand::Rng;

use crate::{DiffusionError, Result};

/// Full-batch AdamW updates of a fit.
const EPOCHS: usize = 300;
/// AdamW learning rate.
const LEARNING_RATE: f64 = 0.05;
/// λ of the L2 penalty `(λ/2) ‖W‖²`.
const L2_PENALTY: f64 = 1e-3;
/// Initial weights are drawn uniformly from `[−INIT_SCALE, INIT_SCALE]`.
const INIT_SCALE: f64 = 0.01;

/// A fitted probe: the training set's feature means and standard deviations, and the logistic-regression weights.
#[derive(Debug, Clone)]
pub struct AttributeProbe {
    mean: Vec<f64>,
    /// Standard deviations, 1 where a feature is constant in the training set.
    std: Vec<f64>,
    /// `(classes, features)`.
    weight: Tensor,
    /// `(classes)`.
    bias: Tensor,
}

impl AttributeProbe {
    /// Fits a probe predicting `labels` (each below `classes`) from `features` (one row per image, all of one
    /// length), deterministically for a given `seed`.
    ///
    /// # Errors
    /// An empty or ragged `features`, a non-finite feature, `labels` of another length or with a label ≥ `classes`,
    /// or `classes` < 2; the error names the argument.
    pub fn fit(features: &[Vec<f32>], labels: &[usize], classes: usize, seed: u64) -> Result<AttributeProbe> {
        // 1. check inputs
        if features.is_empty() {
            return Err(DiffusionError::option("features", "no training rows"));
        }
        let dim = features[0].len();
        if dim == 0 {
            return Err(DiffusionError::option("features", "rows have no features"));
        }
        check_rows(features, dim)?;
        if labels.len() != features.len() {
            let message = format!("{} labels for {} feature rows", labels.len(), features.len());
            return Err(DiffusionError::option("labels", message));
        }
        if classes < 2 {
            return Err(DiffusionError::option("classes", format!("{classes}; a probe needs at least 2 classes")));
        }
        if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l >= classes) {
            return Err(DiffusionError::option(
                "labels",
                format!("label {l} at row {i} is not below classes = {classes}"),
            ));
        }

        // 2. standardisation from the training set
        let n = features.len() as f64;
        let mean: Vec<f64> = (0..dim).map(|j| features.iter().map(|r| f64::from(r[j])).sum::<f64>() / n).collect();
        let std: Vec<f64> = (0..dim)
            .map(|j| {
                let var = features.iter().map(|r| (f64::from(r[j]) - mean[j]).powi(2)).sum::<f64>() / n;
                if var > 0.0 {
                    var.sqrt()
                } else {
                    1.0
                }
            })
            .collect();
        let mut probe = AttributeProbe {
            mean,
            std,
            weight: Tensor::zeros((classes, dim), DType::F64, &Device::Cpu)?,
            bias: Tensor::zeros(classes, DType::F64, &Device::Cpu)?,
        };
        let x = probe.standardised(features)?; // (n, d)
        let mut one_hot = vec![0.0f64; labels.len() * classes];
        labels.iter().enumerate().for_each(|(i, &l)| one_hot[i * classes + l] = 1.0);
        let one_hot = Tensor::from_vec(one_hot, (labels.len(), classes), &Device::Cpu)?; // (n, k)

        // 3. seeded initialisation
        let mut rng = cmr_core::seed::rng(seed, &["attribute_probe", "init"]);
        let init: Vec<f64> = (0..classes * dim).map(|_| INIT_SCALE * (2.0 * rng.random::<f64>() - 1.0)).collect();
        let weight = Var::from_vec(init, (classes, dim), &Device::Cpu)?;
        let bias = Var::zeros(classes, DType::F64, &Device::Cpu)?;

        // 4. full-batch AdamW; the penalty is in the loss, so no decoupled decay
        let params = vec![("weight".to_string(), weight.clone()), ("bias".to_string(), bias.clone())];
        let mut optimizer = AdamW::new(vec![ParamGroup::new(params, LEARNING_RATE, 0.0)], AdamWConfig::default())?;
        for _ in 0..EPOCHS {
            let loss = penalised_nll(weight.as_tensor(), bias.as_tensor(), &x, &one_hot, L2_PENALTY)?;
            optimizer.step(&mut loss.backward()?)?;
        }
        probe.weight = weight.as_tensor().detach();
        probe.bias = bias.as_tensor().detach();
        Ok(probe)
    }

    /// The most probable class of each row of `features` (the lowest class on ties).
    ///
    /// # Errors
    /// A row whose length differs from the training features', or a non-finite feature (names `features`).
    pub fn predict(&self, features: &[Vec<f32>]) -> Result<Vec<usize>> {
        Ok(self
            .logits(features)?
            .iter()
            .map(|row| {
                row.iter().enumerate().fold((0, f64::NEG_INFINITY), |b, (k, &z)| if z > b.1 { (k, z) } else { b }).0
            })
            .collect())
    }

    /// The class probabilities (softmax of the logits) of each row of `features`.
    ///
    /// # Errors
    /// As [`AttributeProbe::predict`].
    pub fn probabilities(&self, features: &[Vec<f32>]) -> Result<Vec<Vec<f64>>> {
        Ok(self
            .logits(features)?
            .into_iter()
            .map(|row| {
                let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let exp: Vec<f64> = row.iter().map(|z| (z - max).exp()).collect();
                let total: f64 = exp.iter().sum();
                exp.into_iter().map(|e| e / total).collect()
            })
            .collect())
    }

    /// `W x + b` of each checked row, `(rows, classes)`.
    fn logits(&self, features: &[Vec<f32>]) -> Result<Vec<Vec<f64>>> {
        if features.is_empty() {
            return Ok(Vec::new());
        }
        check_rows(features, self.mean.len())?;
        let logits = self.standardised(features)?.matmul(&self.weight.t()?)?.broadcast_add(&self.bias)?;
        Ok(logits.to_vec2::<f64>()?)
    }

    /// `(x − mean) / std` of checked rows, `(rows, features)` f64.
    fn standardised(&self, features: &[Vec<f32>]) -> Result<Tensor> {
        let dim = self.mean.len();
        let flat: Vec<f64> = features
            .iter()
            .flat_map(|r| r.iter().enumerate().map(|(j, &v)| (f64::from(v) - self.mean[j]) / self.std[j]))
            .collect();
        Ok(Tensor::from_vec(flat, (features.len(), dim), &Device::Cpu)?)
    }
}

/// The training loss `L(W, b)` of the module docs on standardised `features` `(n, d)` with `one_hot` labels `(n, k)`,
/// `weight` `(k, d)`, `bias` `(k)` and penalty `l2` = λ; a scalar. Built from basic ops so that every input gets a
/// gradient (`candle_nn::ops::softmax_last_dim` records none on the CPU in candle 0.11).
pub fn penalised_nll(
    weight: &Tensor,
    bias: &Tensor,
    features: &Tensor,
    one_hot: &Tensor,
    l2: f64,
) -> candle_core::Result<Tensor> {
    let logits = features.matmul(&weight.t()?)?.broadcast_add(bias)?; // (n, k)
                                                                      // log-sum-exp shifted by the row maximum for stability; the shift cancels, so it carries no gradient
    let max = logits.max_keepdim(1)?.detach(); // (n, 1)
    let lse = (logits.broadcast_sub(&max)?.exp()?.sum_keepdim(1)?.log()? + &max)?; // (n, 1)
    let picked = (&logits * one_hot)?.sum_keepdim(1)?; // (n, 1)
    let nll = (lse - picked)?.mean_all()?;
    nll + weight.sqr()?.sum_all()?.affine(0.5 * l2, 0.0)?
}

/// Accuracy of `predicted` against `truth`, with its 95% percentile bootstrap interval over `resamples` resamples
/// drawn from `seed`: `(accuracy, low, high)`.
///
/// ```
/// use cmr_diffusion::evaluation::attribute_probe::accuracy_ci;
/// assert_eq!(accuracy_ci(&[0, 1, 1], &[0, 1, 1], 200, 7), (1.0, 1.0, 1.0));
/// ```
///
/// # Panics
/// If the slices differ in length or are empty, or `resamples` is 0 (programming errors).
pub fn accuracy_ci(truth: &[usize], predicted: &[usize], resamples: usize, seed: u64) -> (f64, f64, f64) {
    assert_eq!(truth.len(), predicted.len(), "accuracy_ci: {} truths, {} predictions", truth.len(), predicted.len());
    assert!(!truth.is_empty(), "accuracy_ci: no predictions");
    assert!(resamples > 0, "accuracy_ci: no resamples");
    let correct: Vec<bool> = truth.iter().zip(predicted).map(|(t, p)| t == p).collect();
    let n = correct.len() as f64;
    let accuracy = correct.iter().filter(|&&c| c).count() as f64 / n;
    let mut resampler = Resampler::new(correct.len(), seed, &["attribute_probe", "accuracy"]);
    let mut replicates: Vec<f64> = (0..resamples)
        .map(|_| resampler.draw().iter().zip(&correct).filter(|(_, &c)| c).map(|(&w, _)| f64::from(w)).sum::<f64>() / n)
        .collect();
    replicates.sort_by(f64::total_cmp);
    let bound = |q| percentile(&replicates, q).expect("at least one replicate");
    (accuracy, bound(0.025), bound(0.975))
}

fn check_rows(features: &[Vec<f32>], dim: usize) -> Result<()> {
    for (i, row) in features.iter().enumerate() {
        if row.len() != dim {
            return Err(DiffusionError::option(
                "features",
                format!("row {i} has {} features, expected {dim}", row.len()),
            ));
        }
        if let Some(j) = row.iter().position(|v| !v.is_finite()) {
            return Err(DiffusionError::option("features", format!("row {i}, feature {j} is {}", row[j])));
        }
    }
    Ok(())
}
