//! `cmr-debias run` end to end (issue 8) on a reduced pipeline — a 24-subject phantom with 16-pixel, 2-slice
//! tensors, two steps of each diffusion network, two DDIM steps, a micro ViT pretrained for two epochs, two rounds of
//! each federated arm — through every stage up to the audit: the records it writes, the reports, a second run that
//! runs nothing, reruns of exactly the stages a deleted output or a changed value touches, and a stage killed
//! mid-way that resumes to the output of an uninterrupted run.

use std::path::{Path, PathBuf};

use cmr_pipeline::record::StageRecord;

use crate::util::Workspace;

/// A ViT over the cohort's `[2, 2, 16, 16]` tensors: 2×2×2 = 8 patch tokens of width 16 (as `fed_stage.rs`).
const MICRO_VIT: &str = r#"{"dim": 16, "depth": 2, "heads": 2, "volume": [2, 16, 16], "patch_depth": 1,
 "patch_size": 8, "decoder_dim": 8, "decoder_depth": 1, "decoder_heads": 2}"#;

/// The reduced pipeline; the text encoder as `scripts/fetch-assets.sh` lays it out. The disease task: with `hcm`
/// a site of the tiny cohort might lack a class.
fn write_pipeline(ws: &Workspace) {
    std::fs::write(ws.path("micro.json"), MICRO_VIT).unwrap();
    let encoder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../models/external/all-MiniLM-L6-v2");
    let text = format!(
        r#"seed = 5
[cohort]
subjects = 24
task = "disease"
size = 16
slices = 2
[diffusion]
text_encoder = "{}"
[diffusion.base]
steps = 2
batch = 2
[diffusion.controlnet]
steps = 2
batch = 2
[diffusion.generate]
steps = 2
batch = 2
[balance]
by = ["sex", "label"]
[fm]
config = "micro.json"
epochs = 2
batch = 4
[federated]
rounds = 2
lora_rank = 2
lora_blocks = 1
[audit]
bootstrap = 50
"#,
        encoder.display()
    );
    std::fs::write(ws.path("tiny.toml"), text).unwrap();
}

const STAGES: [&str; 13] = [
    "phantom",
    "cohort",
    "base",
    "controlnet",
    "plan",
    "generate",
    "merge",
    "weights",
    "fm",
    "federated-baseline",
    "federated-augmented",
    "federated-weights",
    "audit",
];

/// Runs the pipeline with `extra` flags; returns each stage's status.
fn run(ws: &Workspace, extra: &[&str]) -> Vec<(String, String)> {
    let out = ws.ok(&[&["run", "tiny.toml", "--json"][..], extra].concat());
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    let stages = report["stages"].as_array().unwrap();
    stages.iter().map(|s| (s["stage"].as_str().unwrap().into(), s["status"].as_str().unwrap().into())).collect()
}

/// The stages that ran.
fn ran(statuses: &[(String, String)]) -> Vec<&str> {
    statuses.iter().filter(|(_, status)| status == "ran").map(|(stage, _)| stage.as_str()).collect()
}

fn record(ws: &Workspace, stage: &str) -> StageRecord {
    StageRecord::read(&ws.path("runs/tiny").join(stage)).unwrap_or_else(|| panic!("runs/tiny/{stage}/stage.json"))
}

