//! Plans on the hand-computed cohort (`cohorts::hand()`, table in `report.rs`): per-stratum needs by hand for every
//! strategy, the drawn rows, the mask-source rule, determinism by seed.

use std::path::{Path, PathBuf};

use cmr_balance::plan::{self, PlanConfig, PlanSummary, PLAN_COLUMNS};
use cmr_balance::{Guards, Strategy};
use cmr_core::{AttributeBins, Sex};
use polars::prelude::*;

use crate::cohorts;

pub fn config(cohort: &Path, out: &Path, strategy: Strategy, by: &[&str]) -> PlanConfig {
    PlanConfig {
        cohort: cohort.into(),
        out: out.into(),
        strategy,
        by: by.iter().map(|s| s.to_string()).collect(),
        per_site: false,
        seed: 7,
        guards: Guards::default(),
        attributes: AttributeBins::default(),
        force: false,
    }
}

fn hand_cohort(dir: &Path) -> PathBuf {
    cohorts::write_table(&dir.join("cohort"), &cohorts::hand())
}

/// (stratum, current, target, needed, planned) of every stratum.
fn needs(s: &PlanSummary) -> Vec<(String, u64, u64, u64, u64)> {
    s.strata.iter().map(|n| (n.values.join("|"), n.current, n.target, n.needed, n.planned)).collect()
}

fn read_plan(out: &Path) -> DataFrame {
    let file = std::fs::File::open(out.join("plan.parquet")).unwrap();
    ParquetReader::new(file).finish().unwrap()
}

fn strs(df: &DataFrame, name: &str) -> Vec<String> {
    df.column(name).unwrap().str().unwrap().iter().map(|v| v.unwrap_or("").to_string()).collect()
}

fn f64s(df: &DataFrame, name: &str) -> Vec<f64> {
    df.column(name).unwrap().f64().unwrap().iter().map(|v| v.unwrap()).collect()
}

#[test]
fn not_majority_and_ratio_needs_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let cohort = hand_cohort(dir.path());
    // Largest stratum: 2 → F|0 needs 1.
    let s = plan::run(&config(&cohort, &dir.path().join("nm"), Strategy::NotMajority, &["sex", "label"])).unwrap();
    let expected = [("F|0", 1, 2, 1, 1), ("F|1", 2, 2, 0, 0), ("M|0", 2, 2, 0, 0), ("M|1", 2, 2, 0, 0)];
    assert_eq!(needs(&s), expected.map(|(v, c, t, n, p)| (v.to_string(), c, t, n, p)));
    assert_eq!((s.planned, s.shortfall, s.train_subjects), (1, 0, 7));
    // ratio 0.5: ⌊0.5 × 2⌋ = 1 → nothing needed; the plan file has a header and no rows.
    let s = plan::run(&config(&cohort, &dir.path().join("r"), Strategy::Ratio(0.5), &["sex", "label"])).unwrap();
    assert_eq!(s.planned, 0);
    assert_eq!(read_plan(&dir.path().join("r")).height(), 0);
    // Default keys: 128 strata, target 2; the three 1-subject strata get 1 each, the 123 empty ones cannot be
    // synthesised (no real subject) and are reported with the reason.
    let s =
        plan::run(&config(&cohort, &dir.path().join("d"), Strategy::NotMajority, &cmr_balance::DEFAULT_KEYS)).unwrap();
    assert_eq!((s.planned, s.shortfall), (3, 246));
    assert_eq!(s.cannot_synthesise.len(), 123);
    assert!(s.cannot_synthesise.iter().all(|n| n.real == 0 && n.reason.as_deref().unwrap().contains("--min-real 1")));
}

