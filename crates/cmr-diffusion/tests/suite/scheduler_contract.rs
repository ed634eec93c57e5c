//! The contract every scheduler keeps (issue 6, item 1), run over DDPM (`fixed_small`, `fixed_large`) and DDIM
//! (η = 0, 0.5) × every beta schedule × prediction type × timestep spacing × a few step counts. The values themselves
//! are checked against diffusers in `schedulers.rs`; this file checks the properties that make a scheduler usable.

use candle_core::{DType, Device, Tensor};
use cmr_diffusion::schedulers::{
    BetaSchedule, NoiseSchedule, PredictionType, Scheduler, SchedulerConfig, SchedulerError, SchedulerKind,
    TimestepSpacing, VarianceType,
};

const SCHEDULES: [BetaSchedule; 3] = [BetaSchedule::Linear, BetaSchedule::ScaledLinear, BetaSchedule::SquaredcosCapV2];
const PREDICTIONS: [PredictionType; 3] = [PredictionType::Epsilon, PredictionType::VPrediction, PredictionType::Sample];
const SPACINGS: [TimestepSpacing; 3] = [TimestepSpacing::Leading, TimestepSpacing::Trailing, TimestepSpacing::Linspace];
const STEP_COUNTS: [usize; 4] = [1, 7, 10, 50];

/// The sampler variants: DDPM with both variances, DDIM deterministic and stochastic.
fn variants() -> Vec<SchedulerConfig> {
    let ddpm = SchedulerConfig { kind: SchedulerKind::Ddpm, ..Default::default() };
    let ddim = SchedulerConfig { kind: SchedulerKind::Ddim, ..Default::default() };
    vec![
        ddpm.clone(),
        SchedulerConfig { variance_type: VarianceType::FixedLarge, ..ddpm },
        ddim.clone(),
        SchedulerConfig { eta: 0.5, ..ddim },
    ]
}

/// Every combination, with clipping off (the exact-recovery checks need x̂_0 unclipped).
fn configs() -> Vec<SchedulerConfig> {
    let mut out = Vec::new();
    for variant in variants() {
        for beta_schedule in SCHEDULES {
            for prediction_type in PREDICTIONS {
                for timestep_spacing in SPACINGS {
                    let (beta_start, beta_end) =
                        if beta_schedule == BetaSchedule::ScaledLinear { (0.00085, 0.012) } else { (0.0001, 0.02) };
                    out.push(SchedulerConfig {
                        beta_schedule,
                        beta_start,
                        beta_end,
                        prediction_type,
                        timestep_spacing,
                        clip_sample: false,
                        ..variant.clone()
                    });
                }
            }
        }
    }
    out
}

/// A fixed pseudo-random tensor (values in about ±1.7), shaped as the samples of these tests.
fn fixed(seed: u64) -> Tensor {
    let data: Vec<f64> = (0..24).map(|i| ((i as f64 + 1.0) * (seed as f64 + 0.37) * 12.9898).sin() * 1.7).collect();
    Tensor::from_vec(data, (2, 3, 2, 2), &Device::Cpu).unwrap()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).unwrap().abs().unwrap().max_all().unwrap().to_dtype(DType::F64).unwrap().to_scalar::<f64>().unwrap()
}

#[test]
fn schedules_are_proper() {
    for beta_schedule in SCHEDULES {
        for num_train_timesteps in [1000, 50, 1] {
            let cfg = SchedulerConfig { beta_schedule, num_train_timesteps, ..Default::default() };
            let schedule: NoiseSchedule = cfg.noise_schedule().unwrap();
            assert_eq!(schedule.len(), num_train_timesteps);
            // All betas in (0, 1): candle-transformers' cosine schedule gets 999 of 1000 betas = 0 here.
            assert!(schedule.betas().iter().all(|&b| b > 0.0 && b < 1.0), "{beta_schedule} T = {num_train_timesteps}");
            let ac = schedule.alphas_cumprod();
            assert!(ac.iter().all(|&a| a > 0.0 && a < 1.0), "{beta_schedule}: ᾱ in (0, 1)");
            assert!(ac.windows(2).all(|w| w[1] < w[0]), "{beta_schedule}: ᾱ strictly decreasing");
        }
    }
}

