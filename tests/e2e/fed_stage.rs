//! `fm pretrain` → `fed train` → `fed compare` → `audit` on the shared small phantom cohort (four ACDC-layout sites,
//! 16×16 tensors, 2 slices, disease task), with a micro ViT so the whole chain runs in seconds.

use crate::util::{cohort, Workspace};

/// A ViT over the cohort's `[2, 2, 16, 16]` tensors: 2×2×2 = 8 patch tokens of width 16.
const MICRO_VIT: &str = r#"{"dim": 16, "depth": 2, "heads": 2, "volume": [2, 16, 16], "patch_depth": 1,
 "patch_size": 8, "decoder_dim": 8, "decoder_depth": 1, "decoder_heads": 2}"#;

fn pretrained() -> Workspace {
    let ws = cohort();
    std::fs::write(ws.path("micro.json"), MICRO_VIT).unwrap();
    let args = ["fm", "pretrain", "--cohort", "cohort", "--out", "fm", "--config", "micro.json", "--epochs", "2"];
    ws.ok(&[&args[..], &["--batch", "4"]].concat());
    ws
}

/// `fed SUBCOMMAND` on the workspace's cohort and foundation model for the disease task, then `extra`.
fn fed_args<'a>(subcommand: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let common = ["fed", subcommand, "--cohort", "cohort", "--fm", "fm", "--task", "disease"];
    [&common[..], extra].concat()
}

fn test_subjects(ws: &Workspace) -> usize {
    let csv = std::fs::read_to_string(ws.path("cohort/cohort.csv")).unwrap();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let split = header.iter().position(|c| *c == "split").unwrap();
    csv.lines().skip(1).filter(|l| l.split(',').nth(split) == Some("test")).count()
}

#[test]
fn dual_lora_trains_across_sites_and_the_audit_reads_its_predictions() {
    let ws = pretrained();
    assert!(ws.path("fm/fm.safetensors").exists() && ws.path("fm/README.md").exists());
    let train = fed_args(
        "train",
        &[
            "--strategy",
            "dual-lora",
            "--rounds",
            "2",
            "--lora-blocks",
            "1",
            "--lora-rank",
            "2",
            "--out",
            "run",
            "--json",
        ],
    );
    let report: serde_json::Value = serde_json::from_str(&ws.ok(&train)).unwrap();
    assert_eq!(report["metrics"]["pooled"]["n"].as_u64().unwrap() as usize, test_subjects(&ws));
    assert!(report["bytes_up"].as_u64().unwrap() > 0);
    let comm: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.path("run/comm.json")).unwrap()).unwrap();
    assert_eq!(comm["clients"].as_object().unwrap().len(), 4, "one client per site");
    assert_eq!(comm["rounds"].as_array().unwrap().len(), 2);

    // The same command again refuses to overwrite; the audit reads the predictions with the cohort's attributes.
    assert!(ws.fails(&train).contains("run"));
    let audit = ["audit", "--predictions", "run/predictions.csv", "--cohort", "cohort", "--out", "audit"];
    ws.ok(&[&audit[..], &["--bootstrap", "50"]].concat());
    assert!(ws.path("audit/report.html").exists());
}

#[test]
fn compare_runs_every_strategy_and_seed_and_reuses_finished_runs() {
    let ws = pretrained();
    let compare = fed_args(
        "compare",
        &[
            "--strategies",
            "local,fedavg,dual-lora",
            "--seeds",
            "2",
            "--rounds",
            "1",
            "--lora-blocks",
            "1",
            "--out",
            "cmp",
        ],
    );
    ws.ok(&compare);
    let table = std::fs::read_to_string(ws.path("cmp/compare.md")).unwrap();
    for strategy in ["| local |", "| fedavg |", "| dual-lora |"] {
        assert!(table.contains(strategy), "{table}");
    }
    assert!(table.contains("Paired bootstrap"), "{table}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.path("cmp/compare.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 3);
    // Every test subject of this cohort has a disease: sensitivity is defined, specificity is not.
    assert_eq!(rows[0]["sensitivity"]["n"], 2, "two seeds");
    assert!(rows[0]["specificity"].is_null());
    assert!(rows[2]["paired"].is_null() && !rows[0]["paired"].is_null(), "dual-lora is the reference");
    assert_eq!(rows[0]["mb_total"], 0.0, "local sends nothing");
    // A second call reuses every run: the predictions are not rewritten.
    let predictions = ws.path("cmp/runs/fedavg/seed-1/predictions.csv");
    let modified = std::fs::metadata(&predictions).unwrap().modified().unwrap();
    ws.ok(&compare);
    assert_eq!(std::fs::metadata(&predictions).unwrap().modified().unwrap(), modified);
}

#[test]
fn bad_federated_input_names_what_is_wrong() {
    let ws = pretrained();
    let base = fed_args("train", &["--out", "run"]);
    let err = ws.fails(&[&base[..], &["--strategy", "fedprox"]].concat());
    assert!(err.contains("fedprox") && err.contains("dual-lora"), "{err}");
    let err = ws.fails(&[&base[..], &["--strategy", "dual-lora", "--lora-targets", "q,qkv"]].concat());
    assert!(err.contains("qkv"), "{err}");
    let err = ws.fails(&[&base[..], &["--strategy", "dual-lora", "--lora-blocks", "3"]].concat());
    assert!(err.contains("lora_blocks") && err.contains("2 blocks"), "{err}");
    // Sample weights of subjects the cohort lacks: the file is named.
    std::fs::write(ws.path("weights.csv"), "subject_id,weight\nacdc:nobody,1\n").unwrap();
    let err = ws.fails(&[&base[..], &["--strategy", "fedavg", "--sample-weights", "weights.csv"]].concat());
    assert!(err.contains("weights.csv") && err.contains("not in the cohort, e.g. acdc:nobody"), "{err}");
    // A model folder whose weights lost their checksum is refused, naming the file.
    std::fs::remove_file(ws.path("fm/fm.safetensors.sha256")).unwrap();
    let err = ws.fails(&[&base[..], &["--strategy", "fedavg"]].concat());
    assert!(err.contains("fm.safetensors"), "{err}");
    assert!(!ws.path("run").exists());
}