#[test]
fn per_site_balances_each_site_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let cohort = hand_cohort(dir.path());
    let mut cfg = config(&cohort, &dir.path().join("p"), Strategy::NotMajority, &["sex", "label"]);
    cfg.per_site = true;
    let s = plan::run(&cfg).unwrap();
    assert_eq!(s.keys, ["site", "sex", "label"]);
    // Site a: F|0 1, F|1 2, M|0 0, M|1 0 → max 2. Site b: F|0 0, F|1 0, M|0 2, M|1 2 → max 2.
    let expected = [
        ("a|F|0", 1, 2, 1, 1),
        ("a|F|1", 2, 2, 0, 0),
        ("a|M|0", 0, 2, 2, 0),
        ("a|M|1", 0, 2, 2, 0),
        ("b|F|0", 0, 2, 2, 0),
        ("b|F|1", 0, 2, 2, 0),
        ("b|M|0", 2, 2, 0, 0),
        ("b|M|1", 2, 2, 0, 0),
    ];
    assert_eq!(needs(&s), expected.map(|(v, c, t, n, p)| (v.to_string(), c, t, n, p)));
    // The one synthetic subject of site a takes its mask from site a.
    let df = read_plan(&dir.path().join("p"));
    assert_eq!((strs(&df, "site"), strs(&df, "mask_source")), (vec!["a".to_string()], vec!["a:p3".to_string()]));
}

#[test]
fn counts_file_with_a_ratio_cap_and_the_drawn_rows() {
    let dir = tempfile::tempdir().unwrap();
    let cohort = hand_cohort(dir.path());
    let counts = dir.path().join("counts.csv");
    std::fs::write(&counts, "sex,label,target\nF,0,3\nM,1,4\n").unwrap();
    let mut cfg = config(&cohort, &dir.path().join("c"), Strategy::Counts(counts), &["sex", "label"]);
    cfg.guards.max_synthetic_ratio = Some(2.0);
    let s = plan::run(&cfg).unwrap();
    // F|0: 1 real → target 3, needs 2, cap ⌊2 × 1⌋ − 0 = 2. M|1: 1 real + 1 synthetic → target 4, needs 2,
    // cap ⌊2 × 1⌋ − 1 = 1.
    let expected = [("F|0", 1, 3, 2, 2), ("F|1", 2, 2, 0, 0), ("M|0", 2, 2, 0, 0), ("M|1", 2, 4, 2, 1)];
    assert_eq!(needs(&s), expected.map(|(v, c, t, n, p)| (v.to_string(), c, t, n, p)));
    assert_eq!(s.cannot_synthesise.len(), 1);
    assert!(s.cannot_synthesise[0].reason.as_deref().unwrap().contains("--max-synthetic-ratio 2"));

    let df = read_plan(&dir.path().join("c"));
    assert_eq!(df.get_column_names().iter().map(|c| c.as_str()).collect::<Vec<_>>(), PLAN_COLUMNS);
    assert_eq!(strs(&df, "plan_id"), ["synthetic:000001", "synthetic:000002", "synthetic:000003"]);
    // Donors: F|0 has only a:p3 (F, 45, BMI 31, NOR, site a); M|1's only real subject is b:p4 (the synthetic b:s5 is
    // never a donor).
    assert_eq!(strs(&df, "sex"), ["F", "F", "M"]);
    assert_eq!(strs(&df, "diagnosis"), ["NOR", "NOR", "HCM"]);
    assert_eq!(strs(&df, "site"), ["a", "a", "b"]);
    assert_eq!(strs(&df, "age_band"), ["40s", "40s", "70s"]);
    assert_eq!(strs(&df, "bmi_class"), ["obese", "obese", "overweight"]);
    let bins = AttributeBins::default();
    for (i, (age, bmi)) in f64s(&df, "age").into_iter().zip(f64s(&df, "bmi")).enumerate() {
        assert_eq!(bins.age_band(age), strs(&df, "age_band")[i]);
        assert_eq!(bins.bmi_class(bmi), strs(&df, "bmi_class")[i]);
        let prompt = cmr_core::prompt::prompt(
            &bins,
            Some(strs(&df, "sex")[i].parse::<Sex>().unwrap()),
            Some(age),
            Some(&strs(&df, "bmi_class")[i]),
            Some(&strs(&df, "diagnosis")[i]),
        );
        assert_eq!(strs(&df, "prompt")[i], prompt);
    }
    // Mask sources: a:p3 is the only female label-0 subject; the second F|0 row may not reuse it, so the closest
    // male label-0 subject follows (b:p7: 58 y, BMI 26 is nearer to ~45 y, BMI 30–32 than b:p6: 55 y, BMI 24);
    // M|1 takes b:p4, the only male label-1 real subject.
    assert_eq!(strs(&df, "mask_source"), ["a:p3", "b:p7", "b:p4"]);
    let seeds: Vec<u64> = df.column("seed").unwrap().u64().unwrap().iter().map(Option::unwrap).collect();
    assert_eq!(seeds[0], cmr_core::seed::derive(7, &["balance", "synthetic", "synthetic:000001"]));
}

