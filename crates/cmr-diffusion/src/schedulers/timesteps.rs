//! Inference timestep spacings (Lin et al. 2023, "Common Diffusion Noise Schedules and Sample Steps are Flawed",
//! <https://arxiv.org/abs/2305.08891>, table 2), reproducing `set_timesteps` of diffusers v0.42.1
//! (<https://github.com/huggingface/diffusers/blob/v0.42.1/src/diffusers/schedulers/scheduling_ddim.py>) to the
//! integer, including numpy's rounding: `np.round` rounds half to even, and `np.arange` / `np.linspace` produce their
//! values in a particular floating-point order that decides the ties (for 50 of the step counts 1..=1000 a naive
//! `T − i·T/n` rounds differently). `tests/suite/schedulers.rs` checks every n in 1..=1000.
//!
//! One deliberate difference: for `trailing`, diffusers' `np.arange(T, 0, -T/n)` yields n + 1 values for some n (62 of
//! 1..=1000 at T = 1000, e.g. 61) whose last becomes timestep −1; here there are always exactly n.

use super::TimestepSpacing;

/// The `n_steps` inference timesteps (strictly decreasing) for `n_train` training timesteps.
///
/// `steps_offset` is added under `leading` spacing only (as diffusers); the caller checks that the result stays below
/// `n_train` ([`SchedulerConfig::timesteps`](super::SchedulerConfig::timesteps) does).
///
/// # Panics
/// If `n_steps` is 0 or exceeds `n_train` (a bug of the caller: the config checks it first).
pub(crate) fn inference_timesteps(
    spacing: TimestepSpacing,
    n_train: usize,
    n_steps: usize,
    steps_offset: usize,
) -> Vec<usize> {
    assert!((1..=n_train).contains(&n_steps), "inference_timesteps: n_steps = {n_steps} not in 1..={n_train}");
    match spacing {
        TimestepSpacing::Leading => {
            let ratio = n_train / n_steps;
            (0..n_steps).rev().map(|i| i * ratio + steps_offset).collect()
        }
        TimestepSpacing::Trailing => {
            // np.arange(T, 0, -T/n) fills value i as `start + i * delta` with delta = (start + step) - start.
            let start = n_train as f64;
            let delta = (start - n_train as f64 / n_steps as f64) - start;
            // Each value is at least T/n >= 1, so the rounded timestep is >= 0.
            (0..n_steps).map(|i| (start + i as f64 * delta).round_ties_even() as usize - 1).collect()
        }
        TimestepSpacing::Linspace => {
            // np.linspace(0, T - 1, n) computes value i as `i * step` and sets the last to T - 1 exactly.
            let end = (n_train - 1) as f64;
            let step = if n_steps > 1 { end / (n_steps - 1) as f64 } else { 0.0 };
            (0..n_steps)
                .rev()
                .map(|i| if i == n_steps - 1 && n_steps > 1 { end } else { i as f64 * step })
                .map(|v| v.round_ties_even() as usize)
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_cases_by_hand() {
        assert_eq!(inference_timesteps(TimestepSpacing::Leading, 1000, 4, 1), [751, 501, 251, 1]);
        assert_eq!(inference_timesteps(TimestepSpacing::Trailing, 1000, 4, 1), [999, 749, 499, 249]);
        // 999/2 = 499.5 rounds to the even 500.
        assert_eq!(inference_timesteps(TimestepSpacing::Linspace, 1000, 3, 0), [999, 500, 0]);
        assert_eq!(inference_timesteps(TimestepSpacing::Linspace, 1000, 1, 0), [0]);
        assert_eq!(inference_timesteps(TimestepSpacing::Trailing, 10, 10, 0), [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]);
    }
}