#[test]
fn run_records_skips_and_reruns_exactly_what_changed() {
    let ws = Workspace::new();
    write_pipeline(&ws);

    // 1. a first run runs every stage, in order, and records each
    let first = run(&ws, &[]);
    assert_eq!(first.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(), STAGES);
    assert_eq!(ran(&first), STAGES);
    assert!(ws.path("runs/tiny/resolved.json").is_file());
    let run_dir = ws.path("runs/tiny");
    for stage in STAGES {
        let rec = record(&ws, stage);
        assert_eq!(rec.stage, stage);
        assert_eq!(rec.config_hash, cmr_pipeline::fingerprint::config_hash(&rec.config), "{stage}");
        assert_eq!(rec.output_sha256, cmr_pipeline::fingerprint::folder(&run_dir.join(stage)).unwrap(), "{stage}");
        assert!(!rec.outputs.is_empty() && rec.seconds >= 0.0, "{stage}");
    }
    let cohort = record(&ws, "cohort");
    assert_eq!(input_of(&cohort, "runs/tiny/phantom"), record(&ws, "phantom").output_sha256);
    let merge = record(&ws, "merge");
    assert_eq!(input_of(&merge, "runs/tiny/generate"), record(&ws, "generate").output_sha256);
    assert_eq!(merge.report["added"], record(&ws, "generate").report["generated"]);
    assert!(record(&ws, "plan").report["planned"].as_u64().unwrap() > 0, "the tiny phantom is imbalanced");
    assert!(record(&ws, "weights").outputs.contains_key("weights.csv"));
    assert_eq!(input_of(&record(&ws, "federated-augmented"), "runs/tiny/merge"), merge.output_sha256);
    let weights_csv = &record(&ws, "weights").outputs["weights.csv"];
    assert_eq!(&input_of(&record(&ws, "federated-weights"), "runs/tiny/weights/weights.csv"), weights_csv);
    for arm in ["baseline", "augmented", "weights"] {
        let rec = record(&ws, &format!("federated-{arm}"));
        assert!(rec.outputs.contains_key("predictions.csv"), "{arm}");
        assert_eq!(input_of(&rec, "runs/tiny/fm"), record(&ws, "fm").output_sha256, "{arm}");
    }

    // 2. the audit: augmented against baseline at the top, weights against baseline in weights/, both recorded
    let audit = record(&ws, "audit");
    for report in ["report.html", "report.json", "weights/report.html", "weights/report.json"] {
        assert!(run_dir.join("audit").join(report).is_file() && audit.outputs.contains_key(report), "{report}");
    }
    let report = |path: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("audit").join(path)).unwrap()).unwrap()
    };
    assert_eq!(report("report.json")["config"]["labels"], serde_json::json!(["baseline", "augmented"]));
    assert_eq!(report("weights/report.json")["config"]["labels"], serde_json::json!(["baseline", "weights"]));
    assert!(!audit.report[0]["headline"].is_null(), "the comparison's headline is in the record");

    // 3. a second run runs nothing
    assert_eq!(ran(&run(&ws, &[])), Vec::<&str>::new());

    // 4. a deleted output reruns its stage; its output is identical, so the later stages stay up to date
    let plan_sha = record(&ws, "plan").output_sha256;
    std::fs::remove_dir_all(run_dir.join("plan")).unwrap();
    assert_eq!(ran(&run(&ws, &[])), ["plan"]);
    assert_eq!(record(&ws, "plan").output_sha256, plan_sha, "the plan is deterministic");

    // 5. a changed value reruns its stage and the stages its output feeds
    let changed = run(&ws, &["--set", "diffusion.generate.guidance=2.0"]);
    assert_eq!(ran(&changed), ["generate", "merge", "federated-augmented", "audit"]);
    assert_eq!(record(&ws, "generate").config["options"]["guidance"], 2.0);

    // 6. --only a stage whose upstream output is gone names the stage to run first
    std::fs::remove_dir_all(run_dir.join("generate")).unwrap();
    let err = ws.fails(&["run", "tiny.toml", "--only", "merge"]);
    assert!(err.contains("stage merge needs") && err.contains("output of stage generate"), "{err}");

    // 7. a stage killed after a checkpoint resumes, and ends as an uninterrupted run does: every file identical
    let longer = ["--only", "base", "--set", "diffusion.base.steps=12", "--set", "diffusion.base.checkpoint_every=1"];
    // killed as soon as the base stage has saved a resumable checkpoint
    let state = ws.path("runs/tiny/.base.resume/state.json");
    let args = [&["run", "tiny.toml"][..], &longer].concat();
    assert!(kill_when(&ws, &args, 120, || state.exists()), "the run ended before its first checkpoint");
    assert_eq!(ran(&run(&ws, &longer)), ["base"]);
    assert_eq!(record(&ws, "base").report["resumed_from"].as_u64().map(|s| s > 0), Some(true), "resumed");
    let resumed = record(&ws, "base").outputs;
    assert_eq!(ran(&run(&ws, &[&longer[..], &["--force"]].concat())), ["base"]);
    assert_eq!(record(&ws, "base").report["resumed_from"], 0);
    assert_eq!(record(&ws, "base").outputs, resumed, "the same files, byte for byte");
}

