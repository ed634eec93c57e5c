//! Every "Bad input" case of issue 4 at the library surface: a typed error naming the file and field, and nothing
//! written (the end-to-end tests check the same at the binary: exit code 2 and the message).

use std::path::Path;

use cmr_balance::merge;
use cmr_balance::plan;
use cmr_balance::report::{self, ReportConfig};
use cmr_balance::{BalanceError, Strategy};
use cmr_core::manifest::Manifest;
use cmr_core::{AttributeBins, CoreError, Split};
use cmr_testkit::files_under;

use crate::cohorts;
use crate::merge::synthetic_folder;

/// A counts file, the error it must give, and a word the message must hold.
type CountsCase = (&'static str, fn(&BalanceError) -> bool, &'static str);
/// The parent of the one synthetic subject, and how the synthetic folder is spoilt afterwards.
type SyntheticCase = (&'static str, fn(&Path));

fn plan_err(root: &Path, strategy: Strategy, by: &[&str]) -> BalanceError {
    let before = files_under(root);
    let cfg = crate::plan::config(&root.join("cohort"), &root.join("plan"), strategy, by);
    let err = plan::run(&cfg).unwrap_err();
    assert_eq!(files_under(root), before, "nothing written");
    err
}

fn hand(root: &Path) {
    cohorts::write_folder(&root.join("cohort"), &cohorts::hand());
}

#[test]
fn an_unknown_or_unbinned_stratum_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    hand(dir.path());
    let err = plan_err(dir.path(), Strategy::NotMajority, &["sex", "ethnicity"]);
    assert!(matches!(&err, BalanceError::UnknownColumn { column, .. } if column == "ethnicity"), "{err}");
    let message = err.to_string();
    assert!(message.contains("cohort.parquet") && message.contains("bmi_class"), "{message}");
    let err = plan_err(dir.path(), Strategy::NotMajority, &["height_cm"]);
    assert!(matches!(&err, BalanceError::NoBinning { column, .. } if column == "height_cm"), "{err}");
    let cfg = ReportConfig {
        cohort: dir.path().join("cohort"),
        by: vec!["ethnicity".into()],
        split: Some(Split::Train),
        attributes: AttributeBins::default(),
        smallest: 5,
    };
    assert!(matches!(report::run(&cfg), Err(BalanceError::UnknownColumn { .. })));
}

#[test]
fn null_keys_are_counted_and_the_subjects_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut rows = cohorts::hand();
    rows[1].sex = None; // a:p2, train
    rows[3].sex = None; // b:p4, train
    rows[7].sex = None; // a:p8, val: not a stratified row
    cohorts::write_table(&dir.path().join("cohort"), &rows);
    let err = plan_err(dir.path(), Strategy::NotMajority, &["sex", "label"]);
    match &err {
        BalanceError::NullKeys { column, rows, subjects, .. } => {
            assert_eq!((column.as_str(), *rows, subjects.as_str()), ("sex", 2, "a:p2, b:p4"));
        }
        other => panic!("{other}"),
    }
    assert!(err.to_string().contains("cohort.parquet"), "{err}");
}

#[test]
fn counts_files_with_unknown_strata_negative_counts_or_low_targets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    hand(dir.path());
    let counts = dir.path().join("counts.csv");
    let cases: [CountsCase; 4] = [
        ("sex,label,target\nF,0,3\nX,1,2\n", |e| matches!(e, BalanceError::UnknownStratum { line: 3, .. }), "\"X\""),
        (
            "sex,label,target\nF,0,-2\n",
            |e| matches!(e, BalanceError::Core(CoreError::InvalidValue { .. })),
            "target (line 2)",
        ),
        (
            "sex,label,target\nF,1,1\n",
            |e| matches!(e, BalanceError::TargetBelowCurrent { target: 1, current: 2, .. }),
            "sex=F|label=1",
        ),
        ("sex,target\nF,3\n", |e| matches!(e, BalanceError::Core(CoreError::MissingField { .. })), "`label`"),
    ];
    for (text, is_expected, names) in cases {
        std::fs::write(&counts, text).unwrap();
        let err = plan_err(dir.path(), Strategy::Counts(counts.clone()), &["sex", "label"]);
        let message = err.to_string();
        assert!(is_expected(&err) && message.contains("counts.csv") && message.contains(names), "{text:?}: {message}");
    }
}

