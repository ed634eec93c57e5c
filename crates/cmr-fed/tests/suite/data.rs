//! The classifier's data (issue 7, items 5 and 6): clients from a cohort and their bad input, shape priors,
//! augmentation, metrics and prediction files, the paired bootstrap of `fed compare`.

use std::path::Path;

use cmr_core::{CohortRow, Split, Task};
use cmr_fed::data::augment::Warp;
use cmr_fed::data::evaluation::{PREDICTIONS_CSV, THRESHOLD};
use cmr_fed::data::{
    evaluate, write_evaluation, Arm, AugmentConfig, Augmentation, Augmenter, ClassWeights, Clients, MeanSd,
    PairedBootstrap, Prediction, ShapePrior,
};
use cmr_io::store::SubjectTensor;
use ndarray::{s, Array4};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::fixtures::{self, row};

// ---------------------------------------------------------------------------------------------------------------
// fixtures

/// A subject tensor `[2, slices, 12, 12]` whose image encodes `seed` and whose mask has a ring of LV, MYO, RV.
fn tensor(slices: usize, seed: u32) -> SubjectTensor {
    let mask = Array4::from_shape_fn((2, slices, 12, 12), |(f, _, r, c)| {
        let d2 = (r as i32 - 6).pow(2) + (c as i32 - 6 + f as i32).pow(2);
        match d2 {
            0..=4 => 1,
            5..=9 => 2,
            _ if c < 3 && (3..9).contains(&r) => 3,
            _ => 0,
        }
    });
    let image = Array4::from_shape_fn((2, slices, 12, 12), |(f, s, r, c)| {
        ((seed as usize * 7 + f * 5 + s * 3 + r * 12 + c) % 97) as f32 / 96.0
    });
    SubjectTensor { image, mask, spacing_mm: [8.0, 1.5, 1.5], source_sha256: vec![] }
}

/// Writes a cohort folder of `rows`; subject `k` gets `tensor(slices(k), k)`.
fn write_cohort(dir: &Path, rows: &[CohortRow], slices: impl Fn(usize) -> usize) {
    fixtures::write_cohort(dir, rows, |k, _| tensor(slices(k), k as u32));
}

/// Two sites, listed out of order; `b` has a DCM subject that the HCM task excludes.
fn two_site_rows() -> Vec<CohortRow> {
    vec![
        row("b1", "siteB", "NOR", Split::Train),
        row("b2", "siteB", "HCM", Split::Train),
        row("b3", "siteB", "NOR", Split::Train),
        row("b4", "siteB", "DCM", Split::Train),
        row("b5", "siteB", "HCM", Split::Test),
        row("a1", "siteA", "HCM", Split::Train),
        row("a2", "siteA", "NOR", Split::Train),
        row("a3", "siteA", "NOR", Split::Val),
        row("a4", "siteA", "NOR", Split::Test),
    ]
}

fn load_error(rows: &[CohortRow], slices: impl Fn(usize) -> usize) -> String {
    let dir = tempfile::tempdir().unwrap();
    write_cohort(dir.path(), rows, slices);
    Clients::load(dir.path(), Task::Hcm).unwrap_err().to_string()
}

