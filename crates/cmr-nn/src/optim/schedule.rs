//! Learning-rate schedules as multipliers of each parameter group's base rate, pure functions of the step.
//!
//! Warmup + cosine follows `transformers.get_cosine_schedule_with_warmup` (num_cycles 0.5), the schedule of the
//! diffusers ControlNet and ViT fine-tuning recipes, with an optional floor, and held at the floor after T (transformers' cosine would rise again):
//!
//! ```text
//! f(t) = t / W                                                   t < W
//! f(t) = m + (1 − m) · ½ · (1 + cos(π · (t − W) / (T − W)))      W ≤ t ≤ T,   f(t) = m for t > T
//! ```
//! where t is the number of optimizer steps already taken, W the warmup steps, T the total steps and m the floor.

use serde::{Deserialize, Serialize};

/// A learning-rate schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LrSchedule {
    /// The base rate at every step (default).
    #[default]
    Constant,
    /// Linear warmup from 0 over `warmup` steps, then a half cosine down to `min_ratio` × the base rate at `total`.
    WarmupCosine {
        /// Warmup steps W (0: start at the full rate).
        warmup: usize,
        /// Total steps T of the run (must exceed `warmup` for a decay to happen).
        total: usize,
        /// Floor m as a fraction of the base rate (0 as transformers).
        min_ratio: f64,
    },
}

impl LrSchedule {
    /// The multiplier f(t) for the update made after `step` updates have already been taken.
    ///
    /// ```
    /// use cmr_nn::optim::LrSchedule;
    /// let s = LrSchedule::WarmupCosine { warmup: 10, total: 110, min_ratio: 0.0 };
    /// assert_eq!(s.factor(5), 0.5);
    /// assert_eq!(s.factor(10), 1.0);
    /// assert!((s.factor(60) - 0.5).abs() < 1e-12);
    /// assert_eq!(s.factor(500), 0.0);
    /// ```
    pub fn factor(&self, step: usize) -> f64 {
        match *self {
            LrSchedule::Constant => 1.0,
            LrSchedule::WarmupCosine { warmup, total, min_ratio } => {
                if step < warmup {
                    return step as f64 / warmup as f64;
                }
                let span = total.saturating_sub(warmup).max(1) as f64;
                let progress = ((step - warmup) as f64 / span).min(1.0);
                min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}
