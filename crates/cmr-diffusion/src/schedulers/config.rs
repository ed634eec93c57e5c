//! The one scheduler config shared by training (noise schedule) and sampling (DDPM / DDIM), with diffusers' field
//! names and defaults (v0.42.1, `DDPMScheduler.__init__` / `DDIMScheduler.__init__`), so that a diffusers
//! `scheduler_config.json` deserialises into it.
//! <https://github.com/huggingface/diffusers/blob/v0.42.1/src/diffusers/schedulers/scheduling_ddpm.py>

use serde::{Deserialize, Serialize};

use super::{inference_timesteps, DdimScheduler, DdpmScheduler, NoiseSchedule, Result, Scheduler, SchedulerError};

/// A string-valued config enum: the names are diffusers'; parsing an unknown one gives
/// [`SchedulerError::UnknownValue`] naming `$field`.
macro_rules! named_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($(#[$vmeta:meta])* $variant:ident => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "&'static str")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every accepted name, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The name as diffusers writes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text,)+
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = SchedulerError;

            fn from_str(s: &str) -> Result<Self> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(SchedulerError::UnknownValue { field: $field, value: s.to_owned(), expected: Self::NAMES }),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = SchedulerError;

            fn try_from(s: String) -> Result<Self> {
                s.parse()
            }
        }

        impl From<$name> for &'static str {
            fn from(value: $name) -> Self {
                value.as_str()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

named_enum!(
    /// Which sampler [`SchedulerConfig::build`] makes (diffusers' `_class_name`).
    SchedulerKind, "_class_name" {
        /// `DDPMScheduler`: ancestral sampling, Ho et al. 2020.
        Ddpm => "DDPMScheduler",
        /// `DDIMScheduler`: Song et al. 2021, deterministic at η = 0.
        Ddim => "DDIMScheduler",
    }
);

named_enum!(
    /// How β_1 … β_T are laid out (diffusers' `beta_schedule`).
    BetaSchedule, "beta_schedule" {
        /// β_t evenly spaced from `beta_start` to `beta_end` (Ho et al. 2020).
        Linear => "linear",
        /// √β_t evenly spaced from √`beta_start` to √`beta_end`, squared (Stable Diffusion's schedule).
        ScaledLinear => "scaled_linear",
        /// ᾱ(t) = cos²((t + 0.008)/1.008 · π/2), β_t = min(1 − ᾱ(t+1)/ᾱ(t), 0.999) (Nichol & Dhariwal 2021, eq. 17);
        /// ignores `beta_start` / `beta_end`.
        SquaredcosCapV2 => "squaredcos_cap_v2",
    }
);

named_enum!(
    /// What the model predicts (diffusers' `prediction_type`).
    PredictionType, "prediction_type" {
        /// The noise ε.
        Epsilon => "epsilon",
        /// The velocity v = √ᾱ_t·ε − √(1−ᾱ_t)·x_0 (Salimans & Ho 2022, sec. 4).
        VPrediction => "v_prediction",
        /// The clean sample x_0.
        Sample => "sample",
    }
);

named_enum!(
    /// The variance of DDPM's ancestral step (diffusers' `variance_type`); DDIM ignores it.
    VarianceType, "variance_type" {
        /// σ_t² = β̃_t = (1 − ᾱ_{t'})/(1 − ᾱ_t) · β_t, the posterior variance (Ho et al. 2020, eq. 7), floored at
        /// 1e-20 as diffusers.
        FixedSmall => "fixed_small",
        /// σ_t² = β_t (Ho et al. 2020, sec. 3.2: "similar results").
        FixedLarge => "fixed_large",
    }
);

named_enum!(
    /// How the inference timesteps are picked from 0..T (diffusers' `timestep_spacing`; Lin et al. 2023, table 2).
    TimestepSpacing, "timestep_spacing" {
        /// Multiples of T/n (integer division) from 0, plus `steps_offset`: never reaches T − 1.
        Leading => "leading",
        /// round(T − i·T/n) − 1: starts at T − 1; `steps_offset` is ignored.
        Trailing => "trailing",
        /// round(linspace(0, T − 1, n)): both ends; `steps_offset` is ignored.
        Linspace => "linspace",
    }
);

/// The scheduler config: noise schedule, parametrisation and sampler options, with diffusers' names and defaults.
///
/// Missing fields take their defaults; fields diffusers writes that change nothing here (`_diffusers_version`,
/// `dynamic_thresholding_ratio`, `sample_max_value`, …) are ignored; options this crate does not implement
/// (`thresholding`, `rescale_betas_zero_snr`, `trained_betas`) are kept so that [`validate`](Self::validate) can
/// refuse them instead of silently dropping them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SchedulerConfig {
    /// The sampler that [`build`](Self::build) makes. Default `DDPMScheduler`.
    #[serde(rename = "_class_name")]
    pub kind: SchedulerKind,
    /// T, the number of diffusion steps the model is trained with; timesteps run over 0..T. Default 1000.
    pub num_train_timesteps: usize,
    /// β at t = 0 for `linear` / `scaled_linear`. Default 0.0001.
    pub beta_start: f64,
    /// β at t = T − 1 for `linear` / `scaled_linear`. Default 0.02.
    pub beta_end: f64,
    /// The beta schedule. Default `linear`.
    pub beta_schedule: BetaSchedule,
    /// What the model predicts; sets the training target and how a step reads the model output. Default `epsilon`.
    pub prediction_type: PredictionType,
    /// DDPM's step variance. Default `fixed_small`; DDIM ignores it.
    pub variance_type: VarianceType,
    /// Whether the predicted x̂_0 is clipped to ±`clip_sample_range` in each step. Default `true`.
    pub clip_sample: bool,
    /// The clipping bound of `clip_sample`. Default 1.0.
    pub clip_sample_range: f64,
    /// DDIM: whether ᾱ before the first timestep is 1 (`true`) or ᾱ_0 (`false`); sets the last step's target.
    /// Default `true`; DDPM always uses 1.
    pub set_alpha_to_one: bool,
    /// Added to every `leading` timestep (Stable Diffusion uses 1). Default 0; other spacings ignore it.
    pub steps_offset: usize,
    /// How inference timesteps are spaced. Default `leading`.
    pub timestep_spacing: TimestepSpacing,
    /// DDIM's η: 0 is deterministic DDIM, 1 has DDPM's posterior variance (Song et al. 2021, eq. 16). Must lie in
    /// [0, 1]; only for `DDIMScheduler`. Default 0. Not a diffusers config field (diffusers passes it to `step`).
    pub eta: f64,
    /// diffusers' dynamic thresholding; not implemented, must be `false` (the default).
    pub thresholding: bool,
    /// diffusers' zero-terminal-SNR rescaling of the betas; not implemented, must be `false` (the default).
    pub rescale_betas_zero_snr: bool,
    /// diffusers' explicit betas; not implemented, must be `None` (the default).
    pub trained_betas: Option<Vec<f64>>,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        Self {
            kind: SchedulerKind::Ddpm,
            num_train_timesteps: 1000,
            beta_start: 0.0001,
            beta_end: 0.02,
            beta_schedule: BetaSchedule::Linear,
            prediction_type: PredictionType::Epsilon,
            variance_type: VarianceType::FixedSmall,
            clip_sample: true,
            clip_sample_range: 1.0,
            set_alpha_to_one: true,
            steps_offset: 0,
            timestep_spacing: TimestepSpacing::Leading,
            eta: 0.0,
            thresholding: false,
            rescale_betas_zero_snr: false,
            trained_betas: None,
        }
    }
}

