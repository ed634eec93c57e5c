//! The four reports of an audit: what they contain, that they agree with each other, that the numbers repeat per
//! seed, and the behaviours the issue asks for (undefined values as null with a reason, small groups kept and
//! flagged, attributes joined from the cohort, a paired comparison).

use std::path::Path;

use cmr_audit::compare::Verdict;
use cmr_audit::disparity::Stat;
use cmr_audit::metrics::Metric;
use cmr_audit::{AuditConfig, Report};
use cmr_core::manifest::Manifest;
use polars::prelude::*;
use serde_json::Value;

use crate::common::{cohort_row, entries, simulate, write_predictions};

/// Audits `subjects` (baseline, compared with the augmented model when `compare`) with attributes in the file.
fn audit(dir: &Path, n: usize, compare: bool, configure: impl FnOnce(&mut AuditConfig)) -> Report {
    let subjects = simulate(n, 7);
    let mut cfg =
        AuditConfig::new(write_predictions(&dir.join("baseline.csv"), &subjects, false, true), dir.join("audit"));
    cfg.by = vec!["sex".into(), "age_band".into(), "site".into()];
    cfg.bootstrap = 200;
    if compare {
        cfg.compare = Some(write_predictions(&dir.join("augmented.csv"), &subjects, true, false));
    }
    configure(&mut cfg);
    cmr_audit::run(&cfg).unwrap_or_else(|e| panic!("{e}"))
}

fn json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("audit/report.json")).unwrap()).unwrap()
}

