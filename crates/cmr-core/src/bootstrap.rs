//! Bootstrap resampling and percentile intervals, shared by the audit's stratified bootstrap (issue 5,
//! "Uncertainty": each group resampled within itself, so every replicate keeps the group sizes) and the paired
//! comparison of federated strategies (issue 7, `fed compare`).
//!
//! A [`Resampler`] draws `n` times with replacement from `n` subjects and returns multiplicities, which the weighted
//! metrics of [`crate::metrics`] take directly. Draws come from a named stream of [`crate::seed`], so a group's
//! resamples do not depend on which other groups are resampled, and two models scored on the same draw see the very
//! same resample (a paired bootstrap).

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::metrics::{Undefined, Value};

/// Draws resamples of one group as multiplicities: `weights()[k]` is how often member `k` was drawn.
#[derive(Debug)]
pub struct Resampler {
    rng: ChaCha8Rng,
    weights: Vec<u32>,
}

impl Resampler {
    /// A resampler of a group of `n` subjects, drawing from the stream `seed`/`labels`.
    pub fn new(n: usize, seed: u64, labels: &[&str]) -> Self {
        Self { rng: crate::seed::rng(seed, labels), weights: vec![0; n] }
    }

    /// Draws the next resample and returns its multiplicities (they sum to `n`).
    pub fn draw(&mut self) -> &[u32] {
        let n = self.weights.len();
        self.weights.fill(0);
        for _ in 0..n {
            self.weights[self.rng.random_range(0..n)] += 1;
        }
        &self.weights
    }
}

/// A point estimate with its bootstrap percentile interval.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Estimate {
    /// The value on the data as given; `null` when undefined.
    pub value: Option<f64>,
    /// Why `value` is null; absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Undefined>,
    /// Lower percentile bound; `null` when no replicate had a defined value.
    pub ci_low: Option<f64>,
    /// Upper percentile bound; `null` when no replicate had a defined value.
    pub ci_high: Option<f64>,
    /// Replicates in which the statistic was defined (the interval is read from these).
    pub replicates: usize,
}

impl Estimate {
    /// The estimate `point` with the central `level` interval of the defined `replicates` (sorted in place).
    pub fn new(point: Value, replicates: &mut [f64], level: f64) -> Self {
        replicates.sort_by(f64::total_cmp);
        let tail = (1.0 - level) / 2.0;
        Self {
            value: point.ok(),
            reason: point.err(),
            ci_low: percentile(replicates, tail),
            ci_high: percentile(replicates, 1.0 - tail),
            replicates: replicates.len(),
        }
    }

    /// Whether the interval lies entirely above 0.
    pub fn above_zero(&self) -> bool {
        self.ci_low.is_some_and(|low| low > 0.0)
    }

    /// Whether the interval lies entirely below 0.
    pub fn below_zero(&self) -> bool {
        self.ci_high.is_some_and(|high| high < 0.0)
    }
}

/// The `q`-quantile of sorted values with linear interpolation between order statistics (NumPy's default
/// `method="linear"`); `None` for no values.
pub fn percentile(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let position = q.clamp(0.0, 1.0) * last as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(last);
    let fraction = position - below as f64;
    Some(sorted[below] + fraction * (sorted[above] - sorted[below]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_like_numpy() {
        // numpy.percentile([1, 2, 3, 4, 10], [2.5, 50, 97.5]) = [1.1, 3.0, 9.4]
        let v = [1.0, 2.0, 3.0, 4.0, 10.0];
        assert!((percentile(&v, 0.025).unwrap() - 1.1).abs() < 1e-12);
        assert_eq!(percentile(&v, 0.5), Some(3.0));
        assert!((percentile(&v, 0.975).unwrap() - 9.4).abs() < 1e-12);
        assert_eq!(percentile(&[7.0], 0.975), Some(7.0));
        assert_eq!(percentile(&[], 0.5), None);
    }

    #[test]
    fn resamples_keep_the_group_size_and_repeat_per_seed() {
        let mut a = Resampler::new(50, 3, &["audit", "sex", "F"]);
        let mut b = Resampler::new(50, 3, &["audit", "sex", "F"]);
        let first: Vec<u32> = a.draw().to_vec();
        assert_eq!(first.iter().sum::<u32>(), 50);
        assert!(first.contains(&0) && first.iter().any(|&w| w > 1), "drawn with replacement");
        assert_eq!(b.draw(), first.as_slice());
        assert_ne!(a.draw(), first.as_slice());
        let mut other = Resampler::new(50, 3, &["audit", "sex", "M"]);
        assert_ne!(other.draw(), first.as_slice());
    }

    #[test]
    fn an_undefined_point_keeps_its_reason_and_an_empty_interval_is_null() {
        let e = Estimate::new(Err(Undefined::NoPositives), &mut [], 0.95);
        assert_eq!(
            (e.value, e.reason, e.ci_low, e.ci_high, e.replicates),
            (None, Some(Undefined::NoPositives), None, None, 0)
        );
        let e = Estimate::new(Ok(0.5), &mut [0.7, 0.3, 0.5], 0.5);
        assert_eq!((e.ci_low, e.ci_high), (Some(0.4), Some(0.6)));
        assert!(e.above_zero() && !e.below_zero());
    }
}
