//! Statistics of `fed compare` (issue 7, item 6): a paired bootstrap of the difference in balanced accuracy between
//! two models on the same test subjects, and mean ± sd over seeds for the comparison table.
//!
//! The bootstrap resamples subjects with replacement and scores both models on the very same resample, so the
//! interval reflects the uncertainty of the *difference* on these subjects (the paired design of the audit's
//! before/after comparison, `cmr_core::bootstrap`). The two-sided p-value is the share of replicates on the other
//! side of zero from the point estimate, doubled (at most 1).

use std::collections::HashMap;
use std::fmt;

use cmr_core::bootstrap::{Estimate, Resampler};
use cmr_core::metrics::{Metric, Sample, Undefined, Value};

use super::evaluation::Prediction;
use crate::error::{FedError, Result};

/// The bootstrap's settings.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PairedBootstrap {
    /// Resamples; default 1000.
    pub replicates: usize,
    /// Root seed of the resampling stream; default 0.
    pub seed: u64,
    /// Coverage of the percentile interval; default 0.95.
    pub confidence: f64,
}

impl Default for PairedBootstrap {
    fn default() -> Self {
        Self { replicates: 1000, seed: 0, confidence: 0.95 }
    }
}

/// One model's predictions, named for error messages (a strategy, a run folder).
#[derive(Debug, Clone, Copy)]
pub struct Arm<'a> {
    /// What the predictions are of.
    pub name: &'a str,
    /// Its test-split predictions.
    pub predictions: &'a [Prediction],
}

/// Candidate − baseline balanced accuracy with its paired bootstrap interval and p-value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PairedComparison {
    /// Test subjects paired.
    pub subjects: usize,
    /// Balanced accuracy of the baseline; `null` when undefined.
    pub baseline: Option<f64>,
    /// Balanced accuracy of the candidate; `null` when undefined.
    pub candidate: Option<f64>,
    /// candidate − baseline with its percentile interval over the replicates where both are defined.
    pub difference: Estimate,
    /// Two-sided bootstrap p-value of "no difference"; `null` when the difference or every replicate is undefined.
    pub p_value: Option<f64>,
}

impl PairedBootstrap {
    /// Compares `candidate` with `baseline` on the subjects they share, which must be the same set with the same
    /// labels.
    ///
    /// # Errors
    /// [`FedError::Input`] naming the arm whose subjects or labels differ, or that predicts a subject twice.
    pub fn compare(&self, baseline: Arm<'_>, candidate: Arm<'_>) -> Result<PairedComparison> {
        let paired = pair(baseline, candidate)?;
        let n = paired.len();
        let y_true: Vec<bool> = paired.iter().map(|(b, _)| b.y_true).collect();
        let baseline_pred: Vec<bool> = paired.iter().map(|(b, _)| b.y_pred()).collect();
        let candidate_pred: Vec<bool> = paired.iter().map(|(_, c)| c.y_pred()).collect();
        let samples = [Sample::of_all(&y_true, &baseline_pred, None), Sample::of_all(&y_true, &candidate_pred, None)];
        let balanced = |sample: &Sample, weights: &[u32]| -> Value {
            sample.confusion(weights).metrics(Err(Undefined::NoScores))[Metric::BalancedAccuracy.index()]
        };
        let ones = vec![1; n];
        let point = [balanced(&samples[0], &ones), balanced(&samples[1], &ones)];
        let delta = point[1].and_then(|c| point[0].map(|b| c - b));
        let mut resampler = Resampler::new(n, self.seed, &["fed", "compare", "paired-bootstrap"]);
        let mut replicates = Vec::with_capacity(self.replicates);
        for _ in 0..self.replicates {
            let weights = resampler.draw();
            if let (Ok(b), Ok(c)) = (balanced(&samples[0], weights), balanced(&samples[1], weights)) {
                replicates.push(c - b);
            }
        }
        let p_value = delta.ok().and_then(|d| two_sided_p(d, &replicates));
        Ok(PairedComparison {
            subjects: n,
            baseline: point[0].ok(),
            candidate: point[1].ok(),
            difference: Estimate::new(delta, &mut replicates, self.confidence),
            p_value,
        })
    }
}

/// Twice the share of `replicates` at or beyond zero on the side opposite to `point`, at most 1; 1 for a point of
/// 0; `None` without replicates.
fn two_sided_p(point: f64, replicates: &[f64]) -> Option<f64> {
    if replicates.is_empty() {
        return None;
    }
    let opposite = replicates.iter().filter(|&&d| if point > 0.0 { d <= 0.0 } else { d >= 0.0 }).count();
    let p = if point == 0.0 { 1.0 } else { 2.0 * opposite as f64 / replicates.len() as f64 };
    Some(p.min(1.0))
}

/// The predictions of both arms, paired by subject in the baseline's order.
fn pair<'a>(baseline: Arm<'a>, candidate: Arm<'a>) -> Result<Vec<(&'a Prediction, &'a Prediction)>> {
    let index = |arm: Arm<'a>| -> Result<HashMap<&'a str, &'a Prediction>> {
        let mut map = HashMap::with_capacity(arm.predictions.len());
        for p in arm.predictions {
            if map.insert(p.subject_id.as_str(), p).is_some() {
                return Err(FedError::input(arm.name, format!("subject `{}` is predicted twice", p.subject_id)));
            }
        }
        Ok(map)
    };
    let (base, cand) = (index(baseline)?, index(candidate)?);
    if base.is_empty() {
        return Err(FedError::input(baseline.name, "no predictions to compare"));
    }
    let differ = |message: String| {
        Err(FedError::input(candidate.name, format!("{message}; a paired comparison needs the same test subjects")))
    };
    if let Some(extra) = candidate.predictions.iter().find(|p| !base.contains_key(p.subject_id.as_str())) {
        return differ(format!("subject `{}` is not among the subjects of {}", extra.subject_id, baseline.name));
    }
    let mut paired = Vec::with_capacity(base.len());
    for b in baseline.predictions {
        let Some(&c) = cand.get(b.subject_id.as_str()) else {
            return differ(format!("subject `{}` of {} is missing", b.subject_id, baseline.name));
        };
        if c.y_true != b.y_true {
            return differ(format!(
                "subject `{}` has y_true {} here but {} in {}",
                b.subject_id,
                u8::from(c.y_true),
                u8::from(b.y_true),
                baseline.name
            ));
        }
        paired.push((b, c));
    }
    Ok(paired)
}

/// Mean and sample standard deviation of a metric over seeds, for the comparison table.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct MeanSd {
    /// Arithmetic mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1 in the denominator); `null` for a single value.
    pub sd: Option<f64>,
    /// Values.
    pub n: usize,
}

impl MeanSd {
    /// Mean ± sd of `values`, or `None` for no values.
    ///
    /// ```
    /// let m = cmr_fed::data::paired::MeanSd::of(&[0.7, 0.8, 0.9]).unwrap();
    /// assert_eq!(format!("{m:.3}"), "0.800 ± 0.100");
    /// ```
    pub fn of(values: &[f64]) -> Option<Self> {
        let n = values.len();
        if n == 0 {
            return None;
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let sd = (n > 1).then(|| (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt());
        Some(Self { mean, sd, n })
    }
}

/// `mean ± sd` (just the mean for one value), both with the formatter's precision.
impl fmt::Display for MeanSd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let precision = f.precision().unwrap_or(3);
        match self.sd {
            Some(sd) => write!(f, "{:.*} ± {:.*}", precision, self.mean, precision, sd),
            None => write!(f, "{:.*}", precision, self.mean),
        }
    }
}