#[test]
fn a_ratio_outside_zero_one_is_refused() {
    for bad in ["ratio:0", "ratio:1.01", "ratio:-0.5"] {
        assert!(matches!(bad.parse::<Strategy>(), Err(BalanceError::InvalidStrategy { .. })), "{bad}");
    }
}

#[test]
fn the_leakage_guard_refuses_val_test_parents_and_bad_tensors() {
    let dir = tempfile::tempdir().unwrap();
    let rows = cohorts::hand();
    hand(dir.path());
    let cohort = dir.path().join("cohort");
    let cases: [SyntheticCase; 4] = [
        ("a:p8", |_| {}), // val parent
        ("b:p9", |_| {}), // test parent
        ("a:p1", |s| {
            // The row's tensor_sha256 differs from the (manifest-consistent) file.
            let mut rows = cmr_core::cohort::read(s).unwrap();
            rows[0].tensor_sha256 = "f".repeat(64);
            cohorts::write_table(s, &rows);
            Manifest::build(s).unwrap().write(s).unwrap();
        }),
        ("a:p2", |s| std::fs::write(s.join("tensors/x.safetensors"), b"tampered").unwrap()),
    ];
    for (parent, spoil) in cases {
        let synthetic = dir.path().join("synthetic");
        let _ = std::fs::remove_dir_all(&synthetic);
        synthetic_folder(&synthetic, &cohort, &rows, &[("x", parent)]);
        spoil(&synthetic);
        let before = files_under(dir.path());
        let err = merge::run(&crate::merge::config(dir.path(), "merged")).unwrap_err();
        assert_eq!(files_under(dir.path()), before, "nothing written");
        let message = err.to_string();
        match parent {
            "a:p8" | "b:p9" => {
                assert!(matches!(err, BalanceError::Leakage { .. }), "{message}");
                assert!(message.contains("parent_subject") && message.contains(parent), "{message}");
            }
            "a:p1" => assert!(
                matches!(err, BalanceError::TensorMismatch { .. }) && message.contains("tensor_sha256"),
                "{message}"
            ),
            _ => assert!(
                matches!(err, BalanceError::Core(CoreError::ChecksumMismatch { .. }))
                    && message.contains("x.safetensors"),
                "{message}"
            ),
        }
    }
}

#[test]
fn an_existing_output_is_kept_without_force() {
    let dir = tempfile::tempdir().unwrap();
    hand(dir.path());
    std::fs::create_dir(dir.path().join("plan")).unwrap();
    std::fs::write(dir.path().join("plan/keep.txt"), "mine").unwrap();
    let err = plan_err(dir.path(), Strategy::NotMajority, &["sex"]);
    assert!(matches!(err, BalanceError::Core(CoreError::OutputExists { .. })), "{err}");
    assert!(err.to_string().contains("--force"));

    let rows = cohorts::hand();
    synthetic_folder(&dir.path().join("synthetic"), &dir.path().join("cohort"), &rows, &[("x", "a:p1")]);
    let before = files_under(dir.path());
    let err = merge::run(&crate::merge::config(dir.path(), "plan")).unwrap_err();
    assert!(matches!(err, BalanceError::Core(CoreError::OutputExists { .. })), "{err}");
    assert_eq!(files_under(dir.path()), before);
    // With force both replace it.
    let mut cfg = crate::merge::config(dir.path(), "plan");
    cfg.force = true;
    merge::run(&cfg).unwrap();
    assert!(!dir.path().join("plan/keep.txt").exists());
}