fn invalid(field: &'static str, value: impl ToString, reason: impl Into<String>) -> SchedulerError {
    SchedulerError::InvalidConfig { field, value: value.to_string(), reason: reason.into() }
}

impl SchedulerConfig {
    /// Checks every field; [`noise_schedule`](Self::noise_schedule) and [`build`](Self::build) call it.
    pub fn validate(&self) -> Result<()> {
        if self.num_train_timesteps == 0 {
            return Err(invalid("num_train_timesteps", 0, "it must be at least 1"));
        }
        if self.beta_schedule != BetaSchedule::SquaredcosCapV2 {
            for (field, beta) in [("beta_start", self.beta_start), ("beta_end", self.beta_end)] {
                if !(beta > 0.0 && beta < 1.0) {
                    return Err(invalid(field, beta, "a beta must lie in (0, 1)"));
                }
            }
        }
        if !(self.clip_sample_range > 0.0 && self.clip_sample_range.is_finite()) {
            return Err(invalid("clip_sample_range", self.clip_sample_range, "it must be positive"));
        }
        if !(0.0..=1.0).contains(&self.eta) {
            return Err(invalid("eta", self.eta, "η must lie in [0, 1]"));
        }
        if self.eta != 0.0 && self.kind != SchedulerKind::Ddim {
            return Err(invalid("eta", self.eta, "only DDIMScheduler has η; set it to 0 or use DDIMScheduler"));
        }
        if self.thresholding {
            return Err(SchedulerError::Unsupported {
                field: "thresholding",
                value: "true".into(),
                hint: "dynamic thresholding is not implemented; set it to false (clip_sample clips x̂_0)",
            });
        }
        if self.rescale_betas_zero_snr {
            return Err(SchedulerError::Unsupported {
                field: "rescale_betas_zero_snr",
                value: "true".into(),
                hint: "zero-terminal-SNR rescaling is not implemented; set it to false",
            });
        }
        if let Some(betas) = &self.trained_betas {
            return Err(SchedulerError::Unsupported {
                field: "trained_betas",
                value: format!("[{} values]", betas.len()),
                hint: "explicit betas are not implemented; remove the field and use beta_schedule",
            });
        }
        Ok(())
    }

