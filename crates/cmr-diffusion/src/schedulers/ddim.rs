//! DDIM sampling (Song, Meng & Ermon 2021, "Denoising Diffusion Implicit Models", <https://arxiv.org/abs/2010.02502>)
//! with stochasticity η, as diffusers' `DDIMScheduler`:
//! <https://github.com/huggingface/diffusers/blob/v0.42.1/src/diffusers/schedulers/scheduling_ddim.py>.
//!
//! The paper writes α_t for what DDPM calls ᾱ_t; the code and docs here use ᾱ_t throughout.

use candle_core::Tensor;

use super::{
    estimates, lincomb, NoiseSchedule, Result, Scheduler, SchedulerConfig, SchedulerError, SchedulerKind, StepOutput,
};

/// DDIM sampler: the noise schedule, a fixed list of inference timesteps and η.
#[derive(Debug, Clone)]
pub struct DdimScheduler {
    config: SchedulerConfig,
    schedule: NoiseSchedule,
    timesteps: Vec<usize>,
    /// ᾱ before the first training timestep: 1, or ᾱ_0 when `set_alpha_to_one` is false.
    final_alpha_cumprod: f64,
}

impl DdimScheduler {
    /// A DDIM sampler of `n_steps` inference steps with η = `config.eta`, whatever `config.kind` says (so the DDPM
    /// config a model was trained with also yields its DDIM sampler; [`Scheduler::config`] then reports
    /// `DDIMScheduler`).
    ///
    /// # Errors
    /// Any [`SchedulerConfig::validate`] error;
    /// [`SchedulerError::InferenceSteps`] unless `1 <= n_steps <= num_train_timesteps`; `InvalidConfig` naming
    /// `steps_offset` if it pushes a timestep out of range.
    pub fn new(config: &SchedulerConfig, n_steps: usize) -> Result<Self> {
        let config = SchedulerConfig { kind: SchedulerKind::Ddim, ..config.clone() };
        let schedule = config.noise_schedule()?;
        let timesteps = config.timesteps(n_steps)?;
        let final_alpha_cumprod = if config.set_alpha_to_one { 1.0 } else { schedule.alphas_cumprod()[0] };
        Ok(Self { config, schedule, timesteps, final_alpha_cumprod })
    }

    /// The timestep t' this step lands on: t − ⌊T/n⌋, as diffusers, whatever the spacing (for `trailing` with n not
    /// dividing T this is not always the next inference timestep; matching diffusers keeps trained pipelines
    /// comparable). None below 0.
    fn previous_timestep(&self, timestep: usize) -> Option<usize> {
        timestep.checked_sub(self.config.num_train_timesteps / self.timesteps.len())
    }
}

impl Scheduler for DdimScheduler {
    fn config(&self) -> &SchedulerConfig {
        &self.config
    }

    fn schedule(&self) -> &NoiseSchedule {
        &self.schedule
    }

    fn timesteps(&self) -> &[usize] {
        &self.timesteps
    }

    /// Every step when η > 0, none at η = 0.
    fn needs_noise(&self, _timestep: usize) -> bool {
        self.config.eta > 0.0
    }

    /// Song et al. 2021, eq. 12, with σ_t from eq. 16:
    ///
    /// x_{t'} = √ᾱ_{t'} · x̂_0 + √(1 − ᾱ_{t'} − σ_t²) · ε̂ + σ_t · z,
    /// x̂_0 = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t ("predicted x_0"), the middle term the "direction pointing to x_t",
    /// σ_t = η · √((1−ᾱ_{t'})/(1−ᾱ_t)) · √(1 − ᾱ_t/ᾱ_{t'}), z ~ N(0, I) (`noise`, used only when η > 0).
    ///
    /// x̂_0 is clipped to ±`clip_sample_range` when `clip_sample`; ε̂ stays the model's (diffusers'
    /// `use_clipped_model_output = False`). Any `timestep` in 0..T is accepted (DDIM does not need it to be one of
    /// [`timesteps`](Scheduler::timesteps)).
    ///
    /// Notation (variable → paper):
    /// - `alpha_prod_t` → ᾱ_t (the paper's α_t), `alpha_prod_prev` → ᾱ_{t'} (`final_alpha_cumprod` below t = 0)
    /// - `beta_prod_t` → 1 − ᾱ_t, `beta_prod_prev` → 1 − ᾱ_{t'}
    /// - `std_dev` → σ_t, `eta` → η, `x0` → x̂_0, `eps` → ε̂ = ε_θ^{(t)}(x_t), `sample` → x_t, `noise` → z
    fn step(
        &self,
        model_output: &Tensor,
        timestep: usize,
        sample: &Tensor,
        noise: Option<&Tensor>,
    ) -> Result<StepOutput> {
        let alpha_prod_t = self.schedule.alpha_prod(timestep)?;
        let alpha_prod_prev =
            self.previous_timestep(timestep).map_or(self.final_alpha_cumprod, |p| self.schedule.alphas_cumprod()[p]);
        let (beta_prod_t, beta_prod_prev) = (1.0 - alpha_prod_t, 1.0 - alpha_prod_prev);

        // 1. predicted x_0 and ε
        let (mut x0, eps) = estimates(self.config.prediction_type, model_output, sample, alpha_prod_t)?;
        if self.config.clip_sample {
            x0 = x0.clamp(-self.config.clip_sample_range, self.config.clip_sample_range)?;
        }

        // 2. σ_t (eq. 16)
        let variance = beta_prod_prev / beta_prod_t * (1.0 - alpha_prod_t / alpha_prod_prev);
        let std_dev = self.config.eta * variance.sqrt();

        // 3. eq. 12: predicted x_0, direction pointing to x_t, random noise
        let direction_coef = (beta_prod_prev - std_dev * std_dev).sqrt();
        let mut prev_sample = lincomb(alpha_prod_prev.sqrt(), &x0, direction_coef, &eps)?;
        if self.needs_noise(timestep) {
            let noise = noise.ok_or(SchedulerError::NoiseRequired { scheduler: "DDIMScheduler", timestep })?;
            prev_sample = (prev_sample + noise.affine(std_dev, 0.0)?)?;
        }
        Ok(StepOutput { prev_sample, pred_original_sample: x0 })
    }
}
