//! Cohort folders written by the tests: rows with only what the federated stage reads, and their tensors.

use std::path::Path;

use cmr_core::{CohortRow, Source, Split};
use cmr_io::store::{write_tensor, SubjectTensor};

/// A real subject `acdc:{id}` of `site` with `diagnosis` in `split` (label: disease vs NOR), tensor at
/// `tensors/{id}.safetensors`.
pub fn row(id: &str, site: &str, diagnosis: &str, split: Split) -> CohortRow {
    CohortRow {
        subject_id: format!("acdc:{id}"),
        dataset: "acdc".into(),
        site: site.into(),
        vendor: "Siemens".into(),
        sex: None,
        age: None,
        height_cm: None,
        weight_kg: None,
        bmi: None,
        age_band: None,
        bmi_class: None,
        diagnosis: diagnosis.into(),
        label: i32::from(diagnosis != "NOR"),
        split,
        source: Source::Real,
        parent_subject: None,
        generator_sha256: None,
        seed: None,
        prompt: String::new(),
        tensor_path: format!("tensors/{id}.safetensors"),
        tensor_sha256: String::new(),
    }
}

/// Writes a cohort folder of `rows`; row `k` gets the tensor `tensor(k, row)` (its sha256 filled in).
pub fn write_cohort(dir: &Path, rows: &[CohortRow], tensor: impl Fn(usize, &CohortRow) -> SubjectTensor) {
    std::fs::create_dir_all(dir.join("tensors")).unwrap();
    let rows: Vec<CohortRow> = rows
        .iter()
        .enumerate()
        .map(|(k, row)| {
            let sha = write_tensor(&dir.join(&row.tensor_path), &tensor(k, row)).unwrap();
            CohortRow { tensor_sha256: sha, ..row.clone() }
        })
        .collect();
    cmr_core::cohort::write(dir, &rows).unwrap();
}