fn ids(examples: &[cmr_fed::data::Example]) -> Vec<&str> {
    examples.iter().map(|e| e.subject_id.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------------------------
// clients

#[test]
fn clients_are_sorted_sites_with_their_splits_and_the_task_decides_who_is_in() {
    let dir = tempfile::tempdir().unwrap();
    let rows = two_site_rows();
    write_cohort(dir.path(), &rows, |_| 3);
    let clients = Clients::load(dir.path(), Task::Hcm).unwrap();
    assert_eq!(clients.shape, [2, 3, 12, 12]);
    assert_eq!(clients.cohort, dir.path().join("cohort.parquet"));
    let sites: Vec<&str> = clients.clients.iter().map(|c| c.site.as_str()).collect();
    assert_eq!(sites, ["siteA", "siteB"]);
    let [a, b] = &clients.clients[..] else { panic!("two clients") };
    assert_eq!(
        (ids(&a.train), ids(&a.val), ids(&a.test)),
        (vec!["acdc:a1", "acdc:a2"], vec!["acdc:a3"], vec!["acdc:a4"])
    );
    assert_eq!(ids(&b.train), ["acdc:b1", "acdc:b2", "acdc:b3"], "DCM is not part of NOR vs HCM");
    assert_eq!(b.train.iter().map(|e| e.label).collect::<Vec<_>>(), [false, true, false]);
    assert_eq!(ids(b.split(Split::Test)), ["acdc:b5"]);
    // The tensors are the ones written (subject b2 is row 1 of the cohort).
    let written = tensor(3, 1);
    assert_eq!((&b.train[1].image, &b.train[1].mask), (&written.image, &written.mask));
    assert_eq!(b.train[1].site, "siteB");
    assert_eq!(clients.pooled(Split::Train).len(), 5);

    let disease = Clients::load(dir.path(), Task::Disease).unwrap();
    assert_eq!(ids(&disease.clients[1].train), ["acdc:b1", "acdc:b2", "acdc:b3", "acdc:b4"]);
    assert!(disease.clients[1].train[3].label, "DCM is a disease");
}

#[test]
fn class_weights_are_inverse_frequency_with_mean_one() {
    let dir = tempfile::tempdir().unwrap();
    write_cohort(dir.path(), &two_site_rows(), |_| 2);
    let clients = Clients::load(dir.path(), Task::Hcm).unwrap();
    // siteB trains on 2 NOR and 1 HCM: n / (2 · n_class) = 3/4 and 3/2.
    let w = clients.clients[1].class_weights();
    assert_eq!(w, ClassWeights { negative: 0.75, positive: 1.5 });
    let train = &clients.clients[1].train;
    let mean: f32 = train.iter().map(|e| w.weight(e.label)).sum::<f32>() / train.len() as f32;
    assert!((mean - 1.0).abs() < 1e-6, "{mean}");
    // Pooled: 3 NOR, 2 HCM.
    let pooled = clients.pooled_class_weights();
    assert!((pooled.negative - 5.0 / 6.0).abs() < 1e-6 && (pooled.positive - 1.25).abs() < 1e-6, "{pooled:?}");
    assert_eq!(ClassWeights::of(&train[..1]), ClassWeights { negative: 1.0, positive: 0.0 });
}

#[test]
fn a_site_without_train_subjects_is_an_error_naming_it() {
    let mut rows = two_site_rows();
    rows.push(row("c1", "siteC", "NOR", Split::Test));
    rows.push(row("c2", "siteC", "DCM", Split::Train));
    let err = load_error(&rows, |_| 2);
    assert!(err.contains("cohort.parquet") && err.contains("site `siteC`"), "{err}");
    assert!(err.contains("no train subjects for task `hcm`"), "{err}");
}

#[test]
fn a_site_missing_a_class_in_train_is_an_error_naming_site_and_label() {
    let mut rows = two_site_rows();
    rows[1].diagnosis = "NOR".into();
    let err = load_error(&rows, |_| 2);
    assert!(err.contains("cohort.parquet") && err.contains("site `siteB`"), "{err}");
    assert!(err.contains("no train subjects with label 1 for task `hcm`"), "{err}");
}

#[test]
fn subjects_of_different_shapes_are_an_error_naming_both() {
    let err = load_error(&two_site_rows(), |k| if k == 8 { 4 } else { 3 });
    assert!(err.contains("cohort.parquet") && err.contains("acdc:a4") && err.contains("[2, 4, 12, 12]"), "{err}");
    assert!(err.contains("acdc:a1") && err.contains("[2, 3, 12, 12]"), "{err}");
}

// ---------------------------------------------------------------------------------------------------------------
// shape priors

#[test]
fn shape_priors_mask_the_image_and_fragmented_channels_are_frame_major() {
    let t = tensor(2, 5);
    assert_eq!(ShapePrior::None.apply(&t.image, &t.mask), t.image);
    let heart = ShapePrior::Heart.apply(&t.image, &t.mask);
    assert_eq!(heart.shape(), t.image.shape());
    for ((&h, &v), &m) in heart.iter().zip(&t.image).zip(&t.mask) {
        assert_eq!(h, if m > 0 { v } else { 0.0 });
    }
    let fragmented = ShapePrior::Fragmented.apply(&t.image, &t.mask);
    assert_eq!(fragmented.shape(), [6, 2, 12, 12]);
    assert_eq!(ShapePrior::Fragmented.channels(), 6);
    for frame in 0..2 {
        for (k, label) in [1u8, 2, 3].into_iter().enumerate() {
            let channel = fragmented.slice(s![3 * frame + k, .., .., ..]);
            let expected = ndarray::Zip::from(t.image.slice(s![frame, .., .., ..]))
                .and(t.mask.slice(s![frame, .., .., ..]))
                .map_collect(|&v, &m| if m == label { v } else { 0.0 });
            assert_eq!(channel, expected, "frame {frame} label {label}");
            assert!(channel.iter().any(|&v| v > 0.0), "frame {frame} label {label} is not empty");
        }
        // The three structures together are the whole heart.
        let sum = &fragmented.slice(s![3 * frame, .., .., ..])
            + &fragmented.slice(s![3 * frame + 1, .., .., ..])
            + fragmented.slice(s![3 * frame + 2, .., .., ..]);
        assert_eq!(sum, heart.slice(s![frame, .., .., ..]));
    }
}

#[test]
fn shape_prior_and_augmentation_names_parse_and_unknown_ones_list_the_valid() {
    assert_eq!("fragmented".parse::<ShapePrior>().unwrap(), ShapePrior::Fragmented);
    let err = "organ".parse::<ShapePrior>().unwrap_err().to_string();
    assert!(
        err.contains("shape-prior") && err.contains("\"organ\"") && err.contains("none, heart, fragmented"),
        "{err}"
    );
    assert_eq!("both".parse::<Augmentation>().unwrap(), Augmentation::Both);
    let err = "color".parse::<Augmentation>().unwrap_err().to_string();
    assert!(err.contains("augment") && err.contains("none, shape, intensity, both"), "{err}");
}

// ---------------------------------------------------------------------------------------------------------------
// augmentation

fn zero_config() -> AugmentConfig {
    AugmentConfig {
        flip_probability: 0.0,
        max_rotation_deg: 0.0,
        max_scale: 0.0,
        max_translation: 0.0,
        elastic_control_points: 5,
        max_elastic_px: 0.0,
        bias_strength: 0.0,
        max_noise_std: 0.0,
        max_log_gamma: 0.0,
    }
}

fn augment(setup: Augmentation, config: AugmentConfig, t: &SubjectTensor, seed: u64) -> (Array4<f32>, Array4<u8>) {
    let augmenter = Augmenter::new(setup, config).unwrap();
    let (image, mask) = augmenter.apply(&t.image, Some(&t.mask), &mut ChaCha8Rng::seed_from_u64(seed));
    (image, mask.expect("mask passed"))
}

#[test]
fn no_augmentation_and_zero_magnitudes_are_the_identity() {
    let t = tensor(3, 2);
    for setup in Augmentation::ALL {
        let (image, mask) = augment(setup, zero_config(), &t, 9);
        assert_eq!((image, mask), (t.image.clone(), t.mask.clone()), "{setup}");
    }
    assert_eq!(augment(Augmentation::None, AugmentConfig::default(), &t, 9).0, t.image);
    assert_ne!(augment(Augmentation::Both, AugmentConfig::default(), &t, 9).0, t.image);
}

#[test]
fn flipping_twice_is_the_identity() {
    let t = tensor(2, 3);
    let warp = Warp::flip(12, 12, true, true);
    let once = warp.apply_image(&t.image);
    assert_eq!(once[[1, 0, 0, 0]], t.image[[1, 0, 11, 11]]);
    assert_ne!(once, t.image);
    assert_eq!(warp.apply_image(&once), t.image);
    assert_eq!(warp.apply_mask(&warp.apply_mask(&t.mask)), t.mask);
}

#[test]
fn the_same_seed_gives_the_same_augmentation_and_another_seed_another() {
    let t = tensor(3, 4);
    let a = augment(Augmentation::Both, AugmentConfig::default(), &t, 11);
    assert_eq!(a, augment(Augmentation::Both, AugmentConfig::default(), &t, 11));
    let b = augment(Augmentation::Both, AugmentConfig::default(), &t, 12);
    assert_ne!(a.0, b.0);
}

#[test]
fn image_and_mask_move_together_and_every_channel_and_slice_alike() {
    let t = tensor(3, 0);
    let heart = t.mask.mapv(|m| f32::from(u8::from(m > 0)));
    let strong = AugmentConfig { max_rotation_deg: 30.0, max_elastic_px: 3.0, ..AugmentConfig::default() };
    for seed in 0..8 {
        let augmenter = Augmenter::new(Augmentation::Shape, strong.clone()).unwrap();
        let (image, mask) = augmenter.apply(&heart, Some(&t.mask), &mut ChaCha8Rng::seed_from_u64(seed));
        let mask = mask.unwrap();
        let mut agree = 0;
        for (&v, &m) in image.iter().zip(&mask) {
            // Where bilinear interpolation saw only heart (or only background), nearest neighbour must agree.
            if v > 1.0 - 1e-5 {
                assert!(m > 0, "seed {seed}: inside the warped heart, the warped mask is background");
            }
            if v < 1e-5 {
                assert_eq!(m, 0, "seed {seed}: outside the warped heart, the warped mask is labelled");
            }
            agree += usize::from((v > 0.5) == (m > 0));
        }
        assert!(agree as f64 >= 0.95 * image.len() as f64, "seed {seed}: {agree} of {}", image.len());
        // Slices 0 and 1 of a frame were identical and must stay so (one in-plane transform per subject).
        assert_eq!(mask.slice(s![0, 0, .., ..]), mask.slice(s![0, 1, .., ..]), "seed {seed}");
        assert_ne!(mask, t.mask, "seed {seed}: the mask moved");
    }
}

#[test]
fn augmented_values_stay_in_the_unit_interval() {
    let t = tensor(3, 6);
    let strong =
        AugmentConfig { bias_strength: 1.0, max_noise_std: 0.3, max_log_gamma: 1.0, ..AugmentConfig::default() };
    for seed in 0..5 {
        let (image, _) = augment(Augmentation::Both, strong.clone(), &t, seed);
        assert!(image.iter().all(|v| (0.0..=1.0).contains(v)), "seed {seed}");
        assert!(image.iter().any(|&v| v == 1.0) || image.iter().any(|&v| v == 0.0), "seed {seed}: clamped");
    }
}

#[test]
fn bias_field_and_gamma_keep_the_background_zero_and_leave_the_mask() {
    let t = tensor(2, 1);
    let heart = ShapePrior::Heart.apply(&t.image, &t.mask);
    let config = AugmentConfig { max_noise_std: 0.0, bias_strength: 0.5, max_log_gamma: 0.5, ..zero_config() };
    for seed in 0..4 {
        let augmenter = Augmenter::new(Augmentation::Intensity, config.clone()).unwrap();
        let (image, mask) = augmenter.apply(&heart, Some(&t.mask), &mut ChaCha8Rng::seed_from_u64(seed));
        assert_eq!(mask.as_ref(), Some(&t.mask));
        for (&after, &before) in image.iter().zip(&heart) {
            if before == 0.0 {
                assert_eq!(after, 0.0, "seed {seed}");
            }
        }
        assert_ne!(image, heart, "seed {seed}: intensities changed");
    }
}

#[test]
fn unusable_magnitudes_are_errors_naming_the_field() {
    let bad = AugmentConfig { max_scale: 1.5, ..AugmentConfig::default() };
    let err = Augmenter::new(Augmentation::Shape, bad).unwrap_err().to_string();
    assert!(err.contains("augment.max_scale") && err.contains("1.5"), "{err}");
    let bad = AugmentConfig { max_noise_std: f64::NAN, ..AugmentConfig::default() };
    assert!(Augmenter::new(Augmentation::Both, bad).unwrap_err().to_string().contains("max_noise_std"));
    let bad = AugmentConfig { flip_probability: 2.0, ..AugmentConfig::default() };
    assert!(Augmenter::new(Augmentation::Both, bad).unwrap_err().to_string().contains("flip_probability"));
}

#[test]
fn examples_give_the_prior_input_with_and_without_augmentation() {
    let dir = tempfile::tempdir().unwrap();
    write_cohort(dir.path(), &two_site_rows(), |_| 2);
    let clients = Clients::load(dir.path(), Task::Hcm).unwrap();
    let example = &clients.clients[0].train[0];
    assert_eq!(example.input(ShapePrior::Fragmented).shape(), [6, 2, 12, 12]);
    let none = Augmenter::new(Augmentation::None, AugmentConfig::default()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    assert_eq!(example.augmented_input(ShapePrior::Heart, &none, &mut rng), example.input(ShapePrior::Heart));
    let shape = Augmenter::new(Augmentation::Shape, AugmentConfig::default()).unwrap();
    let augmented = example.augmented_input(ShapePrior::Heart, &shape, &mut rng);
    assert_eq!(augmented.shape(), [2, 2, 12, 12]);
    assert_ne!(augmented, example.input(ShapePrior::Heart));
}

// ---------------------------------------------------------------------------------------------------------------
// evaluation

fn prediction(id: &str, site: &str, y_true: bool, y_score: f64) -> Prediction {
    Prediction { subject_id: id.into(), site: site.into(), y_true, y_score }
}

/// Site `a`: TP, FN (score exactly 0.5 is negative), TN, FP. Site `b`: TN, TN (no positives).
fn predictions() -> Vec<Prediction> {
    vec![
        prediction("x:1", "a", true, 0.9),
        prediction("x:2", "a", true, THRESHOLD),
        prediction("x:3", "a", false, 0.1),
        prediction("x:4", "a", false, 0.6),
        prediction("x:5", "b", false, 0.2),
        prediction("x:6", "b", false, 0.4),
    ]
}

#[test]
fn metrics_per_client_and_pooled_are_hand_computable() {
    let e = evaluate(&predictions()).unwrap();
    let a = &e.clients["a"];
    assert_eq!((a.n, a.positives), (4, 2));
    assert_eq!((a.sensitivity, a.specificity, a.balanced_accuracy), (Some(0.5), Some(0.5), Some(0.5)));
    // AUC: 0.9 beats both negatives, 0.5 beats 0.1 only: 3 of 4 pairs.
    assert_eq!((a.auc, a.mcc), (Some(0.75), Some(0.0)));
    assert!(a.undefined.is_empty());
    let b = &e.clients["b"];
    assert_eq!((b.sensitivity, b.specificity, b.auc), (None, Some(1.0), None));
    assert_eq!(b.undefined["sensitivity"].to_string(), "no subjects with y_true = 1");
    // Pooled: TP 1, FN 1, TN 3, FP 1; AUC: 0.9 beats all 4 negatives, 0.5 beats 0.1, 0.2, 0.4: 7 of 8.
    let p = &e.pooled;
    assert_eq!((p.n, p.positives, p.sensitivity, p.specificity, p.auc), (6, 2, Some(0.5), Some(0.75), Some(0.875)));
    let mcc = (1.0 * 3.0 - 1.0 * 1.0) / (2.0f64 * 2.0 * 4.0 * 4.0).sqrt();
    assert!((p.mcc.unwrap() - mcc).abs() < 1e-12);
}

#[test]
fn predictions_csv_and_metrics_json_are_written_for_the_audit() {
    let dir = tempfile::tempdir().unwrap();
    let mut preds = predictions();
    preds[0].subject_id = "odd,\"id\"".into();
    let evaluation = write_evaluation(dir.path(), &preds).unwrap();
    let csv = std::fs::read_to_string(dir.path().join(PREDICTIONS_CSV)).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "subject_id,site,y_true,y_score,y_pred");
    assert_eq!(lines[1], "\"odd,\"\"id\"\"\",a,1,0.9,1");
    assert_eq!(lines[2], "x:2,a,1,0.5,0");
    assert_eq!(lines.len(), 7);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("metrics.json")).unwrap()).unwrap();
    assert_eq!(json["threshold"], 0.5);
    assert_eq!(json["pooled"]["auc"], 0.875);
    assert_eq!(json["clients"]["a"]["balanced_accuracy"], 0.5);
    assert!(json["clients"]["b"]["sensitivity"].is_null());
    assert_eq!(json["clients"]["b"]["undefined"]["auc"], "no subjects with y_true = 1");
    assert!(json["clients"]["a"].get("undefined").is_none());
    assert_eq!(serde_json::to_value(&evaluation).unwrap(), json);
    assert_eq!(cmr_testkit::files_under(dir.path()), ["metrics.json", "predictions.csv"]);
}

