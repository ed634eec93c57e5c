//! Bad input (issue 5): each case gives its typed error naming the file and the field, and nothing is written —
//! not the output folder, not its hidden staging sibling.

use std::path::Path;

use crate::common::{cohort_row, entries, simulate, write_predictions};
use cmr_audit::{AuditConfig, AuditError};

const HEADER: &str = "subject_id,y_true,y_pred,y_score,sex";

/// Runs an audit of `predictions` (CSV text) configured by `configure`; returns the error and checks that only the
/// inputs remain in the folder.
fn fails(predictions: &str, configure: impl FnOnce(&mut AuditConfig, &Path)) -> AuditError {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("predictions.csv");
    std::fs::write(&path, predictions).unwrap();
    let mut cfg = AuditConfig::new(&path, dir.path().join("audit"));
    cfg.by = vec!["sex".into()];
    cfg.bootstrap = 10;
    configure(&mut cfg, dir.path());
    let before = entries(dir.path());
    let err = cmr_audit::run(&cfg).expect_err("the audit must fail");
    assert_eq!(entries(dir.path()), before, "nothing written: {err}");
    err
}

fn rows(lines: &[&str]) -> String {
    std::iter::once(HEADER).chain(lines.iter().copied()).map(|l| format!("{l}\n")).collect()
}

#[test]
fn y_true_outside_0_1_is_named_with_its_subject() {
    let err = fails(&rows(&["a,1,1,0.9,F", "b,2,0,0.2,M"]), |_, _| {});
    let text = err.to_string();
    assert!(matches!(err, AuditError::InvalidValue { ref column, .. } if column == "y_true"), "{err:?}");
    assert!(
        text.contains("predictions.csv") && text.contains("0 or 1") && text.contains("subject b (row 2)"),
        "{text}"
    );
    let err = fails(&rows(&["a,1,yes,0.9,F"]), |_, _| {});
    assert!(err.to_string().contains("`y_pred`") && err.to_string().contains("\"yes\""), "{err}");
}

#[test]
fn scores_outside_0_1_are_refused() {
    for bad in ["1.5", "-0.1", "NaN"] {
        let err = fails(&rows(&["a,1,1,0.9,F", &format!("b,0,0,{bad},M")]), |_, _| {});
        let text = err.to_string();
        assert!(text.contains("predictions.csv") && text.contains("`y_score`") && text.contains("[0, 1]"), "{text}");
    }
}

#[test]
fn duplicate_subject_ids_are_listed() {
    let err = fails(&rows(&["a,1,1,0.9,F", "b,0,0,0.1,M", "a,1,0,0.4,F", "c,0,0,0.2,M", "b,0,1,0.6,M"]), |_, _| {});
    assert!(matches!(&err, AuditError::DuplicateSubjects { ids, .. } if ids == &["a", "b"]), "{err:?}");
    assert!(err.to_string().contains("predictions.csv: column `subject_id`"), "{err}");
}

#[test]
fn a_by_column_that_does_not_exist_lists_the_available_ones() {
    let err = fails(&rows(&["a,1,1,0.9,F"]), |cfg, _| cfg.by = vec!["sex".into(), "vendor".into()]);
    let text = err.to_string();
    assert!(matches!(err, AuditError::UnknownAttribute { .. }), "{err:?}");
    assert!(text.contains("`vendor`") && text.contains("predictions.csv") && text.contains("available: sex"), "{text}");
}

#[test]
fn subjects_missing_from_the_cohort_are_listed() {
    let err = fails(&rows(&["acdc:p1,1,1,0.9,F", "acdc:p7,0,0,0.1,M", "acdc:p9,0,0,0.1,M"]), |cfg, dir| {
        let cohort = dir.join("cohort");
        std::fs::create_dir(&cohort).unwrap();
        cmr_core::cohort::write(&cohort, &[cohort_row("acdc:p1", "F")]).unwrap();
        cfg.cohort = Some(cohort);
        cfg.by = vec!["site".into()];
    });
    let text = err.to_string();
    assert!(matches!(&err, AuditError::MissingFromCohort { ids, .. } if ids == &["acdc:p7", "acdc:p9"]), "{err:?}");
    assert!(
        text.contains("cohort.parquet") && text.contains("2 subject(s) of") && text.contains("acdc:p7, acdc:p9"),
        "{text}"
    );
}