#[test]
fn timesteps_are_strictly_decreasing_and_in_range() {
    for cfg in configs() {
        for n in STEP_COUNTS {
            let scheduler = cfg.build(n).unwrap();
            let ts = scheduler.timesteps();
            assert_eq!(ts.len(), n, "{cfg:?}");
            assert!(ts.windows(2).all(|w| w[1] < w[0]), "{:?} n = {n}: {ts:?}", cfg.timestep_spacing);
            assert!(ts[0] < cfg.num_train_timesteps);
        }
    }
}

#[test]
fn add_noise_at_t0_is_close_to_the_clean_sample() {
    let (x0, noise) = (fixed(1), fixed(2));
    for cfg in configs() {
        let schedule = cfg.noise_schedule().unwrap();
        let noisy = schedule.add_noise(&x0, &noise, &[0, 0]).unwrap();
        // √(1 − ᾱ_0) = √β_0 ≤ 0.03 for these schedules, |noise| ≤ 1.7.
        assert!(max_abs_diff(&noisy, &x0) < 0.06, "{:?}", cfg.beta_schedule);
        // and at T − 1 close to pure noise (√ᾱ_{T−1} ≤ 0.07).
        let noisy = schedule.add_noise(&x0, &noise, &[999, 999]).unwrap();
        assert!(max_abs_diff(&noisy, &noise) < 0.15, "{:?}", cfg.beta_schedule);
    }
}

/// With the exact model output (the training target at x_t = add_noise(x_0, ε, t)), every step predicts x̂_0 = x_0;
/// DDIM at η = 0 then lands exactly on the same trajectory, x_{t'} = add_noise(x_0, ε, t'), reaching x_0 itself after
/// its last step; DDPM's step at t = 0 returns x̂_0.
#[test]
fn exact_model_output_recovers_the_clean_sample() {
    let (x0, eps) = (fixed(3), fixed(4));
    for cfg in configs() {
        for n in STEP_COUNTS {
            let scheduler = cfg.build(n).unwrap();
            let schedule = scheduler.schedule();
            let ratio = cfg.num_train_timesteps / n;
            for &t in scheduler.timesteps() {
                let ts = [t, t];
                let x_t = scheduler.add_noise(&x0, &eps, &ts).unwrap();
                let target = schedule.target(&x0, &eps, &ts).unwrap();
                let z = fixed(5);
                let out = scheduler.step(&target, t, &x_t, scheduler.needs_noise(t).then_some(&z)).unwrap();
                // ε-prediction divides by √ᾱ_t, which is ~1e-5 at the end of the cosine schedule.
                let tol = 1e-9 / schedule.alphas_cumprod()[t].sqrt();
                let what = format!("{:?} {:?} {:?} n = {n} t = {t}", cfg.kind, cfg.beta_schedule, cfg.prediction_type);
                assert!(max_abs_diff(&out.pred_original_sample, &x0) < tol, "{what}: x̂_0");
                if cfg.kind == SchedulerKind::Ddim && cfg.eta == 0.0 {
                    let expected = match t.checked_sub(ratio) {
                        Some(prev) => scheduler.add_noise(&x0, &eps, &[prev, prev]).unwrap(),
                        None => x0.clone(),
                    };
                    assert!(max_abs_diff(&out.prev_sample, &expected) < tol, "{what}: on the trajectory");
                }
                if cfg.kind == SchedulerKind::Ddpm && t == 0 {
                    assert!(max_abs_diff(&out.prev_sample, &x0) < 1e-12, "{what}: last DDPM step");
                }
            }
        }
    }
}

