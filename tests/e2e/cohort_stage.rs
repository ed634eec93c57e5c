//! phantom → ingest → cohort summary → export, on 200 subjects per layout: the counts after ingest equal the exact
//! quotas of the scenario, computed independently from the scenario file by `cmr_phantom::quotas`.

use std::collections::BTreeMap;
use std::path::Path;

use cmr_core::{Dataset, Task};
use cmr_phantom::Scenario;

use crate::util::{files_under, Workspace};

fn metadata_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../metadata"))
}

fn counts(summary: &serde_json::Value, column: &str) -> BTreeMap<String, usize> {
    summary["counts"][column]
        .as_object()
        .unwrap_or_else(|| panic!("summary has no column {column}: {summary}"))
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap() as usize))
        .collect()
}

fn check_layout(layout: &str, dataset: Dataset) {
    const N: usize = 200;
    let ws = Workspace::new();
    let metadata = metadata_dir().to_str().unwrap();
    let report: serde_json::Value = serde_json::from_str(&ws.ok(&[
        "phantom",
        "--out",
        "phantom",
        "--layout",
        layout,
        "--subjects",
        &N.to_string(),
        "--scenario",
        "vendor-shift",
        "--seed",
        "7",
        "--metadata",
        metadata,
        "--json",
    ]))
    .unwrap();
    ws.ok(&[
        "ingest",
        "--dataset",
        dataset.name(),
        "--root",
        "phantom",
        "--out",
        "cohort",
        "--task",
        "disease",
        "--seed",
        "3",
    ]);
    let summary: serde_json::Value = serde_json::from_str(&ws.ok(&["cohort", "summary", "cohort", "--json"])).unwrap();

    // Expected counts, from the scenario file alone.
    let quotas = cmr_phantom::quotas(&Scenario::load("vendor-shift", metadata_dir()).unwrap(), N);
    assert_eq!(quotas.total(), N);
    assert_eq!(summary["subjects"], N);
    let site_of_vendor: BTreeMap<String, String> = report["subjects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["vendor"].as_str().unwrap().to_string(), s["site"].as_str().unwrap().to_string()))
        .collect();
    // ACDC's Info.cfg `Site` is kept as written; M&Ms-1 `Centre` values become `mnms1-centre{N}`.
    let cohort_site = |site: &str| match dataset {
        Dataset::Mnms1 => cmr_io::adapters::site_name(dataset.name(), site),
        _ => site.to_string(),
    };
    let expected_sites: BTreeMap<String, usize> =
        quotas.by_vendor().into_iter().map(|(vendor, n)| (cohort_site(&site_of_vendor[&vendor]), n)).collect();
    assert_eq!(counts(&summary, "site"), expected_sites);
    let mut expected_labels = BTreeMap::new();
    for (diagnosis, n) in quotas.by_diagnosis() {
        *expected_labels.entry(Task::Disease.label(&diagnosis).unwrap().to_string()).or_insert(0) += n;
    }
    assert_eq!(counts(&summary, "label"), expected_labels);
    assert_eq!(counts(&summary, "sex"), quotas.by_sex());
    assert_eq!(counts(&summary, "source"), BTreeMap::from([("real".to_string(), N)]));
    // Attributes are complete, so every subject has an age band and a BMI class.
    assert!(!counts(&summary, "age_band").contains_key(cmr_core::summary::MISSING));
    assert!(!counts(&summary, "bmi_class").contains_key(cmr_core::summary::MISSING));
    // Splits are ~70/15/15 of each (site, label) stratum.
    let splits = counts(&summary, "split");
    assert!((120..=160).contains(&splits["train"]), "{splits:?}");

    // The hcm task keeps exactly the NOR and HCM subjects.
    ws.ok(&["ingest", "--dataset", dataset.name(), "--root", "phantom", "--out", "cohort-hcm"]);
    let hcm: serde_json::Value = serde_json::from_str(&ws.ok(&["cohort", "summary", "cohort-hcm", "--json"])).unwrap();
    let by_diagnosis = quotas.by_diagnosis();
    let nor_hcm = by_diagnosis.get("NOR").copied().unwrap_or(0) + by_diagnosis.get("HCM").copied().unwrap_or(0);
    assert_eq!(hcm["subjects"], nor_hcm);

    // Export one subject: NIfTI image + mask for ED and ES with the tensor's spacing, and a PNG preview.
    let rows = cmr_core::cohort::read(&ws.path("cohort")).unwrap();
    let subject = &rows[0].subject_id;
    ws.ok(&["export", "--cohort", "cohort", "--subject", subject, "--out", "export"]);
    let exported = files_under(&ws.path("export"));
    assert!(exported.iter().any(|f| f.ends_with(".png")), "{exported:?}");
    let tensor = cmr_io::store::read_tensor(&ws.path("cohort").join(&rows[0].tensor_path)).unwrap();
    let nifti: Vec<_> = exported.iter().filter(|f| f.ends_with(".nii.gz")).collect();
    assert!(nifti.len() >= 2, "{exported:?}");
    for file in nifti {
        let volume = cmr_io::nifti::read_volume(&ws.path("export").join(file)).unwrap();
        let [_, s, h, w] = tensor.image.shape().try_into().unwrap();
        assert_eq!(&volume.data.shape()[..3], &[h, w, s], "{file}: axes x=row, y=col, z=slice");
        let (col, row) = (
            volume.affine[0][1].hypot(volume.affine[1][1]).hypot(volume.affine[2][1]),
            volume.affine[0][0].hypot(volume.affine[1][0]).hypot(volume.affine[2][0]),
        );
        assert!(
            (row - tensor.spacing_mm[1]).abs() < 1e-6 && (col - tensor.spacing_mm[2]).abs() < 1e-6,
            "{file}: {:?}",
            volume.affine
        );
    }
}

#[test]
fn acdc_layout_counts_match_the_scenario() {
    check_layout("acdc", Dataset::Acdc);
}

#[test]
fn mnms1_layout_counts_match_the_scenario() {
    check_layout("mnms1", Dataset::Mnms1);
}

#[test]
fn same_seed_gives_byte_identical_cohorts() {
    let ws = Workspace::new();
    ws.ok(&["phantom", "--out", "p", "--layout", "mnms1", "--subjects", "6", "--seed", "11"]);
    for out in ["a", "b"] {
        ws.ok(&["ingest", "--dataset", "mnms1", "--root", "p", "--out", out, "--task", "disease", "--seed", "5"]);
    }
    let manifest = |dir: &str| std::fs::read_to_string(ws.path(dir).join("manifest.json")).unwrap();
    assert_eq!(manifest("a"), manifest("b"));
    assert!(manifest("a").contains("safetensors"));
}
