//! Shared fixtures: a simulated cohort with a known disparity, written as prediction files.

use std::path::{Path, PathBuf};

use cmr_core::CohortRow;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// One simulated subject.
#[derive(Debug, Clone)]
pub struct Subject {
    pub id: String,
    pub sex: &'static str,
    pub age_band: &'static str,
    pub site: &'static str,
    pub y_true: bool,
    /// The baseline: sensitivity 0.6 for women, 0.85 for men; specificity 0.8.
    pub baseline: bool,
    /// The augmented model: sensitivity 0.85 for everyone; specificity 0.8.
    pub augmented: bool,
    pub score: f64,
}

/// `n` subjects (40% women, prevalence 0.45) from `seed`.
pub fn simulate(n: usize, seed: u64) -> Vec<Subject> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let sex = if rng.random_bool(0.4) { "F" } else { "M" };
            let age_band = ["30s", "50s", "60s", "70s"][rng.random_range(0..4)];
            let site = ["A", "B", "C"][rng.random_range(0..3)];
            let y_true = rng.random_bool(0.45);
            let mut predict = |sensitivity: f64| {
                let right = rng.random_bool(if y_true { sensitivity } else { 0.8 });
                right == y_true
            };
            let baseline = predict(if sex == "F" { 0.6 } else { 0.85 });
            let augmented = predict(0.85);
            let score = (if baseline { 0.65 } else { 0.35 } + rng.random_range(-0.3..0.3f64)).clamp(0.0, 1.0);
            Subject { id: format!("sim:{i:04}"), sex, age_band, site, y_true, baseline, augmented, score }
        })
        .collect()
}

/// Writes `subjects` as a predictions CSV of the baseline (`augmented = false`) or the augmented model, with the
/// attribute columns `sex`, `age_band`, `site` when `attributes`.
pub fn write_predictions(path: &Path, subjects: &[Subject], augmented: bool, attributes: bool) -> PathBuf {
    let mut text = String::from("subject_id,y_true,y_pred,y_score");
    if attributes {
        text.push_str(",sex,age_band,site");
    }
    text.push('\n');
    for s in subjects {
        let pred = if augmented { s.augmented } else { s.baseline };
        text.push_str(&format!("{},{},{},{}", s.id, u8::from(s.y_true), u8::from(pred), s.score));
        if attributes {
            text.push_str(&format!(",{},{},{}", s.sex, s.age_band, s.site));
        }
        text.push('\n');
    }
    std::fs::write(path, text).unwrap();
    path.to_path_buf()
}

/// Names of the entries of `dir`, sorted.
pub fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// A cohort row of subject `id` with sex `sex`, site `acdc-site` and age band `60s`.
pub fn cohort_row(id: &str, sex: &str) -> CohortRow {
    CohortRow {
        subject_id: id.into(),
        dataset: "acdc".into(),
        site: "acdc-site".into(),
        vendor: "Siemens".into(),
        sex: Some(sex.parse().unwrap()),
        age: Some(64.0),
        height_cm: None,
        weight_kg: None,
        bmi: None,
        age_band: Some("60s".into()),
        bmi_class: None,
        diagnosis: "NOR".into(),
        label: 0,
        split: cmr_core::Split::Test,
        source: cmr_core::Source::Real,
        parent_subject: None,
        generator_sha256: None,
        seed: None,
        prompt: String::new(),
        tensor_path: format!("tensors/{id}.safetensors"),
        tensor_sha256: "00".repeat(32),
    }
}