    /// The training noise schedule: β_t and ᾱ_t for t in 0..T, with `add_noise` and the training target.
    pub fn noise_schedule(&self) -> Result<NoiseSchedule> {
        self.validate()?;
        Ok(NoiseSchedule::new(
            self.beta_schedule,
            self.num_train_timesteps,
            self.beta_start,
            self.beta_end,
            self.prediction_type,
        ))
    }

    /// The inference timesteps of `n_steps` steps (strictly decreasing), as [`Scheduler::timesteps`] will hold them.
    ///
    /// # Errors
    /// [`SchedulerError::InferenceSteps`] unless `1 <= n_steps <= num_train_timesteps`; `InvalidConfig` naming
    /// `steps_offset` when it pushes a `leading` timestep to T or beyond.
    pub fn timesteps(&self, n_steps: usize) -> Result<Vec<usize>> {
        let n_train = self.num_train_timesteps;
        if n_steps == 0 || n_steps > n_train {
            return Err(SchedulerError::InferenceSteps { n_steps, num_train_timesteps: n_train });
        }
        let timesteps = inference_timesteps(self.timestep_spacing, n_train, n_steps, self.steps_offset);
        if timesteps[0] >= n_train {
            let reason = format!(
                "with {n_steps} leading steps the first timestep is {} >= num_train_timesteps = {n_train}",
                timesteps[0]
            );
            return Err(invalid("steps_offset", self.steps_offset, reason));
        }
        Ok(timesteps)
    }

