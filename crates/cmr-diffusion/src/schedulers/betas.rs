//! Beta schedules and the forward (noising) process q(x_t | x_0) of Ho et al. 2020 (<https://arxiv.org/abs/2006.11239>,
//! eq. 4), shared by training and every sampler.
//!
//! Upstream: `betas_for_alpha_bar` and `add_noise` / `get_velocity` in
//! <https://github.com/huggingface/diffusers/blob/v0.42.1/src/diffusers/schedulers/scheduling_ddpm.py>. diffusers
//! builds β_t and ᾱ_t in float32; here they are `f64` (the goldens run diffusers in float64 to match).
//! candle-transformers' cosine schedule is not reused: its `betas_for_alpha_bar` divides integers, so 999 of 1000
//! betas come out 0.

use candle_core::Tensor;

use super::{BetaSchedule, PredictionType, Result, SchedulerError};

/// β_t and ᾱ_t = ∏_{s≤t} (1 − β_s) for t in 0..T, plus the parametrisation the model is trained in.
#[derive(Debug, Clone, PartialEq)]
pub struct NoiseSchedule {
    betas: Vec<f64>,
    alphas_cumprod: Vec<f64>,
    prediction_type: PredictionType,
}

/// The cosine schedule's cap on β (Nichol & Dhariwal 2021, sec. 3.2: "to prevent singularities at the end of the
/// diffusion process near t = T").
const MAX_COSINE_BETA: f64 = 0.999;

/// `n` values evenly spaced from `start` to `end` inclusive (`[start]` when `n` = 1).
fn linspace(start: f64, end: f64, n: usize) -> Vec<f64> {
    if n == 1 {
        return vec![start];
    }
    let step = (end - start) / (n - 1) as f64;
    (0..n).map(|i| if i == n - 1 { end } else { start + step * i as f64 }).collect()
}

/// ᾱ(t) of the cosine schedule for t ∈ [0, 1], offset s = 0.008 (Nichol & Dhariwal 2021, eq. 17).
fn cosine_alpha_bar(t: f64) -> f64 {
    let s = 0.008;
    ((t + s) / (1.0 + s) * std::f64::consts::FRAC_PI_2).cos().powi(2)
}

impl NoiseSchedule {
    /// The schedule of `n_train` steps. Callers go through [`SchedulerConfig::noise_schedule`], which validates the
    /// arguments first.
    ///
    /// [`SchedulerConfig::noise_schedule`]: super::SchedulerConfig::noise_schedule
    pub(crate) fn new(
        schedule: BetaSchedule,
        n_train: usize,
        beta_start: f64,
        beta_end: f64,
        prediction_type: PredictionType,
    ) -> Self {
        let betas: Vec<f64> = match schedule {
            BetaSchedule::Linear => linspace(beta_start, beta_end, n_train),
            BetaSchedule::ScaledLinear => {
                linspace(beta_start.sqrt(), beta_end.sqrt(), n_train).into_iter().map(|b| b * b).collect()
            }
            BetaSchedule::SquaredcosCapV2 => (0..n_train)
                .map(|i| {
                    let (t1, t2) = (i as f64 / n_train as f64, (i + 1) as f64 / n_train as f64);
                    (1.0 - cosine_alpha_bar(t2) / cosine_alpha_bar(t1)).min(MAX_COSINE_BETA)
                })
                .collect(),
        };
        let alphas_cumprod = betas
            .iter()
            .scan(1.0, |prod, beta| {
                *prod *= 1.0 - beta;
                Some(*prod)
            })
            .collect();
        Self { betas, alphas_cumprod, prediction_type }
    }

    /// T, the number of training timesteps.
    pub fn len(&self) -> usize {
        self.betas.len()
    }

    /// Never true: a validated config has at least one timestep (here for clippy's `len_without_is_empty`).
    pub fn is_empty(&self) -> bool {
        self.betas.is_empty()
    }

    /// β_t for t in 0..T.
    pub fn betas(&self) -> &[f64] {
        &self.betas
    }

    /// ᾱ_t = ∏_{s≤t} (1 − β_s) for t in 0..T (diffusers' `alphas_cumprod`).
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    /// ᾱ_t, or [`SchedulerError::TimestepOutOfRange`] when t ≥ T.
    pub fn alpha_prod(&self, t: usize) -> Result<f64> {
        self.alphas_cumprod
            .get(t)
            .copied()
            .ok_or(SchedulerError::TimestepOutOfRange { timestep: t, num_train_timesteps: self.len() })
    }