/// Starts `cmr-debias --quiet ARGS` and SIGKILLs it as soon as `ready()` holds; fails after `limit_s` seconds.
/// Whether it was killed while still running (false: it ended by itself first).
fn kill_when(ws: &Workspace, args: &[&str], limit_s: u64, ready: impl Fn() -> bool) -> bool {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cmr-debias"))
        .arg("--quiet")
        .args(args)
        .current_dir(ws.path(""))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn cmr-debias");
    let started = std::time::Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if ready() {
            child.kill().unwrap();
            child.wait().unwrap();
            return true;
        }
        assert!(started.elapsed().as_secs() < limit_s, "cmr-debias {args:?} still running after {limit_s} s");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

/// `kill -9` in the middle of any stage, then a rerun, ends with the output of an uninterrupted run (issue 8, "Done
/// when"). Each stage's output is deleted and the stage started alone; it is killed as soon as its hidden working
/// folder (`.{stage}.…` beside `runs/tiny/<stage>`: staging, checkpoint or partial output) appears, then run again.
#[test]
fn a_stage_killed_mid_way_reruns_to_the_uninterrupted_output() {
    let ws = Workspace::new();
    write_pipeline(&ws);
    assert_eq!(ran(&run(&ws, &[])), STAGES);
    let run_dir = ws.path("runs/tiny");
    let mut interrupted = Vec::new();
    for stage in STAGES {
        let uninterrupted = record(&ws, stage).output_sha256;
        std::fs::remove_dir_all(run_dir.join(stage)).unwrap();
        // killed as soon as the stage's hidden working folder appears
        let killed =
            kill_when(&ws, &["run", "tiny.toml", "--only", stage], 300, || !hidden_entries(&run_dir, stage).is_empty());
        // On a loaded machine the signal can land after the stage wrote its record (always its last write): then the
        // stage is complete, and the rerun finds it up to date.
        let finished_first = run_dir.join(stage).join("stage.json").exists();
        if killed && !finished_first {
            interrupted.push(stage);
        }
        let expected: &[&str] = if finished_first { &[] } else { &[stage] };
        assert_eq!(ran(&run(&ws, &["--only", stage])), expected, "{stage}");
        assert_eq!(record(&ws, stage).output_sha256, uninterrupted, "{stage}: identical after the kill");
        let leftovers: Vec<String> = hidden_entries(&run_dir, stage);
        assert!(leftovers.is_empty(), "{stage}: working folders left behind: {leftovers:?}");
    }
    eprintln!("killed while working: {interrupted:?}");
    assert!(interrupted.len() >= STAGES.len() / 2, "most stages were caught mid-way: {interrupted:?}");
}

/// Names of the hidden entries of `dir` that belong to `stage` (`.{stage}.…`).
fn hidden_entries(dir: &Path, stage: &str) -> Vec<String> {
    let prefix = format!(".{stage}.");
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(&prefix))
        .collect()
}

/// The fingerprint `rec` recorded for input `path` (relative to the workspace, as the run folder is).
fn input_of(rec: &StageRecord, path: &str) -> String {
    let key = Path::new(path).display().to_string();
    rec.inputs.get(&key).cloned().unwrap_or_else(|| panic!("{path} in {:?}", rec.inputs))
}

#[test]
fn a_bad_pipeline_is_refused_before_anything_is_written() {
    let ws = Workspace::new();
    let cases = [
        ("[cohort]\nroot = \"${CMR_E2E_UNSET_ROOT}\"\ndataset = \"acdc\"\n", "environment variable CMR_E2E_UNSET_ROOT"),
        (
            "[diffusion.generate]\nguidnace = 2.0\n",
            "unknown key `guidnace` in [diffusion.generate]; did you mean `guidance`?",
        ),
        (
            "[fm]\nmodel = \"no-such-fm\"\n[federated]\narms = [\"baseline\"]\n",
            "is not a foundation-model folder (no fm.safetensors)",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(ws.path("bad.toml"), text).unwrap();
        let err = ws.fails(&["run", "bad.toml"]);
        assert!(err.contains("bad.toml") && err.contains(expected), "{err}");
        assert!(!ws.path("runs").exists(), "nothing written for {text:?}");
    }
}