#[test]
fn every_report_is_written_and_the_csv_agrees_with_the_json() {
    let dir = tempfile::tempdir().unwrap();
    let report = audit(dir.path(), 600, true, |cfg| cfg.intersections = true);
    let out = dir.path().join("audit");
    assert_eq!(entries(&out), ["manifest.json", "report.csv", "report.html", "report.json", "report.md"]);
    Manifest::read(&out).unwrap().verify(&out).unwrap();

    let j = json(dir.path());
    assert_eq!(j["schema"], "cmr-debias.audit-report.v1");
    assert_eq!(j["config"]["labels"], serde_json::json!(["baseline", "augmented"]));
    let names: Vec<&str> =
        j["models"][0]["groupings"].as_array().unwrap().iter().map(|g| g["attribute"].as_str().unwrap()).collect();
    assert_eq!(names, ["sex", "age_band", "site", "sex × age_band × site"]);
    let f_tpr = &j["models"][0]["groupings"][0]["groups"][0]["metrics"]["tpr"];
    assert_eq!(j["models"][0]["groupings"][0]["groups"][0]["group"], "F");
    let (low, value, high) =
        (f_tpr["ci_low"].as_f64().unwrap(), f_tpr["value"].as_f64().unwrap(), f_tpr["ci_high"].as_f64().unwrap());
    assert!(low < value && value < high && f_tpr["replicates"] == 200, "{f_tpr}");

    // One CSV row per model × (overall + every group) × metric, per grouping 2 × 12 disparities + 8 statistics,
    // and for the comparison (overall + every group) × (12 changes + McNemar) + 8 statistic changes per grouping.
    let groups: usize = report.models[0].groupings.iter().map(|g| g.groups.len()).sum();
    let groupings = report.models[0].groupings.len();
    let expected_rows = 2 * ((1 + groups) * 12 + groupings * 32) + (1 + groups) * 13 + groupings * 8;
    let mut csv = csv::Reader::from_path(out.join("report.csv")).unwrap();
    assert_eq!(
        csv.headers().unwrap().iter().collect::<Vec<_>>(),
        [
            "model",
            "kind",
            "attribute",
            "group",
            "n",
            "positives",
            "small",
            "metric",
            "value",
            "ci_low",
            "ci_high",
            "reason"
        ]
    );
    let records: Vec<csv::StringRecord> = csv.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), expected_rows);
    let row = records.iter().find(|r| &r[0] == "baseline" && &r[2] == "sex" && &r[3] == "F" && &r[7] == "tpr").unwrap();
    assert_eq!(
        (row[8].parse::<f64>().unwrap(), row[9].parse::<f64>().unwrap(), row[10].parse::<f64>().unwrap()),
        (value, low, high)
    );
    let eo = records
        .iter()
        .find(|r| &r[0] == "augmented vs baseline" && &r[2] == "sex" && &r[7] == "equalized_odds_difference")
        .unwrap();
    let eo_json = report.comparison.as_ref().unwrap().groupings[0].fairness.get(Stat::EqualizedOddsDifference);
    assert_eq!(eo[8].parse::<f64>().ok(), eo_json.value);

    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    for needle in [
        "# Subgroup audit: baseline vs augmented",
        "## Before and after: baseline → augmented",
        "## By sex",
        "## By sex × age_band × site",
        "⚠",
    ] {
        assert!(md.contains(needle), "report.md lacks {needle:?}:\n{md}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.matches("<svg").count() >= 2 * groupings + groupings);
    for external in ["<script", "src=", "href=", "url(", "@import"] {
        assert!(!html.contains(external), "report.html must be self-contained, found {external:?}");
    }
}

#[test]
fn the_augmented_model_closes_the_sex_gap_and_overall_performance_holds() {
    let dir = tempfile::tempdir().unwrap();
    let report = audit(dir.path(), 1500, true, |cfg| cfg.by = vec!["sex".into()]);
    let baseline = &report.models[0].groupings[0];
    let worst = baseline.worst_group.as_ref().unwrap();
    assert_eq!(worst.group, "F", "the baseline's sensitivity is 0.6 for women and 0.85 for men");
    let c = report.comparison.as_ref().unwrap();
    let sex = &c.groupings[0];
    let w = sex.worst_group.as_ref().unwrap();
    assert_eq!((w.group.as_str(), w.shift.verdict), ("F", Verdict::Improved), "{w:?}");
    assert!(sex.fairness.get(Stat::EqualizedOddsDifference).below_zero(), "the TPR gap closes: {:?}", sex.fairness);
    assert!(c.headline.overall_held && c.headline.worst_groups_improved == 1, "{:?}", c.headline);
    let f = &sex.groups[0];
    assert!(
        f.mcnemar.candidate_only_correct > f.mcnemar.baseline_only_correct && f.mcnemar.p_value < 0.01,
        "{:?}",
        f.mcnemar
    );
    let md = std::fs::read_to_string(dir.path().join("audit/report.md")).unwrap();
    assert!(
        md.contains("**overall performance held**") && md.contains("worst group F") && md.contains("**improved**"),
        "{md}"
    );
}

#[test]
fn a_model_compared_with_itself_changes_by_exactly_zero() {
    let dir = tempfile::tempdir().unwrap();
    let report = audit(dir.path(), 300, false, |cfg| cfg.compare = Some(cfg.predictions.clone()));
    let c = report.comparison.unwrap();
    for change in c.groupings.iter().flat_map(|g| &g.groups).chain([&c.overall]) {
        let ba = change.metrics.get(Metric::BalancedAccuracy);
        assert_eq!(
            (ba.value, ba.ci_low, ba.ci_high),
            (Some(0.0), Some(0.0), Some(0.0)),
            "paired resamples: {}",
            change.group
        );
        assert_eq!(
            (change.mcnemar.baseline_only_correct, change.mcnemar.candidate_only_correct, change.mcnemar.p_value),
            (0, 0, 1.0)
        );
    }
    assert_eq!(c.headline.overall_balanced_accuracy.verdict, Verdict::NoClearChange);
}

#[test]
fn the_same_seed_repeats_every_number_and_another_seed_moves_only_the_intervals() {
    let run = |seed: u64| {
        let dir = tempfile::tempdir().unwrap();
        audit(dir.path(), 300, true, |cfg| cfg.seed = seed)
    };
    let (a, b, other) = (run(5), run(5), run(6));
    assert_eq!(a.models, b.models);
    assert_eq!(a.comparison, b.comparison);
    let tpr = |r: &Report| r.models[0].groupings[0].groups[0].metrics.get(Metric::Tpr).clone();
    assert_eq!(tpr(&a).value, tpr(&other).value);
    assert_ne!((tpr(&a).ci_low, tpr(&a).ci_high), (tpr(&other).ci_low, tpr(&other).ci_high));
}

#[test]
fn parquet_predictions_give_the_same_numbers_as_csv() {
    let dir = tempfile::tempdir().unwrap();
    let csv_report = audit(dir.path(), 200, false, |_| {});
    let subjects = simulate(200, 7);
    let mut df = polars::df!(
        "subject_id" => subjects.iter().map(|s| s.id.clone()).collect::<Vec<_>>(),
        "y_true" => subjects.iter().map(|s| i64::from(s.y_true)).collect::<Vec<_>>(),
        "y_pred" => subjects.iter().map(|s| s.baseline).collect::<Vec<_>>(),
        "y_score" => subjects.iter().map(|s| s.score).collect::<Vec<_>>(),
        "sex" => subjects.iter().map(|s| s.sex).collect::<Vec<_>>(),
        "age_band" => subjects.iter().map(|s| s.age_band).collect::<Vec<_>>(),
        "site" => subjects.iter().map(|s| s.site).collect::<Vec<_>>()
    )
    .unwrap();
    let parquet = dir.path().join("baseline.parquet");
    ParquetWriter::new(std::fs::File::create(&parquet).unwrap()).finish(&mut df).unwrap();
    let mut cfg = AuditConfig::new(&parquet, dir.path().join("audit-parquet"));
    cfg.by = vec!["sex".into(), "age_band".into(), "site".into()];
    cfg.bootstrap = 200;
    assert_eq!(cmr_audit::run(&cfg).unwrap().models, csv_report.models);
}

#[test]
fn undefined_metrics_are_null_with_a_reason_and_small_groups_are_kept_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("subject_id,y_true,y_pred,site\n");
    for i in 0..60 {
        text.push_str(&format!("a{i},{},{},A\n", i % 2, (i / 2) % 2));
    }
    text.push_str("c1,0,0,C\nc2,0,1,C\nc3,0,0,C\n"); // site C: three negatives only
    let path = dir.path().join("p.csv");
    std::fs::write(&path, text).unwrap();
    let mut cfg = AuditConfig::new(&path, dir.path().join("audit"));
    cfg.by = vec!["site".into()];
    cfg.bootstrap = 50;
    let report = cmr_audit::run(&cfg).unwrap();
    let site = &report.models[0].groupings[0];
    let c = &site.groups[1];
    assert_eq!((c.group.as_str(), c.n, c.small), ("C", 3, true));
    assert!(!site.groups[0].small);
    let j = json(dir.path());
    let c_json = &j["models"][0]["groupings"][0]["groups"][1]["metrics"];
    for metric in ["tpr", "fnr", "balanced_accuracy", "mcc"] {
        assert_eq!(c_json[metric]["value"], Value::Null, "{metric}");
        assert_eq!(c_json[metric]["reason"], "no subjects with y_true = 1", "{metric}");
    }
    assert_eq!(c_json["auc"]["reason"], "no y_score column");
    assert!((c_json["tnr"]["value"].as_f64().unwrap() - 2.0 / 3.0).abs() < 1e-15);
    assert_eq!(c_json["f1"]["value"], 0.0, "one false positive and no true positive: F1 is defined and 0");
    assert!(c_json["tnr"].get("reason").is_none());
    // Disparities skip the undefined group: one group left, so the TPR difference is undefined too.
    let tpr = site.disparities.get(Metric::Tpr);
    assert_eq!(
        tpr.difference.reason.map(|r| r.to_string()).as_deref(),
        Some("fewer than two groups with a defined value")
    );
    assert_eq!(site.worst_group.as_ref().unwrap().group, "A");
    let csv = std::fs::read_to_string(dir.path().join("audit/report.csv")).unwrap();
    assert!(csv.contains("model,metric,site,C,3,0,true,tpr,,,,no subjects with y_true = 1"), "{csv}");
}