    /// The parametrisation the model is trained in (sets [`target`](Self::target)).
    pub fn prediction_type(&self) -> PredictionType {
        self.prediction_type
    }

    /// Min-SNR-γ loss weights (Hang et al. 2023, <https://arxiv.org/abs/2303.09556>, sec. 3.4), one per timestep:
    /// with SNR(t) = ᾱ_t / (1 − ᾱ_t), `min(SNR, γ) / SNR` for ε, `min(SNR, γ) / (SNR + 1)` for v and `min(SNR, γ)`
    /// for x_0 — the MSE in each parametrisation, reweighted as an x_0 loss clipped at γ. They keep the nearly
    /// noise-free timesteps, whose ε is hard to tell from the image's own grain, from dominating the gradient
    /// (diffusers' text-to-image example, `--snr_gamma`).
    pub fn min_snr_weights(&self, timesteps: &[usize], gamma: f64) -> Result<Vec<f64>> {
        timesteps
            .iter()
            .map(|&t| {
                let alpha_prod = self.alpha_prod(t)?;
                let snr = alpha_prod / (1.0 - alpha_prod);
                Ok(match self.prediction_type {
                    PredictionType::Epsilon => snr.min(gamma) / snr,
                    PredictionType::VPrediction => snr.min(gamma) / (snr + 1.0),
                    PredictionType::Sample => snr.min(gamma),
                })
            })
            .collect()
    }

    /// `(a(t_i), b(t_i))` per sample as tensors shaped `(batch, 1, …, 1)` to broadcast against `like`.
    fn per_sample(
        &self,
        like: &Tensor,
        timesteps: &[usize],
        coef: impl Fn(f64) -> (f64, f64),
    ) -> Result<(Tensor, Tensor)> {
        let batch = like.dims().first().copied().unwrap_or(0);
        if timesteps.len() != batch {
            return Err(SchedulerError::TimestepCount { batch, got: timesteps.len() });
        }
        let (mut a, mut b) = (Vec::with_capacity(batch), Vec::with_capacity(batch));
        for &t in timesteps {
            let alpha_prod = self.alpha_prod(t)?;
            let (x, y) = coef(alpha_prod);
            a.push(x);
            b.push(y);
        }
        let mut shape = vec![1; like.rank()];
        shape[0] = batch;
        let tensor = |v: Vec<f64>| -> Result<Tensor> {
            Ok(Tensor::from_vec(v, shape.as_slice(), like.device())?.to_dtype(like.dtype())?)
        };
        Ok((tensor(a)?, tensor(b)?))
    }

    /// The forward process (Ho et al. 2020, eq. 4): `x_t = √ᾱ_t · x_0 + √(1 − ᾱ_t) · noise`, one timestep per sample
    /// (`timesteps.len()` = the first dimension of `original`; `noise` shaped as `original`).
    pub fn add_noise(&self, original: &Tensor, noise: &Tensor, timesteps: &[usize]) -> Result<Tensor> {
        let (signal, noise_scale) = self.per_sample(original, timesteps, |a| (a.sqrt(), (1.0 - a).sqrt()))?;
        Ok((original.broadcast_mul(&signal)? + noise.broadcast_mul(&noise_scale)?)?)
    }

    /// The velocity `v_t = √ᾱ_t · noise − √(1 − ᾱ_t) · x_0` (Salimans & Ho 2022, sec. 4), one timestep per sample.
    pub fn velocity(&self, original: &Tensor, noise: &Tensor, timesteps: &[usize]) -> Result<Tensor> {
        let (noise_scale, signal) = self.per_sample(original, timesteps, |a| (a.sqrt(), -(1.0 - a).sqrt()))?;
        Ok((noise.broadcast_mul(&noise_scale)? + original.broadcast_mul(&signal)?)?)
    }

    /// What the model is trained to output for `x_t = add_noise(original, noise, timesteps)`: `noise` (ε), the
    /// [`velocity`](Self::velocity) (v) or `original` (x_0), by the prediction type.
    pub fn target(&self, original: &Tensor, noise: &Tensor, timesteps: &[usize]) -> Result<Tensor> {
        match self.prediction_type {
            PredictionType::Epsilon => Ok(noise.clone()),
            PredictionType::VPrediction => self.velocity(original, noise, timesteps),
            PredictionType::Sample => Ok(original.clone()),
        }
    }
}