/// Stochastic steps need their noise and add it linearly (prev = mean + σ·z); deterministic ones need none.
#[test]
fn noise_is_the_callers() {
    let (x, out) = (fixed(6), fixed(7));
    let (z, zero) = (fixed(8), fixed(8).zeros_like().unwrap());
    for cfg in configs() {
        let scheduler = cfg.build(10).unwrap();
        for &t in scheduler.timesteps() {
            let stochastic = match cfg.kind {
                SchedulerKind::Ddpm => t > 0,
                SchedulerKind::Ddim => cfg.eta > 0.0,
            };
            assert_eq!(scheduler.needs_noise(t), stochastic);
            if stochastic {
                let err = scheduler.step(&out, t, &x, None).unwrap_err();
                assert!(matches!(err, SchedulerError::NoiseRequired { timestep, .. } if timestep == t), "{err}");
                let mean = scheduler.step(&out, t, &x, Some(&zero)).unwrap().prev_sample;
                let with_z = scheduler.step(&out, t, &x, Some(&z)).unwrap().prev_sample;
                let twice = scheduler.step(&out, t, &x, Some(&(&z * 2.0).unwrap())).unwrap().prev_sample;
                // σ·z is linear in z (up to rounding relative to the mean, which is large where x̂_0 divides by a
                // small √ᾱ_t), and nonzero but on the last step (where σ is 0 or, for DDPM's floor, 1e-10).
                let sigma_z = (&with_z - &mean).unwrap();
                let scale = max_abs_diff(&mean, &zero).max(1.0);
                if t == scheduler.timesteps()[0] {
                    assert!(max_abs_diff(&with_z, &mean) > 1e-3, "{cfg:?} t = {t}");
                }
                assert!(max_abs_diff(&(&twice - &mean).unwrap(), &(&sigma_z * 2.0).unwrap()) < 1e-12 * scale);
            } else {
                let a = scheduler.step(&out, t, &x, None).unwrap().prev_sample;
                let b = scheduler.step(&out, t, &x, Some(&z)).unwrap().prev_sample;
                assert_eq!(max_abs_diff(&a, &b), 0.0, "noise is ignored where not needed");
            }
        }
    }
}

#[test]
fn f32_tensors_stay_f32_and_agree_with_f64() {
    let (x, out, z) = (fixed(9), fixed(10), fixed(11));
    let f32 = |t: &Tensor| t.to_dtype(DType::F32).unwrap();
    for cfg in variants() {
        let scheduler = cfg.build(10).unwrap();
        for &t in scheduler.timesteps() {
            let noise = scheduler.needs_noise(t);
            let a = scheduler.step(&out, t, &x, noise.then_some(&z)).unwrap();
            let (z32, out32, x32) = (f32(&z), f32(&out), f32(&x));
            let b = scheduler.step(&out32, t, &x32, noise.then_some(&z32)).unwrap();
            assert_eq!(b.prev_sample.dtype(), DType::F32);
            assert!(max_abs_diff(&a.prev_sample, &b.prev_sample.to_dtype(DType::F64).unwrap()) < 1e-5);
        }
    }
}

#[test]
fn misuse_is_a_typed_error() {
    let x = fixed(12);
    let ddpm = SchedulerConfig::default().build(10).unwrap();
    let err = ddpm.step(&x, 901, &x, Some(&x)).unwrap_err();
    assert!(matches!(err, SchedulerError::UnknownTimestep { timestep: 901, n_steps: 10 }), "{err}");
    let ddim = SchedulerConfig { kind: SchedulerKind::Ddim, ..Default::default() }.build(10).unwrap();
    let err = ddim.step(&x, 1000, &x, None).unwrap_err();
    assert!(matches!(err, SchedulerError::TimestepOutOfRange { timestep: 1000, .. }), "{err}");
    let err = ddim.add_noise(&x, &x, &[5]).unwrap_err();
    assert!(matches!(err, SchedulerError::TimestepCount { batch: 2, got: 1 }), "{err}");
    let err = ddim.add_noise(&x, &x, &[5, 1000]).unwrap_err();
    assert!(matches!(err, SchedulerError::TimestepOutOfRange { timestep: 1000, .. }), "{err}");
    // A noise tensor of the wrong shape is refused, not broadcast.
    let small = Tensor::zeros((2, 3, 1, 1), DType::F64, &Device::Cpu).unwrap();
    assert!(matches!(ddpm.step(&x, 900, &x, Some(&small)).unwrap_err(), SchedulerError::Candle(_)));
}

#[test]
fn training_and_sampling_share_one_config() {
    // A model trained with DDPM noise is sampled with DDIM built from the same config, and vice versa.
    let train = SchedulerConfig { prediction_type: PredictionType::VPrediction, ..Default::default() };
    let ddim = cmr_diffusion::schedulers::DdimScheduler::new(&train, 20).unwrap();
    assert_eq!(ddim.config().kind, SchedulerKind::Ddim);
    assert_eq!(ddim.schedule(), &train.noise_schedule().unwrap());
    let sample = SchedulerConfig { kind: SchedulerKind::Ddim, ..train.clone() };
    let ddpm = cmr_diffusion::schedulers::DdpmScheduler::new(&sample, 1000).unwrap();
    assert_eq!(ddpm.config().kind, SchedulerKind::Ddpm);
    assert_eq!(ddpm.timesteps().len(), 1000);
    assert_eq!(ddpm.schedule().prediction_type(), PredictionType::VPrediction);
}