#[test]
fn attributes_are_joined_from_the_cohort_by_subject_id() {
    let dir = tempfile::tempdir().unwrap();
    let subjects = simulate(40, 3);
    let cohort = dir.path().join("cohort");
    std::fs::create_dir(&cohort).unwrap();
    let rows: Vec<_> = subjects.iter().rev().map(|s| cohort_row(&s.id, s.sex)).collect();
    cmr_core::cohort::write(&cohort, &rows).unwrap();
    let mut cfg = AuditConfig::new(
        write_predictions(&dir.path().join("p.csv"), &subjects, false, false),
        dir.path().join("audit"),
    );
    cfg.cohort = Some(cohort);
    cfg.bootstrap = 20;
    let report = cmr_audit::run(&cfg).unwrap();
    let sex = &report.models[0].groupings[0];
    let women = subjects.iter().filter(|s| s.sex == "F").count();
    assert_eq!((sex.groups[0].group.as_str(), sex.groups[0].n), ("F", women));
    let bmi = &report.models[0].groupings[2];
    assert_eq!((bmi.attribute.as_str(), bmi.groups[0].group.as_str(), bmi.groups[0].n), ("bmi_class", "(missing)", 40));
    assert_eq!(report.inputs.iter().map(|i| i.role).collect::<Vec<_>>(), ["predictions", "cohort"]);
}