/// Makes valid predictions invalid.
type Spoil = fn(&mut Vec<Prediction>);

#[test]
fn bad_predictions_are_errors_and_write_nothing() {
    let cases: [(Spoil, &str); 3] = [
        (|p| p[3].subject_id = "x:1".into(), "subject `x:1` is predicted twice"),
        (|p| p[2].y_score = f64::NAN, "subject `x:3` has y_score NaN"),
        (|p| p.clear(), "no test subjects"),
    ];
    for (spoil, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let mut preds = predictions();
        spoil(&mut preds);
        let err = write_evaluation(dir.path(), &preds).unwrap_err().to_string();
        assert!(err.contains(PREDICTIONS_CSV) && err.contains(expected), "{err}");
        assert!(cmr_testkit::files_under(dir.path()).is_empty(), "{expected}");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// paired comparison

/// 40 subjects, half positive; the baseline gets subjects 0..`wrong_b` wrong, the candidate 0..`wrong_c`.
fn arm(wrong: usize) -> Vec<Prediction> {
    (0..40)
        .map(|k| {
            let y_true = k % 2 == 0;
            let correct = k >= wrong;
            prediction(&format!("x:{k}"), "a", y_true, if y_true == correct { 0.8 } else { 0.2 })
        })
        .collect()
}

#[test]
fn a_model_compared_with_itself_differs_by_zero() {
    let a = arm(6);
    let c = PairedBootstrap { replicates: 200, ..Default::default() }
        .compare(Arm { name: "a", predictions: &a }, Arm { name: "b", predictions: &a })
        .unwrap();
    assert_eq!((c.subjects, c.difference.value, c.p_value), (40, Some(0.0), Some(1.0)));
    assert_eq!((c.difference.ci_low, c.difference.ci_high), (Some(0.0), Some(0.0)));
    assert_eq!(c.baseline, Some(34.0 / 40.0));
}

#[test]
fn a_better_candidate_shows_a_positive_difference_with_a_small_p_value() {
    let (baseline, candidate) = (arm(14), arm(0));
    let settings = PairedBootstrap { replicates: 500, seed: 3, confidence: 0.95 };
    // The candidate is given in another order: pairing is by subject.
    let mut shuffled = candidate.clone();
    shuffled.reverse();
    let run = |s: &PairedBootstrap| {
        s.compare(Arm { name: "fedavg", predictions: &baseline }, Arm { name: "dual-lora", predictions: &shuffled })
            .unwrap()
    };
    let c = run(&settings);
    // Baseline: 7 of 20 positives and 7 of 20 negatives wrong → 0.65; candidate 1.0.
    assert_eq!((c.baseline, c.candidate), (Some(0.65), Some(1.0)));
    let d = &c.difference;
    assert!((d.value.unwrap() - 0.35).abs() < 1e-12);
    let (low, high) = (d.ci_low.unwrap(), d.ci_high.unwrap());
    assert!(0.0 < low && low < 0.35 && 0.35 < high && high <= 0.6, "[{low}, {high}]");
    assert_eq!(c.p_value, Some(0.0));
    assert_eq!(run(&settings), c, "same seed, same numbers");
    assert_ne!(run(&PairedBootstrap { seed: 4, ..settings }).difference, c.difference);
    // A worse candidate mirrors it.
    let worse = settings
        .compare(Arm { name: "dual-lora", predictions: &candidate }, Arm { name: "fedavg", predictions: &baseline })
        .unwrap();
    assert!((worse.difference.value.unwrap() + 0.35).abs() < 1e-12);
    assert_eq!(worse.p_value, Some(0.0));
}

#[test]
fn a_small_difference_is_not_significant() {
    let c = PairedBootstrap { replicates: 500, seed: 1, confidence: 0.95 }
        .compare(Arm { name: "a", predictions: &arm(6) }, Arm { name: "b", predictions: &arm(5) })
        .unwrap();
    let p = c.p_value.unwrap();
    assert!(p > 0.05 && p <= 1.0, "{p}");
    assert!(c.difference.ci_low.unwrap() <= 0.0 && c.difference.ci_high.unwrap() > 0.0);
}

#[test]
fn comparisons_need_the_same_subjects_with_the_same_labels() {
    let settings = PairedBootstrap::default();
    let base = arm(0);
    let mut missing = base.clone();
    missing.pop();
    let err = settings.compare(Arm { name: "base", predictions: &base }, Arm { name: "cand", predictions: &missing });
    let err = err.unwrap_err().to_string();
    assert!(err.contains("cand") && err.contains("`x:39` of base is missing"), "{err}");
    let mut extra = base.clone();
    extra.push(prediction("x:99", "a", true, 0.9));
    let err = settings.compare(Arm { name: "base", predictions: &base }, Arm { name: "cand", predictions: &extra });
    assert!(err.unwrap_err().to_string().contains("`x:99` is not among the subjects of base"));
    let mut relabelled = base.clone();
    relabelled[3].y_true = !relabelled[3].y_true;
    let err = settings
        .compare(Arm { name: "base", predictions: &base }, Arm { name: "cand", predictions: &relabelled })
        .unwrap_err()
        .to_string();
    assert!(err.contains("`x:3` has y_true 1 here but 0 in base"), "{err}");
}

#[test]
fn mean_and_sample_sd_over_seeds() {
    let m = MeanSd::of(&[0.7, 0.8, 0.9]).unwrap();
    assert!((m.mean - 0.8).abs() < 1e-12 && (m.sd.unwrap() - 0.1).abs() < 1e-12 && m.n == 3);
    assert_eq!(format!("{m:.2}"), "0.80 ± 0.10");
    let one = MeanSd::of(&[0.5]).unwrap();
    assert_eq!((one.sd, format!("{one}")), (None, "0.500".to_string()));
    assert_eq!(MeanSd::of(&[]), None);
}
