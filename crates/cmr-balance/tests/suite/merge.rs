//! Merge round trip: a synthetic folder built by hand (a real subject's tensor copied as the "generated" one) is
//! appended to the train split; everything else is unchanged and the merged folder verifies on its own.

use std::path::{Path, PathBuf};

use cmr_balance::merge::{self, MergeConfig, MergeReport};
use cmr_balance::report::{self, ReportConfig};
use cmr_core::manifest::{sha256_file, Manifest};
use cmr_core::{AttributeBins, CohortRow, Split};

use crate::cohorts;

/// A synthetic folder with one subject per `(id, parent)`: the parent's row made synthetic, its tensor copied to
/// `tensors/{id}.safetensors`.
pub fn synthetic_folder(dir: &Path, cohort: &Path, rows: &[CohortRow], subjects: &[(&str, &str)]) -> PathBuf {
    std::fs::create_dir_all(dir.join("tensors")).unwrap();
    let generated: Vec<CohortRow> = subjects
        .iter()
        .map(|(id, parent)| {
            let source = rows.iter().find(|r| r.subject_id == *parent).expect("parent in the cohort");
            let mut r = cohorts::synthetic(source.clone(), parent);
            r.subject_id = format!("synthetic:{id}");
            r.split = Split::Train;
            r.tensor_path = format!("tensors/{id}.safetensors");
            std::fs::copy(cohort.join(&source.tensor_path), dir.join(&r.tensor_path)).unwrap();
            r.tensor_sha256 = sha256_file(&dir.join(&r.tensor_path)).unwrap();
            r
        })
        .collect();
    cohorts::write_table(dir, &generated);
    Manifest::build(dir).unwrap().write(dir).unwrap();
    dir.to_path_buf()
}

pub fn config(root: &Path, out: &str) -> MergeConfig {
    MergeConfig { cohort: root.join("cohort"), synthetic: root.join("synthetic"), out: root.join(out), force: false }
}

#[test]
fn merge_round_trips_and_only_train_grows() {
    let dir = tempfile::tempdir().unwrap();
    let rows = cohorts::hand();
    let cohort = cohorts::write_folder(&dir.path().join("cohort"), &rows);
    let synthetic =
        synthetic_folder(&dir.path().join("synthetic"), &cohort, &rows, &[("000001", "a:p3"), ("000002", "b:p6")]);
    let generated = cmr_core::cohort::read(&synthetic).unwrap();

    let cfg = config(dir.path(), "merged");
    let report = merge::run(&cfg).unwrap();
    let expected = MergeReport {
        cohort: cfg.cohort.clone(),
        synthetic: cfg.synthetic.clone(),
        added: 2,
        subjects: 11,
        train_real: 6,
        train_synthetic: 3,
        val: 1,
        test: 1,
    };
    assert_eq!(report, expected);

    // The merged folder: the cohort's rows unchanged and in order, then the synthetic rows with their tensors under
    // synthetic/; every file verifies against the manifest, and every row's tensor against its sha256.
    let merged = cmr_core::cohort::read(&cfg.out).unwrap();
    assert_eq!(merged[..rows.len()], rows[..]);
    for (m, g) in merged[rows.len()..].iter().zip(&generated) {
        assert_eq!(m.tensor_path, format!("synthetic/{}", g.tensor_path));
        assert_eq!(CohortRow { tensor_path: g.tensor_path.clone(), ..m.clone() }, *g);
    }
    let manifest = Manifest::read(&cfg.out).unwrap();
    manifest.verify(&cfg.out).unwrap();
    for r in &merged {
        assert_eq!(manifest.files[&r.tensor_path].sha256, r.tensor_sha256, "{}", r.subject_id);
    }
    assert!(manifest.files.contains_key("merge.json") && manifest.files.contains_key("cohort.csv"));
    let val_test = |rows: &[CohortRow]| rows.iter().filter(|r| r.split != Split::Train).cloned().collect::<Vec<_>>();
    assert_eq!(val_test(&merged), val_test(&rows));

    // The report of the merged cohort counts the new subjects as synthetic in their strata.
    let cfg = ReportConfig {
        cohort: cfg.out.clone(),
        by: vec!["sex".into(), "label".into()],
        split: Some(Split::Train),
        attributes: AttributeBins::default(),
        smallest: 5,
    };
    let r = report::run(&cfg).unwrap();
    let counts: Vec<(String, u64, u64)> = r.strata.iter().map(|c| (c.values.join("|"), c.real, c.synthetic)).collect();
    let expected = [("F|0", 1, 1), ("F|1", 2, 0), ("M|0", 2, 1), ("M|1", 1, 1)];
    assert_eq!(counts, expected.map(|(v, r, s)| (v.to_string(), r, s)));
}