#[test]
fn empty_files_are_refused() {
    let err = fails("subject_id,y_true,y_pred\n", |_, _| {});
    assert!(matches!(err, AuditError::Empty { .. }), "a header without rows: {err:?}");
    let err = fails("", |_, _| {});
    assert!(matches!(err, AuditError::Core(_)), "an empty file: {err:?}");
    for err in [err.to_string(), AuditError::Empty { path: "predictions.csv".into() }.to_string()] {
        assert!(err.contains("predictions.csv: ") && err.contains("empty"), "{err}");
    }
}

#[test]
fn a_missing_required_column_is_named() {
    let err = fails("subject_id,y_true,sex\na,1,F\n", |_, _| {});
    assert!(err.to_string().contains("missing column `y_pred`"), "{err}");
}

#[test]
fn an_attribute_in_both_inputs_must_agree_with_the_cohort() {
    let err = fails(&rows(&["acdc:p1,1,1,0.9,F", "acdc:p2,0,0,0.1,F"]), |cfg, dir| {
        let cohort = dir.join("cohort");
        std::fs::create_dir(&cohort).unwrap();
        cmr_core::cohort::write(&cohort, &[cohort_row("acdc:p1", "F"), cohort_row("acdc:p2", "M")]).unwrap();
        cfg.cohort = Some(cohort);
    });
    let text = err.to_string();
    assert!(text.contains("`sex`") && text.contains("\"F\" for subject acdc:p2") && text.contains("\"M\""), "{text}");
}

#[test]
fn compared_files_must_hold_the_same_subjects_with_the_same_labels() {
    let subjects = simulate(30, 1);
    let err = fails(&rows(&["sim:0000,1,1,0.9,F"]), |cfg, dir| {
        cfg.compare = Some(write_predictions(&dir.join("other.csv"), &subjects, true, false));
    });
    assert!(matches!(err, AuditError::SubjectsDiffer { .. }), "{err:?}");
    assert!(err.to_string().contains("other.csv") && err.to_string().contains("29 subject(s) are only here"), "{err}");
    let err = fails(&rows(&["x,1,1,0.9,F", "y,0,1,0.9,M"]), |cfg, dir| {
        let other = dir.join("other.csv");
        std::fs::write(&other, "subject_id,y_true,y_pred\ny,1,1\nx,1,0\n").unwrap();
        cfg.compare = Some(other);
    });
    assert!(err.to_string().contains("other.csv: column `y_true`: subject y is 1 here but 0 in"), "{err}");
}

#[test]
fn inconsistent_settings_are_refused_before_reading() {
    type Configure = fn(&mut AuditConfig);
    let cases: [(&str, Configure); 4] = [
        ("--confidence", |c| c.confidence = 1.0),
        ("--labels", |c| c.labels = vec!["a".into(), "b".into()]),
        ("given twice", |c| c.by = vec!["sex".into(), "sex".into()]),
        ("reserved", |c| c.by = vec!["y_pred".into()]),
    ];
    for (needle, configure) in cases {
        let err = fails(&rows(&["a,1,1,0.9,F"]), |cfg, _| configure(cfg));
        assert!(matches!(err, AuditError::Config(_)) && err.to_string().contains(needle), "{needle}: {err}");
    }
}

#[test]
fn an_existing_output_is_kept_without_force() {
    let err = fails(&rows(&["a,1,1,0.9,F"]), |cfg, dir| {
        std::fs::create_dir(dir.join("audit")).unwrap();
        std::fs::write(dir.join("audit/keep.txt"), "mine").unwrap();
        cfg.out = dir.join("audit");
    });
    assert!(err.to_string().contains("already exists") && err.to_string().contains("--force"), "{err}");
}
