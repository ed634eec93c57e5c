//! Noise schedulers: DDPM (training noise and ancestral sampling, Ho et al. 2020, <https://arxiv.org/abs/2006.11239>)
//! and DDIM (Song et al. 2021, <https://arxiv.org/abs/2010.02502>), matching diffusers v0.42.1's `DDPMScheduler` and
//! `DDIMScheduler` (checked against its outputs in `tests/suite/schedulers.rs`).
//!
//! Pure math: nothing here imports `models/`. One [`SchedulerConfig`] (diffusers' field names, so a diffusers
//! `scheduler_config.json` deserialises into it) serves both sides:
//! - training: [`SchedulerConfig::noise_schedule`] → [`NoiseSchedule::add_noise`] and [`NoiseSchedule::target`];
//! - sampling: [`SchedulerConfig::build`]`(n_steps)` → a [`Scheduler`] whose inference timesteps are fixed at
//!   construction, so there is no "call `set_timesteps` first" state.
//!
//! The schedule (β_t, ᾱ_t) is precomputed in `f64`; tensors appear only in `add_noise`, `step` and their kin, in the
//! dtype of the sample. Randomness is the caller's: stochastic steps take their standard-normal noise as an argument
//! (draw it from a stream of `cmr_core::seed`), so a run is reproducible from its seed alone.

mod betas;
mod config;
mod ddim;
mod ddpm;
mod timesteps;

pub use betas::NoiseSchedule;
pub use config::{BetaSchedule, PredictionType, SchedulerConfig, SchedulerKind, TimestepSpacing, VarianceType};
pub use ddim::DdimScheduler;
pub use ddpm::DdpmScheduler;
use timesteps::inference_timesteps;

use candle_core::Tensor;

/// Errors of scheduler configuration and use. Configuration errors name the offending field.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// A name that is not one of the supported values (e.g. `beta_schedule = "sigmoid"`).
    #[error("unknown {field} `{value}`; expected one of: {}", expected.join(", "))]
    UnknownValue {
        /// The config field (diffusers' name).
        field: &'static str,
        /// The value given.
        value: String,
        /// The supported values.
        expected: &'static [&'static str],
    },
    /// A field whose value is out of its valid range.
    #[error("invalid scheduler config: {field} = {value}; {reason}")]
    InvalidConfig {
        /// The config field (diffusers' name).
        field: &'static str,
        /// The value given.
        value: String,
        /// What a valid value is.
        reason: String,
    },
    /// A diffusers option this implementation does not have (rather than silently ignoring it).
    #[error("unsupported scheduler config: {field} = {value}; {hint}")]
    Unsupported {
        /// The config field (diffusers' name).
        field: &'static str,
        /// The value given.
        value: String,
        /// What to use instead.
        hint: &'static str,
    },
    /// The number of inference steps is zero or exceeds the number of training timesteps.
    #[error(
        "n_steps = {n_steps} inference steps is out of range: it must be between 1 and num_train_timesteps = \
         {num_train_timesteps}"
    )]
    InferenceSteps {
        /// The requested number of inference steps.
        n_steps: usize,
        /// `num_train_timesteps` of the config.
        num_train_timesteps: usize,
    },
    /// A timestep at or beyond `num_train_timesteps`.
    #[error("timestep {timestep} is out of range: timesteps run from 0 to num_train_timesteps - 1 = {}", num_train_timesteps - 1)]
    TimestepOutOfRange {
        /// The timestep given.
        timestep: usize,
        /// `num_train_timesteps` of the config.
        num_train_timesteps: usize,
    },
    /// A DDPM step at a timestep that is not one of the scheduler's inference timesteps (its predecessor is unknown).
    #[error("timestep {timestep} is not one of this scheduler's {n_steps} inference timesteps; use its timesteps()")]
    UnknownTimestep {
        /// The timestep given.
        timestep: usize,
        /// The number of inference steps the scheduler was built with.
        n_steps: usize,
    },
    /// `add_noise` needs exactly one timestep per sample.
    #[error("{got} timesteps for a batch of {batch} samples; pass one timestep per sample")]
    TimestepCount {
        /// The batch size (first dimension of the sample).
        batch: usize,
        /// The number of timesteps given.
        got: usize,
    },
    /// A stochastic step (DDPM at t > 0, DDIM with η > 0) was called without its noise.
    #[error(
        "the {scheduler} step at timestep {timestep} adds noise: pass a standard-normal tensor shaped as the sample"
    )]
    NoiseRequired {
        /// Which scheduler (diffusers' class name).
        scheduler: &'static str,
        /// The timestep of the step.
        timestep: usize,
    },
    /// A tensor operation failed (mismatched shapes or devices).
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
}

/// Result alias of this module.
pub type Result<T> = std::result::Result<T, SchedulerError>;