    /// The sampler named by `kind` with `n_steps` inference steps.
    pub fn build(&self, n_steps: usize) -> Result<Box<dyn Scheduler>> {
        Ok(match self.kind {
            SchedulerKind::Ddpm => Box::new(DdpmScheduler::new(self, n_steps)?),
            SchedulerKind::Ddim => Box::new(DdimScheduler::new(self, n_steps)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_names_are_typed_errors_naming_the_field() {
        let err = "sigmoid".parse::<BetaSchedule>().unwrap_err();
        assert!(matches!(err, SchedulerError::UnknownValue { field: "beta_schedule", .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "unknown beta_schedule `sigmoid`; expected one of: linear, scaled_linear, squaredcos_cap_v2"
        );
        let err = serde_json::from_str::<SchedulerConfig>(r#"{"prediction_type": "x0"}"#).unwrap_err();
        assert!(err.to_string().contains("unknown prediction_type `x0`"), "{err}");
        let err = serde_json::from_str::<SchedulerConfig>(r#"{"_class_name": "PNDMScheduler"}"#).unwrap_err();
        assert!(err.to_string().contains("expected one of: DDPMScheduler, DDIMScheduler"), "{err}");
    }

    #[test]
    fn serde_round_trip_uses_diffusers_names() {
        let cfg = SchedulerConfig {
            kind: SchedulerKind::Ddim,
            beta_schedule: BetaSchedule::SquaredcosCapV2,
            prediction_type: PredictionType::VPrediction,
            timestep_spacing: TimestepSpacing::Trailing,
            eta: 0.3,
            ..Default::default()
        };
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(json["_class_name"], "DDIMScheduler");
        assert_eq!(json["beta_schedule"], "squaredcos_cap_v2");
        assert_eq!(json["prediction_type"], "v_prediction");
        assert_eq!(json["timestep_spacing"], "trailing");
        assert_eq!(serde_json::from_value::<SchedulerConfig>(json).unwrap(), cfg);
        assert_eq!(serde_json::from_str::<SchedulerConfig>("{}").unwrap(), SchedulerConfig::default());
    }

    #[test]
    fn bad_values_are_refused_naming_the_field() {
        let field = |cfg: SchedulerConfig| match cfg.validate().unwrap_err() {
            SchedulerError::InvalidConfig { field, .. } | SchedulerError::Unsupported { field, .. } => field,
            other => panic!("unexpected {other}"),
        };
        assert_eq!(field(SchedulerConfig { num_train_timesteps: 0, ..Default::default() }), "num_train_timesteps");
        assert_eq!(field(SchedulerConfig { beta_end: 1.0, ..Default::default() }), "beta_end");
        assert_eq!(field(SchedulerConfig { beta_start: -0.1, ..Default::default() }), "beta_start");
        assert_eq!(field(SchedulerConfig { clip_sample_range: 0.0, ..Default::default() }), "clip_sample_range");
        assert_eq!(field(SchedulerConfig { eta: 0.5, ..Default::default() }), "eta");
        let ddim = SchedulerConfig { kind: SchedulerKind::Ddim, ..Default::default() };
        assert_eq!(field(SchedulerConfig { eta: 1.5, ..ddim.clone() }), "eta");
        assert_eq!(field(SchedulerConfig { thresholding: true, ..Default::default() }), "thresholding");
        assert_eq!(
            field(SchedulerConfig { rescale_betas_zero_snr: true, ..Default::default() }),
            "rescale_betas_zero_snr"
        );
        assert_eq!(field(SchedulerConfig { trained_betas: Some(vec![0.1]), ..Default::default() }), "trained_betas");
        // The cosine schedule has no beta range: the range fields are not checked.
        let cosine = SchedulerConfig { beta_schedule: BetaSchedule::SquaredcosCapV2, beta_end: 2.0, ..ddim };
        cosine.validate().unwrap();
    }

    #[test]
    fn inference_step_counts_are_checked() {
        let cfg = SchedulerConfig::default();
        for n in [0, 1001] {
            let err = cfg.build(n).err().unwrap();
            assert!(matches!(err, SchedulerError::InferenceSteps { n_steps, .. } if n_steps == n), "{err}");
        }
        let offset = SchedulerConfig { steps_offset: 1, ..cfg };
        assert!(matches!(
            offset.build(1000).err().unwrap(),
            SchedulerError::InvalidConfig { field: "steps_offset", .. }
        ));
        assert_eq!(offset.timesteps(999).unwrap()[0], 999);
    }
}
