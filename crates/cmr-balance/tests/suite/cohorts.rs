//! Cohort folders for the tests (and the benchmark, which includes this file): rows built from a few attributes,
//! random cohorts, and folders with fake tensor files and a manifest.

#![allow(dead_code)] // the benchmark uses a part of this module

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use cmr_core::manifest::{sha256_hex, Manifest};
use cmr_core::subject::RawAttributes;
use cmr_core::{AttributeBins, CohortRow, Sex, Source, Split};
use rand::{Rng, SeedableRng};

/// A real subject `{site}:{id}` with derived bins and prompt; its tensor is `tensors/{site}_{id}.safetensors`.
pub fn row(id: &str, site: &str, sex: Option<Sex>, age: f64, bmi: f64, label: i32, split: Split) -> CohortRow {
    let diagnosis = if label == 1 { "HCM" } else { "NOR" };
    let raw = RawAttributes { sex, age: Some(age), bmi: Some(bmi), ..RawAttributes::default() };
    // Parsed once: a million-row benchmark cohort would otherwise spend its setup parsing the attributes TOML.
    static BINS: OnceLock<AttributeBins> = OnceLock::new();
    let derived = raw.derive(BINS.get_or_init(AttributeBins::default), diagnosis);
    let subject_id = format!("{site}:{id}");
    CohortRow {
        tensor_path: format!("tensors/{site}_{id}.safetensors"),
        tensor_sha256: sha256_hex(subject_id.as_bytes()),
        subject_id,
        dataset: site.into(),
        site: site.into(),
        vendor: "Siemens".into(),
        sex,
        age: Some(age),
        height_cm: None,
        weight_kg: None,
        bmi: derived.bmi,
        age_band: derived.age_band,
        bmi_class: derived.bmi_class,
        diagnosis: diagnosis.into(),
        label,
        split,
        source: Source::Real,
        parent_subject: None,
        generator_sha256: None,
        seed: None,
        prompt: derived.prompt,
    }
}

/// The same subject, made synthetic from `parent`.
pub fn synthetic(mut r: CohortRow, parent: &str) -> CohortRow {
    r.source = Source::Synthetic;
    r.parent_subject = Some(parent.into());
    r.generator_sha256 = Some("0".repeat(64));
    r.seed = Some(1);
    r
}

/// The hand-computed cohort of the report and plan tests (counts in `report.rs`).
pub fn hand() -> Vec<CohortRow> {
    use Split::*;
    let (f, m) = (Some(Sex::F), Some(Sex::M));
    vec![
        row("p1", "a", f, 65.0, 22.0, 1, Train),
        row("p2", "a", f, 67.0, 23.0, 1, Train),
        row("p3", "a", f, 45.0, 31.0, 0, Train),
        row("p4", "b", m, 72.0, 27.0, 1, Train),
        synthetic(row("s5", "b", m, 75.0, 28.0, 1, Train), "b:p4"),
        row("p6", "b", m, 55.0, 24.0, 0, Train),
        row("p7", "b", m, 58.0, 26.0, 0, Train),
        row("p8", "a", f, 62.0, 21.0, 1, Val),
        row("p9", "b", m, 30.0, 19.0, 0, Test),
    ]
}

/// A random cohort: 3 sites, sex 55 % F, ages 18–90, BMI 16–40, label 1 for ~30 %, splits ~70/15/15, ~5 % of
/// the train rows synthetic.
pub fn random(n: usize, seed: u64) -> Vec<CohortRow> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n)
        .map(|i| {
            let site = ["a", "b", "c"][rng.random_range(0..3)];
            let sex = if rng.random_bool(0.55) { Sex::F } else { Sex::M };
            let age = (rng.random_range(18.0..90.0_f64) * 10.0).round() / 10.0;
            let bmi = (rng.random_range(16.0..40.0_f64) * 10.0).round() / 10.0;
            let label = i32::from(rng.random_bool(0.3));
            let split = match rng.random_range(0..100) {
                0..70 => Split::Train,
                70..85 => Split::Val,
                _ => Split::Test,
            };
            let r = row(&format!("s{i:07}"), site, Some(sex), age, bmi, label, split);
            if split == Split::Train && rng.random_bool(0.05) {
                synthetic(r, "a:s0000000")
            } else {
                r
            }
        })
        .collect()
}

/// Writes `rows` as the cohort folder `dir` (table only).
pub fn write_table(dir: &Path, rows: &[CohortRow]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    cmr_core::cohort::write(dir, rows).unwrap();
    dir.to_path_buf()
}

/// Writes `rows` as a complete cohort folder: table, one fake tensor per row (its bytes are the subject id, matching
/// `tensor_sha256`) and a manifest.
pub fn write_folder(dir: &Path, rows: &[CohortRow]) -> PathBuf {
    std::fs::create_dir_all(dir.join("tensors")).unwrap();
    for r in rows {
        std::fs::write(dir.join(&r.tensor_path), r.subject_id.as_bytes()).unwrap();
    }
    write_table(dir, rows);
    Manifest::build(dir).unwrap().write(dir).unwrap();
    dir.to_path_buf()
}
