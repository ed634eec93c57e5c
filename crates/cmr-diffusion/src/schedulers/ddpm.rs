//! DDPM ancestral sampling (Ho, Jain & Abbeel 2020, "Denoising Diffusion Probabilistic Models",
//! <https://arxiv.org/abs/2006.11239>), over any subset of the training timesteps, as diffusers' `DDPMScheduler`:
//! <https://github.com/huggingface/diffusers/blob/v0.42.1/src/diffusers/schedulers/scheduling_ddpm.py>.
//!
//! Each step samples the posterior q(x_{t'} | x_t, x̂_0) with x̂_0 read off the model output, where t' is the next
//! inference timestep: with every training timestep (n = T) this is Algorithm 2 of the paper; with fewer, β_t becomes
//! the β of the stride, 1 − ᾱ_t/ᾱ_{t'}.

use candle_core::Tensor;

use super::{
    estimates, lincomb, NoiseSchedule, Result, Scheduler, SchedulerConfig, SchedulerError, SchedulerKind, StepOutput,
    VarianceType,
};

/// The floor on the posterior variance β̃_t (diffusers clamps it so that its log, in the `*_log` variants, is finite).
const MIN_VARIANCE: f64 = 1e-20;

/// DDPM sampler: the noise schedule plus a fixed list of inference timesteps.
#[derive(Debug, Clone)]
pub struct DdpmScheduler {
    config: SchedulerConfig,
    schedule: NoiseSchedule,
    timesteps: Vec<usize>,
}

impl DdpmScheduler {
    /// A DDPM sampler of `n_steps` inference steps on `config`'s schedule, whatever `config.kind` says (so a DDIM
    /// config with η = 0 also yields its DDPM counterpart; [`Scheduler::config`] then reports `DDPMScheduler`).
    ///
    /// # Errors
    /// Any [`SchedulerConfig::validate`] error (η ≠ 0 included: DDPM has none); [`SchedulerError::InferenceSteps`] unless
    /// `1 <= n_steps <= num_train_timesteps`; `InvalidConfig` naming `steps_offset` if it pushes a timestep out of
    /// range.
    pub fn new(config: &SchedulerConfig, n_steps: usize) -> Result<Self> {
        let config = SchedulerConfig { kind: SchedulerKind::Ddpm, ..config.clone() };
        let schedule = config.noise_schedule()?;
        let timesteps = config.timesteps(n_steps)?;
        Ok(Self { config, schedule, timesteps })
    }

    /// The inference timestep after `timestep` (None after the last one).
    fn previous_timestep(&self, timestep: usize) -> Result<Option<usize>> {
        let index = self
            .timesteps
            .iter()
            .position(|&t| t == timestep)
            .ok_or(SchedulerError::UnknownTimestep { timestep, n_steps: self.timesteps.len() })?;
        Ok(self.timesteps.get(index + 1).copied())
    }
}

impl Scheduler for DdpmScheduler {
    fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    fn schedule(&self) -> &NoiseSchedule {
        &self.schedule
    }

    fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// Every step but the one at t = 0 adds noise (as diffusers: the condition is t > 0, not "not the last step", so
    /// a `leading` schedule with `steps_offset` = 1 adds noise on its last step too).
    fn needs_noise(&self, timestep: usize) -> bool {
        timestep > 0
    }

    /// Ho et al. 2020, eqs. 15 → 7 → 6, with t' the next inference timestep (t − 1 when every timestep is visited):
    ///
    /// 1. x̂_0 from the model output (eq. 15 for ε: x̂_0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t), clipped to ±`clip_sample_range`;
    /// 2. the posterior mean μ̃_t = √ᾱ_{t'}·β_t/(1−ᾱ_t) · x̂_0 + √α_t·(1−ᾱ_{t'})/(1−ᾱ_t) · x_t (eq. 7);
    /// 3. x_{t'} = μ̃_t + σ_t·z with z ~ N(0, I) (`noise`) for t > 0, σ_t² = β̃_t = (1−ᾱ_{t'})/(1−ᾱ_t)·β_t
    ///    (`fixed_small`) or β_t (`fixed_large`) (sec. 3.2; Algorithm 2, line 4).
    ///
    /// Notation (variable → paper):
    /// - `alpha_prod_t` → ᾱ_t, `alpha_prod_prev` → ᾱ_{t'} (1 after the last step)
    /// - `beta_prod_t` → 1 − ᾱ_t, `beta_prod_prev` → 1 − ᾱ_{t'}
    /// - `alpha_t` → α_t = ᾱ_t/ᾱ_{t'}, `beta_t` → β_t = 1 − α_t
    /// - `x0` → x̂_0, `sample` → x_t, `noise` → z
    fn step(
        &self,
        model_output: &Tensor,
        timestep: usize,
        sample: &Tensor,
        noise: Option<&Tensor>,
    ) -> Result<StepOutput> {
        let prev = self.previous_timestep(timestep)?;
        let alpha_prod_t = self.schedule.alphas_cumprod()[timestep];
        let alpha_prod_prev = prev.map_or(1.0, |p| self.schedule.alphas_cumprod()[p]);
        let (beta_prod_t, beta_prod_prev) = (1.0 - alpha_prod_t, 1.0 - alpha_prod_prev);
        let alpha_t = alpha_prod_t / alpha_prod_prev;
        let beta_t = 1.0 - alpha_t;

        // 1. x̂_0 (eq. 15 and its v / x_0 counterparts)
        let (mut x0, _) = estimates(self.config.prediction_type, model_output, sample, alpha_prod_t)?;
        if self.config.clip_sample {
            x0 = x0.clamp(-self.config.clip_sample_range, self.config.clip_sample_range)?;
        }

        // 2. posterior mean μ̃_t (eq. 7)
        let x0_coef = alpha_prod_prev.sqrt() * beta_t / beta_prod_t;
        let sample_coef = alpha_t.sqrt() * beta_prod_prev / beta_prod_t;
        let mut prev_sample = lincomb(x0_coef, &x0, sample_coef, sample)?;

        // 3. ancestral noise σ_t·z
        if self.needs_noise(timestep) {
            let noise = noise.ok_or(SchedulerError::NoiseRequired { scheduler: "DDPMScheduler", timestep })?;
            let variance = match self.config.variance_type {
                VarianceType::FixedSmall => (beta_prod_prev / beta_prod_t * beta_t).max(MIN_VARIANCE),
                VarianceType::FixedLarge => beta_t,
            };
            prev_sample = (prev_sample + noise.affine(variance.sqrt(), 0.0)?)?;
        }
        Ok(StepOutput { prev_sample, pred_original_sample: x0 })
    }
}