#[test]
fn reference_and_weights_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let cohort = hand_cohort(dir.path());
    let reference = dir.path().join("reference.csv");
    std::fs::write(&reference, "sex,share\nF,1\nM,3\n").unwrap();
    // 7 train subjects at 1:3 → F round(1.75) = 2 (has 3: kept), M round(5.25) = 5 (has 4: needs 1).
    let s = plan::run(&config(&cohort, &dir.path().join("r"), Strategy::Reference(reference), &["sex"])).unwrap();
    let expected = [("F", 3, 2, 0, 0), ("M", 4, 5, 1, 1)];
    assert_eq!(needs(&s), expected.map(|(v, c, t, n, p)| (v.to_string(), c, t, n, p)));

    let out = dir.path().join("w");
    let s = plan::run(&config(&cohort, &out, Strategy::Weights, &["sex", "label"])).unwrap();
    assert_eq!(s.planned, 0);
    assert!(!out.join("plan.parquet").exists());
    let df = ParquetReader::new(std::fs::File::open(out.join("weights.parquet")).unwrap()).finish().unwrap();
    let weights: Vec<(String, f64)> = strs(&df, "subject_id").into_iter().zip(f64s(&df, "weight")).collect();
    let expected =
        [("a:p1", 0.5), ("a:p2", 0.5), ("a:p3", 1.0), ("b:p4", 0.5), ("b:s5", 0.5), ("b:p6", 0.5), ("b:p7", 0.5)];
    assert_eq!(weights, expected.map(|(id, w)| (id.to_string(), w)));
    assert_eq!(strs(&df, "stratum")[2], "sex=F|label=0");
}

#[test]
fn plans_are_byte_identical_for_a_seed_and_differ_across_seeds() {
    let dir = tempfile::tempdir().unwrap();
    let cohort = cohorts::write_table(&dir.path().join("cohort"), &cohorts::random(600, 3));
    let run = |name: &str, seed: u64| {
        let mut cfg = config(&cohort, &dir.path().join(name), Strategy::NotMajority, &cmr_balance::DEFAULT_KEYS);
        cfg.seed = seed;
        plan::run(&cfg).unwrap();
        ["plan.parquet", "plan.csv", "summary.json", "manifest.json"]
            .map(|f| std::fs::read(dir.path().join(name).join(f)).unwrap())
    };
    let a = run("a", 11);
    assert!(a[0].len() > 1000, "a plan with rows");
    assert_eq!(a, run("b", 11));
    let c = run("c", 12);
    assert_ne!(a[1], c[1]);
    // The needs do not depend on the seed: the summaries differ in the seed only.
    let summary = |bytes: &[u8]| {
        let mut v: serde_json::Value = serde_json::from_slice(bytes).unwrap();
        v.as_object_mut().unwrap().remove("seed");
        v
    };
    assert_eq!(summary(&a[2]), summary(&c[2]));
}

#[test]
fn no_mask_is_used_twice_in_a_row_and_masks_match_label() {
    let dir = tempfile::tempdir().unwrap();
    let rows = cohorts::random(800, 5);
    let cohort = cohorts::write_table(&dir.path().join("cohort"), &rows);
    let out = dir.path().join("p");
    plan::run(&config(&cohort, &out, Strategy::NotMajority, &["sex", "age_band", "label"])).unwrap();
    let df = read_plan(&out);
    assert!(df.height() > 100);
    let masks = strs(&df, "mask_source");
    assert!(masks.windows(2).all(|w| w[0] != w[1]), "a mask used twice in a row");
    let labels: Vec<i32> = df.column("label").unwrap().i32().unwrap().iter().map(Option::unwrap).collect();
    let by_id: std::collections::HashMap<&str, &cmr_core::CohortRow> =
        rows.iter().map(|r| (r.subject_id.as_str(), r)).collect();
    for (mask, label) in masks.iter().zip(labels) {
        let source = by_id[mask.as_str()];
        assert_eq!(
            (source.label, source.split, source.source),
            (label, cmr_core::Split::Train, cmr_core::Source::Real)
        );
    }
}