/// What one denoising step returns.
#[derive(Debug, Clone)]
pub struct StepOutput {
    /// x_{t'}: the sample at the previous (less noisy) inference timestep t'; the next model input.
    pub prev_sample: Tensor,
    /// x̂_0: the clean sample predicted from the model output at t (after clipping, if `clip_sample`).
    pub pred_original_sample: Tensor,
}

/// A sampler over a fixed set of inference timesteps, built by [`SchedulerConfig::build`].
///
/// The denoising loop is
/// ```no_run
/// # use candle_core::Tensor;
/// # use cmr_diffusion::schedulers::{Scheduler, SchedulerConfig};
/// # fn model(x: &Tensor, t: usize) -> Tensor { x.clone() }
/// # fn normal_like(x: &Tensor) -> Tensor { x.zeros_like().unwrap() }
/// # fn main() -> cmr_diffusion::schedulers::Result<()> {
/// # let mut x = Tensor::zeros((1, 2, 8, 8), candle_core::DType::F32, &candle_core::Device::Cpu)?;
/// let scheduler = SchedulerConfig::default().build(20)?;
/// for &t in scheduler.timesteps() {
///     let eps = model(&scheduler.scale_model_input(x.clone(), t)?, t);
///     let noise = scheduler.needs_noise(t).then(|| normal_like(&x));
///     x = scheduler.step(&eps, t, &x, noise.as_ref())?.prev_sample;
/// }
/// # Ok(()) }
/// ```
pub trait Scheduler {
    /// The config the scheduler was built from.
    fn config(&self) -> &SchedulerConfig;

    /// The training noise schedule (β_t, ᾱ_t) the scheduler samples with.
    fn schedule(&self) -> &NoiseSchedule;

    /// The inference timesteps, strictly decreasing, each in `0..num_train_timesteps`; the loop visits them in order.
    fn timesteps(&self) -> &[usize];

    /// The forward process q(x_t | x_0) for a batch: `x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · noise` with one timestep per
    /// sample (`timesteps.len()` = the first dimension of `original`). Same as [`NoiseSchedule::add_noise`].
    fn add_noise(&self, original: &Tensor, noise: &Tensor, timesteps: &[usize]) -> Result<Tensor> {
        self.schedule().add_noise(original, noise, timesteps)
    }

    /// Scales the model input at `timestep`. The identity for DDPM and DDIM (kept so that the loop reads the same for
    /// schedulers that do scale, such as Euler's).
    fn scale_model_input(&self, sample: Tensor, timestep: usize) -> Result<Tensor> {
        let _ = timestep;
        Ok(sample)
    }

    /// Whether [`step`](Self::step) at `timestep` adds noise, i.e. needs its `noise` argument (callers may skip the
    /// draw otherwise).
    fn needs_noise(&self, timestep: usize) -> bool;

    /// One reverse step from `sample` = x_t at inference timestep `timestep`, given the model output there.
    ///
    /// `noise` is a standard-normal tensor shaped as `sample`, required when [`needs_noise`](Self::needs_noise)
    /// says so ([`SchedulerError::NoiseRequired`] otherwise) and ignored when not.
    fn step(
        &self,
        model_output: &Tensor,
        timestep: usize,
        sample: &Tensor,
        noise: Option<&Tensor>,
    ) -> Result<StepOutput>;
}

/// `a·x + b·y` in the dtype of `x` and `y`.
fn lincomb(a: f64, x: &Tensor, b: f64, y: &Tensor) -> Result<Tensor> {
    Ok((x.affine(a, 0.0)? + y.affine(b, 0.0)?)?)
}

/// The estimates (x̂_0, ε̂) that a model output stands for at a timestep with cumulative signal ᾱ_t = `alpha_prod_t`,
/// by the parametrisation `prediction` (x_t = √ᾱ_t·x_0 + √(1−ᾱ_t)·ε; v = √ᾱ_t·ε − √(1−ᾱ_t)·x_0).
fn estimates(
    prediction: PredictionType,
    model_output: &Tensor,
    sample: &Tensor,
    alpha_prod_t: f64,
) -> Result<(Tensor, Tensor)> {
    let (sqrt_alpha, sqrt_beta) = (alpha_prod_t.sqrt(), (1.0 - alpha_prod_t).sqrt());
    Ok(match prediction {
        PredictionType::Epsilon => {
            let x0 = lincomb(1.0 / sqrt_alpha, sample, -sqrt_beta / sqrt_alpha, model_output)?;
            (x0, model_output.clone())
        }
        PredictionType::VPrediction => {
            let x0 = lincomb(sqrt_alpha, sample, -sqrt_beta, model_output)?;
            let eps = lincomb(sqrt_alpha, model_output, sqrt_beta, sample)?;
            (x0, eps)
        }
        PredictionType::Sample => {
            let eps = lincomb(1.0 / sqrt_beta, sample, -sqrt_alpha / sqrt_beta, model_output)?;
            (model_output.clone(), eps)
        }
    })
}
