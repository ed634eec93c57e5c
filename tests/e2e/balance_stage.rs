//! `cmr-debias balance …` end to end (issue 4): report → plan → a synthetic folder made by hand from the plan (each
//! "generated" tensor is a copy of its mask source's tensor) → merge, on a small phantom cohort; and every "Bad input"
//! case of the issue at the binary: exit code 2, a message naming the file and field, nothing written.
use cmr_core::manifest::{sha256_file, Manifest};
use cmr_core::{CohortRow, Source, Split};
use serde_json::Value;

use crate::util::{cohort, files_under, Workspace};

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Writes `ws/dir` as a synthetic folder with one subject per plan row of `plan` (first `n` rows).
fn synthetic_from_plan(ws: &Workspace, dir: &str, n: usize, parent_of: impl Fn(&str) -> String) {
    let rows = cmr_core::cohort::read(&ws.path("cohort")).unwrap();
    let plan = std::fs::read_to_string(ws.path("plan/plan.csv")).unwrap();
    let mut lines = plan.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let out = ws.path(dir);
    std::fs::create_dir_all(out.join("tensors")).unwrap();
    let generated: Vec<CohortRow> = lines
        .take(n)
        .map(|line| {
            // Prompts hold commas: the CSV quotes them, so split the plain fields before the prompt only.
            let fields: Vec<&str> = line.split(',').collect();
            let (plan_id, seed) = (fields[col("plan_id")], fields.last().unwrap().parse::<u64>().unwrap());
            let parent = parent_of(fields[col("mask_source")]);
            let source = rows.iter().find(|r| r.subject_id == parent).unwrap();
            let tensor_path = format!("tensors/{}.safetensors", plan_id.replace(':', "_"));
            std::fs::copy(ws.path("cohort").join(&source.tensor_path), out.join(&tensor_path)).unwrap();
            CohortRow {
                subject_id: plan_id.to_string(),
                split: Split::Train,
                source: Source::Synthetic,
                parent_subject: Some(parent.clone()),
                generator_sha256: Some("ab".repeat(32)),
                seed: Some(seed),
                tensor_sha256: sha256_file(&out.join(&tensor_path)).unwrap(),
                tensor_path,
                ..source.clone()
            }
        })
        .collect();
    cmr_core::cohort::write(&out, &generated).unwrap();
    Manifest::build(&out).unwrap().write(&out).unwrap();
}

#[test]
fn report_plan_merge_on_a_phantom_cohort() {
    let ws = cohort();
    let rows = cmr_core::cohort::read(&ws.path("cohort")).unwrap();
    let train = rows.iter().filter(|r| r.split == Split::Train).count() as u64;

    // report: the strata partition the train split.
    let report = json(&ws.ok(&["balance", "report", "--cohort", "cohort", "--json"]));
    assert_eq!(report["keys"], serde_json::json!(["sex", "age_band", "bmi_class", "label"]));
    assert_eq!(report["subjects"], train);
    let sum: u64 = report["strata"].as_array().unwrap().iter().map(|s| s["subjects"].as_u64().unwrap()).sum();
    assert_eq!(sum, train);
    let text = ws.ok(&["balance", "report", "--cohort", "cohort", "--by", "sex,label"]);
    assert!(text.contains("sex × label") && text.contains("smallest strata"), "{text}");

    // plan: summary, plan files and manifest.
    let summary = json(&ws.ok(&[
        "balance",
        "plan",
        "--cohort",
        "cohort",
        "--out",
        "plan",
        "--by",
        "sex,label",
        "--seed",
        "4",
        "--json",
    ]));
    let planned = summary["planned"].as_u64().unwrap();
    assert!(planned >= 2, "{summary}");
    assert_eq!(files_under(&ws.path("plan")), ["manifest.json", "plan.csv", "plan.parquet", "summary.json"]);
    let plan_csv = std::fs::read_to_string(ws.path("plan/plan.csv")).unwrap();
    assert_eq!(plan_csv.lines().next().unwrap(), cmr_balance::plan::PLAN_COLUMNS.join(","));
    assert_eq!(plan_csv.lines().count() as u64, planned + 1);

    // merge two "generated" subjects conditioned on their plan's mask sources.
    synthetic_from_plan(&ws, "synthetic", 2, str::to_string);
    let merged = json(&ws.ok(&[
        "balance",
        "merge",
        "--cohort",
        "cohort",
        "--synthetic",
        "synthetic",
        "--out",
        "merged",
        "--json",
    ]));
    assert_eq!(merged["added"], 2);
    assert_eq!(merged["train_synthetic"], 2);
    let after = json(&ws.ok(&["balance", "report", "--cohort", "merged", "--by", "sex,label", "--json"]));
    assert_eq!((after["real"].as_u64(), after["synthetic"].as_u64()), (Some(train), Some(2)));
    let summary = json(&ws.ok(&["cohort", "summary", "merged", "--json"]));
    assert_eq!(summary["counts"]["source"]["synthetic"], 2);
    Manifest::read(&ws.path("merged")).unwrap().verify(&ws.path("merged")).unwrap();
}

