//! `cmr-debias audit` end to end (issue 5): a cohort table and the predictions of two models → audit with the
//! cohort's attributes, intersections and a comparison; and every bad input of the issue at the binary's surface: a
//! clear message naming the file and field, exit code 2, nothing written. The cohort table is written directly — an
//! audit reads only the table — because a phantom + ingest run would add a minute of test time.

use std::fmt::Write as _;

use cmr_core::{CohortRow, Sex};

use crate::util::{files_under, Workspace};

/// Writes predictions for `rows`: the baseline misses every third positive woman, the augmented model does not.
fn write_predictions(ws: &Workspace, name: &str, rows: &[CohortRow], augmented: bool) {
    let mut text = String::from("subject_id,y_true,y_pred,y_score\n");
    for (i, row) in rows.iter().enumerate() {
        let missed = !augmented && row.label == 1 && row.sex == Some(Sex::F) && i % 3 == 0;
        let pred = if missed { 0 } else { row.label };
        let score = if pred == 1 { 0.6 + (i % 4) as f64 * 0.1 } else { 0.1 + (i % 4) as f64 * 0.1 };
        let _ = writeln!(text, "{},{},{pred},{score:.2}", row.subject_id, row.label);
    }
    std::fs::write(ws.path(name), text).unwrap();
}

#[test]
fn audit_with_cohort_attributes_intersections_and_a_comparison() {
    let ws = Workspace::new();
    let rows = cohort(&ws, 120);
    write_predictions(&ws, "baseline.csv", &rows, false);
    write_predictions(&ws, "augmented.csv", &rows, true);

    let args = ["audit", "--predictions", "baseline.csv", "--cohort", "cohort", "--out", "audit", "--bootstrap", "100"];
    let report: serde_json::Value = serde_json::from_str(
        &ws.ok(&[&args[..], &["--intersections", "--compare", "augmented.csv", "--json"]].concat()),
    )
    .unwrap();
    assert_eq!(
        files_under(&ws.path("audit")),
        ["manifest.json", "report.csv", "report.html", "report.json", "report.md"]
    );
    let on_disk: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.path("audit/report.json")).unwrap()).unwrap();
    assert_eq!(report, on_disk, "--json prints report.json");
    assert_eq!(report["subjects"], rows.len());
    let groupings = report["models"][0]["groupings"].as_array().unwrap();
    let names: Vec<&str> = groupings.iter().map(|g| g["attribute"].as_str().unwrap()).collect();
    assert_eq!(names, ["sex", "age_band", "bmi_class", "site", "sex × age_band × bmi_class × site"]);
    for grouping in groupings {
        let n: u64 = grouping["groups"].as_array().unwrap().iter().map(|g| g["n"].as_u64().unwrap()).sum();
        assert_eq!(n as usize, rows.len(), "{}: every subject in exactly one group", grouping["attribute"]);
    }
    let women = rows.iter().filter(|r| r.sex == Some(Sex::F)).count();
    assert_eq!(groupings[0]["groups"][0]["group"], "F");
    assert_eq!(groupings[0]["groups"][0]["n"], women);
    assert_eq!(groupings[0]["worst_group"]["group"], "F");
    assert_eq!(report["comparison"]["baseline"], "baseline");
    assert_eq!(report["comparison"]["headline"]["overall_held"], true);

    // The plain output names the worst groups and the headline; an existing report is kept without --force.
    let text = ws.ok(&[&args[..], &["--compare", "augmented.csv", "--force", "--by", "sex"]].concat());
    assert!(
        text.contains("worst sex group F") && text.contains("augmented vs baseline: overall performance held"),
        "{text}"
    );
    let err = ws.fails(&args);
    assert!(err.contains("already exists") && err.contains("--force"), "{err}");
}

/// Writes a cohort table of `n` subjects `s1`, `s2`, … with varied sex, age band, BMI class, site and label (an
/// audit needs only the table, not the images) and returns its rows.
fn cohort(ws: &Workspace, n: usize) -> Vec<CohortRow> {
    let rows: Vec<CohortRow> = (1..=n)
        .map(|i| CohortRow {
            subject_id: format!("s{i}"),
            dataset: "ukbb".into(),
            site: ["north", "south", "west"][i % 3].into(),
            vendor: "Siemens".into(),
            sex: Some(if i % 5 < 2 { Sex::F } else { Sex::M }),
            age: None,
            height_cm: None,
            weight_kg: None,
            bmi: None,
            age_band: Some(["40s", "50s", "60s", "70s"][(i * 7) % 4].into()),
            bmi_class: Some(["normal", "overweight", "obese"][(i / 3) % 3].into()),
            diagnosis: "NOR".into(),
            label: i32::from((i * 13) % 7 < 3),
            split: cmr_core::Split::Test,
            source: cmr_core::Source::Real,
            parent_subject: None,
            generator_sha256: None,
            seed: None,
            prompt: String::new(),
            tensor_path: String::new(),
            tensor_sha256: String::new(),
        })
        .collect();
    std::fs::create_dir(ws.path("cohort")).unwrap();
    cmr_core::cohort::write(&ws.path("cohort"), &rows).unwrap();
    rows
}

#[test]
fn bad_input_is_named_exits_2_and_writes_nothing() {
    const GOOD: &str = "subject_id,y_true,y_pred,y_score,sex\ns1,1,1,0.9,F\ns2,0,0,0.2,M\n";
    let cases: [(&str, String, &[&str], &[&str]); 6] = [
        ("y_true not 0/1", GOOD.replace("s2,0,0", "s2,3,0"), &[], &["p.csv", "`y_true`", "0 or 1", "subject s2"]),
        ("score outside [0, 1]", GOOD.replace("0.9", "1.2"), &[], &["p.csv", "`y_score`", "[0, 1]", "1.2"]),
        ("duplicate ids", GOOD.replace("s2,", "s1,"), &[], &["p.csv", "`subject_id`", "duplicate", "s1"]),
        ("unknown --by", GOOD.into(), &["--by", "scanner"], &["`scanner`", "p.csv", "available: sex"]),
        (
            "missing from cohort",
            GOOD.replace("s2,", "s9,"),
            &["--cohort", "cohort"],
            &["cohort.parquet", "p.csv", "s9"],
        ),
        ("empty file", String::new(), &[], &["p.csv", "empty"]),
    ];
    for (case, predictions, extra, needles) in cases {
        let ws = Workspace::new();
        cohort(&ws, 3);
        std::fs::write(ws.path("p.csv"), predictions).unwrap();
        let before = files_under(&ws.path(""));
        let args = [&["audit", "--predictions", "p.csv", "--out", "audit", "--by", "sex"][..], extra].concat();
        let err = ws.fails(&args);
        for needle in needles {
            assert!(err.contains(needle), "{case}: {needle:?} not in: {err}");
        }
        assert_eq!(err.matches("error:").count(), 1, "{case}: printed once: {err}");
        assert!(!ws.path("audit").exists(), "{case}");
        assert_eq!(files_under(&ws.path("")), before, "{case}: nothing written");
        let leftovers = std::fs::read_dir(ws.path(""))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with('.'))
            .count();
        assert_eq!(leftovers, 0, "{case}: no staging folder left");
    }
}
