//! The strata report on the hand-computed cohort of `cohorts::hand()`:
//!
//! | train row | site | sex | age (band) | BMI (class)    | label | source    |
//! |-----------|------|-----|------------|----------------|-------|-----------|
//! | a:p1      | a    | F   | 65 (60s)   | 22 (normal)    | 1     | real      |
//! | a:p2      | a    | F   | 67 (60s)   | 23 (normal)    | 1     | real      |
//! | a:p3      | a    | F   | 45 (40s)   | 31 (obese)     | 0     | real      |
//! | b:p4      | b    | M   | 72 (70s)   | 27 (overweight)| 1     | real      |
//! | b:s5      | b    | M   | 75 (70s)   | 28 (overweight)| 1     | synthetic |
//! | b:p6      | b    | M   | 55 (50s)   | 24 (normal)    | 0     | real      |
//! | b:p7      | b    | M   | 58 (50s)   | 26 (overweight)| 0     | real      |
//!
//! plus a:p8 (F, 60s, normal, 1) in val and b:p9 (M, 30s, normal, 0) in test.

use cmr_balance::report::{self, Count, ReportConfig};
use cmr_core::{AttributeBins, Split};

use crate::cohorts;

fn config(dir: &std::path::Path, by: &[&str], split: Option<Split>) -> ReportConfig {
    ReportConfig {
        cohort: dir.to_path_buf(),
        by: by.iter().map(|s| s.to_string()).collect(),
        split,
        attributes: AttributeBins::default(),
        smallest: 2,
    }
}

fn count(values: &[&str], real: u64, synthetic: u64, of: u64) -> Count {
    let subjects = real + synthetic;
    Count {
        values: values.iter().map(|s| s.to_string()).collect(),
        subjects,
        real,
        synthetic,
        share: subjects as f64 / of as f64,
    }
}

#[test]
fn sex_by_label_counts_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    cohorts::write_table(dir.path(), &cohorts::hand());
    let r = report::run(&config(dir.path(), &["sex", "label"], Some(Split::Train))).unwrap();
    assert_eq!((r.subjects, r.real, r.synthetic), (7, 6, 1));
    assert_eq!(
        r.strata,
        [
            count(&["F", "0"], 1, 0, 7),
            count(&["F", "1"], 2, 0, 7),
            count(&["M", "0"], 2, 0, 7),
            count(&["M", "1"], 1, 1, 7)
        ]
    );
    assert_eq!(r.marginals[0].column, "sex");
    assert_eq!(r.marginals[0].levels, [count(&["F"], 3, 0, 7), count(&["M"], 3, 1, 7)]);
    assert_eq!(r.marginals[1].levels, [count(&["0"], 3, 0, 7), count(&["1"], 3, 1, 7)]);
    // Smallest two: F|0 (1), then the first of the 2-subject strata in key order.
    assert_eq!(r.smallest, [count(&["F", "0"], 1, 0, 7), count(&["F", "1"], 2, 0, 7)]);
    assert!(r.empty.is_empty());
}

#[test]
fn default_keys_list_every_bin_and_the_empty_strata() {
    let dir = tempfile::tempdir().unwrap();
    cohorts::write_table(dir.path(), &cohorts::hand());
    let r = report::run(&config(dir.path(), &cmr_balance::DEFAULT_KEYS, Some(Split::Train))).unwrap();
    // 2 sexes × 8 age bands × 4 BMI classes × 2 labels.
    assert_eq!(r.strata.len(), 128);
    let non_empty: Vec<(String, u64, u64)> =
        r.strata.iter().filter(|c| c.subjects > 0).map(|c| (c.values.join("|"), c.real, c.synthetic)).collect();
    let expected = [
        ("F|40s|obese|0", 1, 0),
        ("F|60s|normal|1", 2, 0),
        ("M|50s|normal|0", 1, 0),
        ("M|50s|overweight|0", 1, 0),
        ("M|70s|overweight|1", 1, 1),
    ];
    assert_eq!(non_empty, expected.map(|(v, r, s)| (v.to_string(), r, s)));
    assert_eq!(r.empty.len(), 123);
    let age = &r.marginals[1];
    assert_eq!(
        age.levels.iter().map(|c| c.values[0].as_str()).collect::<Vec<_>>(),
        ["<20", "20s", "30s", "40s", "50s", "60s", "70s", "80s+"]
    );
    assert_eq!(age.levels.iter().map(|c| c.subjects).collect::<Vec<_>>(), [0, 0, 0, 1, 2, 2, 2, 0]);
    // The text form names the cohort and lists the empty strata.
    let text = r.to_string();
    assert!(text.contains("7 train subjects (6 real, 1 synthetic)") && text.contains("123 of 128 strata"), "{text}");
}

#[test]
fn numeric_keys_are_binned_and_other_splits_counted() {
    let dir = tempfile::tempdir().unwrap();
    cohorts::write_table(dir.path(), &cohorts::hand());
    // `age` binned by the age bands equals the stored `age_band`.
    let by_age = report::run(&config(dir.path(), &["age"], None)).unwrap();
    let by_band = report::run(&config(dir.path(), &["age_band"], None)).unwrap();
    assert_eq!(by_age.strata, by_band.strata);
    assert_eq!(by_age.subjects, 9);
    assert_eq!(by_age.split, "all");
    // Val holds one subject; the site level `b` exists (from other splits) but is empty there.
    let val = report::run(&config(dir.path(), &["site"], Some(Split::Val))).unwrap();
    assert_eq!(val.strata, [count(&["a"], 1, 0, 1), count(&["b"], 0, 0, 1)]);
    assert_eq!(val.empty, [vec!["b".to_string()]]);
}