#[test]
fn bad_input_fails_with_exit_2_and_writes_nothing() {
    let ws = cohort();
    let rows = cmr_core::cohort::read(&ws.path("cohort")).unwrap();
    // Each case: the arguments and the words the message must hold.
    let check = |args: &[&str], words: &[&str]| {
        let before = files_under(&ws.path(""));
        let err = ws.fails(args);
        for w in words {
            assert!(err.contains(w), "{args:?}: {w:?} not in {err}");
        }
        assert_eq!(files_under(&ws.path("")), before, "{args:?} wrote something");
    };
    fn plan(strategy: &str) -> Vec<&str> {
        let mut args =
            vec!["balance", "plan", "--cohort", "cohort", "--out", "plan", "--by", "sex,label", "--strategy"];
        args.push(strategy);
        args
    }

    // Unknown stratum column (report and plan).
    check(
        &["balance", "report", "--cohort", "cohort", "--by", "sex,ethnicity"],
        &["cohort.parquet", "unknown stratum column `ethnicity`"],
    );
    check(&["balance", "plan", "--cohort", "cohort", "--out", "plan", "--by", "vendorr"], &["`vendorr`"]);

    // A key with nulls: counted, subjects named.
    let mut nulls = rows.clone();
    let train: Vec<usize> = (0..nulls.len()).filter(|&i| nulls[i].split == Split::Train).take(2).collect();
    for &i in &train {
        nulls[i].sex = None;
    }
    std::fs::create_dir(ws.path("nulls")).unwrap();
    cmr_core::cohort::write(&ws.path("nulls"), &nulls).unwrap();
    check(
        &["balance", "plan", "--cohort", "nulls", "--out", "plan"],
        &[
            "nulls/cohort.parquet",
            "`sex`",
            "2 rows",
            nulls[train[0]].subject_id.as_str(),
            nulls[train[1]].subject_id.as_str(),
        ],
    );

    // Counts files: a stratum that does not exist, a negative count, a target below the current count.
    let report = json(&ws.ok(&["balance", "report", "--cohort", "cohort", "--by", "sex,label", "--json"]));
    let full = report["strata"].as_array().unwrap().iter().find(|s| s["subjects"].as_u64().unwrap() >= 2).unwrap();
    let (sex, label, current) =
        (full["values"][0].as_str().unwrap(), full["values"][1].as_str().unwrap(), full["subjects"].as_u64().unwrap());
    std::fs::write(ws.path("unknown.csv"), "sex,label,target\nX,1,5\n").unwrap();
    check(&plan("counts:unknown.csv"), &["unknown.csv", "line 2", "does not exist", "\"X\""]);
    std::fs::write(ws.path("negative.csv"), format!("sex,label,target\n{sex},{label},-3\n")).unwrap();
    check(&plan("counts:negative.csv"), &["negative.csv", "target (line 2)", "-3"]);
    std::fs::write(ws.path("low.csv"), format!("sex,label,target\n{sex},{label},{}\n", current - 1)).unwrap();
    check(
        &plan("counts:low.csv"),
        &["low.csv", "below its current count", format!("sex={sex}|label={label}").as_str()],
    );

    // A ratio outside (0, 1].
    check(&plan("ratio:1.5"), &["ratio:1.5", "0 < R ≤ 1"]);
    check(&plan("ratio:0"), &["ratio:0"]);

    // Synthetic rows: a parent in val or test; a tensor whose sha256 differs.
    ws.ok(&["balance", "plan", "--cohort", "cohort", "--out", "plan", "--by", "sex,label"]);
    let merge = ["balance", "merge", "--cohort", "cohort", "--synthetic", "synthetic", "--out", "merged"];
    for split in [Split::Val, Split::Test] {
        let held_out = rows.iter().find(|r| r.split == split).unwrap().subject_id.clone();
        let _ = std::fs::remove_dir_all(ws.path("synthetic"));
        synthetic_from_plan(&ws, "synthetic", 1, |_| held_out.clone());
        check(
            &merge,
            &[
                "synthetic/cohort.parquet",
                "parent_subject",
                held_out.as_str(),
                format!("in the {split} split").as_str(),
            ],
        );
    }
    let _ = std::fs::remove_dir_all(ws.path("synthetic"));
    synthetic_from_plan(&ws, "synthetic", 1, str::to_string);
    let tensor = std::fs::read_dir(ws.path("synthetic/tensors")).unwrap().next().unwrap().unwrap().path();
    std::fs::write(&tensor, b"not the generated tensor").unwrap();
    check(&merge, &[tensor.file_name().unwrap().to_str().unwrap(), "sha256 mismatch"]);
    let mut generated = cmr_core::cohort::read(&ws.path("synthetic")).unwrap();
    generated[0].tensor_sha256 = "0".repeat(64);
    cmr_core::cohort::write(&ws.path("synthetic"), &generated).unwrap();
    Manifest::build(&ws.path("synthetic")).unwrap().write(&ws.path("synthetic")).unwrap();
    check(&merge, &["synthetic/cohort.parquet", "tensor_sha256", generated[0].subject_id.as_str()]);

    // An output that exists, without --force.
    check(&plan("not-majority"), &["plan", "already exists", "--force"]);
    std::fs::create_dir(ws.path("merged")).unwrap();
    let _ = std::fs::remove_dir_all(ws.path("synthetic"));
    synthetic_from_plan(&ws, "synthetic", 1, str::to_string);
    check(&merge, &["merged", "already exists", "--force"]);
}
