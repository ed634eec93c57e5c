//! `fed train` on a tiny two-site cohort: every strategy trains and scores every site's test subjects, only the
//! federated strategies communicate, a run killed between rounds resumes to the same files, and per-subject sample
//! weights weigh the loss (the weights arm, issue 8).

use std::path::{Path, PathBuf};

use candle_core::Device;
use cmr_core::{Split, Task};
use cmr_fed::federated::Strategy;
use cmr_fed::model::pretrain::{self, PretrainConfig, PretrainOptions};
use cmr_fed::model::ViTConfig;
use cmr_fed::train::{self, FedTrainConfig, FedTrainOptions};
use cmr_io::store::SubjectTensor;
use ndarray::Array4;

use crate::fixtures::{row, write_cohort};

const VOLUME: [usize; 3] = [2, 8, 8];

/// A subject whose bright disc is larger with HCM (a thick wall), plus a per-subject offset.
fn subject(hcm: bool, k: usize) -> SubjectTensor {
    let [s, h, w] = VOLUME;
    let radius = if hcm { 3.2 } else { 1.8 } + (k % 3) as f64 * 0.2;
    let mut image = Array4::<f32>::zeros((2, s, h, w));
    let mut mask = Array4::<u8>::zeros((2, s, h, w));
    for ((frame, slice, y, x), v) in image.indexed_iter_mut() {
        let d = ((y as f64 - 3.5).powi(2) + (x as f64 - 3.5).powi(2)).sqrt();
        if d < radius - 0.3 * frame as f64 {
            *v = 0.8;
            mask[[frame, slice, y, x]] = 2;
        } else {
            *v = 0.1;
        }
    }
    SubjectTensor { image, mask, spacing_mm: [8.0, 1.5, 1.5], source_sha256: vec![] }
}

/// Two sites of 6 train (3 NOR, 3 HCM) and 2 test subjects each, and a tiny foundation model pretrained on them.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let cohort = dir.join("cohort");
    let mut rows = Vec::new();
    for site in ["siteA", "siteB"] {
        for i in 0..8 {
            let diagnosis = if i % 2 == 0 { "NOR" } else { "HCM" };
            let split = if i < 6 { Split::Train } else { Split::Test };
            rows.push(row(&format!("{site}-{i}"), site, diagnosis, split));
        }
    }
    write_cohort(&cohort, &rows, |k, r| subject(r.diagnosis == "HCM", k));
    let fm = dir.join("fm");
    let vit = ViTConfig {
        dim: 16,
        depth: 2,
        heads: 2,
        volume: VOLUME,
        patch_depth: 1,
        patch_size: 4,
        decoder_dim: 8,
        decoder_depth: 1,
        decoder_heads: 2,
        ..ViTConfig::tiny()
    };
    let options = PretrainOptions { epochs: 1, batch: 4, vit, ..Default::default() };
    let cfg = PretrainConfig { cohort: cohort.clone(), out: fm.clone(), options, device: Device::Cpu, force: false };
    pretrain::run(&cfg, &mut |_| {}).unwrap();
    (cohort, fm)
}

fn config(cohort: &Path, fm: &Path, out: PathBuf, strategy: Strategy, rounds: usize) -> FedTrainConfig {
    let options = FedTrainOptions {
        task: Task::Hcm,
        rounds,
        lora_rank: 2,
        lora_blocks: 1,
        lr: Some(1e-2),
        seed: 3,
        ..FedTrainOptions::new(strategy)
    };
    FedTrainConfig { cohort: cohort.into(), fm: fm.into(), out, options, device: Device::Cpu, force: false }
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn every_strategy_scores_every_test_subject_and_only_federated_ones_communicate() {
    let dir = tempfile::tempdir().unwrap();
    let (cohort, fm) = setup(dir.path());
    let mut uploads = std::collections::BTreeMap::new();
    for strategy in Strategy::ALL {
        let out = dir.path().join(strategy.name());
        let report = train::run(&config(&cohort, &fm, out.clone(), strategy, 2), &mut |_, _| {}).unwrap();
        let csv = std::fs::read_to_string(out.join("predictions.csv")).unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "subject_id,site,y_true,y_score,y_pred", "{strategy}");
        let mut ids: Vec<&str> = lines[1..].iter().map(|l| l.split(',').next().unwrap()).collect();
        ids.sort();
        assert_eq!(ids, ["acdc:siteA-6", "acdc:siteA-7", "acdc:siteB-6", "acdc:siteB-7"], "{strategy}");
        let metrics = json(&out.join("metrics.json"));
        assert_eq!(metrics["pooled"]["n"], 4, "{strategy}");
        assert_eq!(metrics["clients"].as_object().unwrap().len(), 2, "{strategy}");
        let comm = json(&out.join("comm.json"));
        assert_eq!(comm["bytes_up"].as_u64().unwrap(), report.comm.bytes_up);
        assert_eq!(json(&out.join("rounds.json")).as_array().unwrap().len(), 2);
        assert_eq!(json(&out.join("run.json"))["strategy"], strategy.name());
        assert!(!dir.path().join(format!(".{}.training", strategy.name())).exists(), "checkpoints removed");
        if strategy.federates() {
            assert!(report.comm.bytes_up > 0 && report.comm.bytes_down > 0, "{strategy} sends its updates");
        } else {
            assert_eq!((report.comm.bytes_up, report.comm.bytes_down), (0, 0), "{strategy} sends nothing");
        }
        uploads.insert(strategy.name(), report.comm.bytes_up);
    }
    // Adapters of one block and the head against every weight of the model.
    assert!(uploads["dual-lora"] * 5 < uploads["fedavg"], "{uploads:?}");
    assert!(uploads["ffa-lora"] < uploads["fedavg-lora"] && uploads["fedsa-lora"] < uploads["fedavg-lora"]);
}

#[test]
fn a_run_killed_between_rounds_resumes_to_the_same_files() {
    let dir = tempfile::tempdir().unwrap();
    let (cohort, fm) = setup(dir.path());
    let whole = dir.path().join("whole");
    train::run(&config(&cohort, &fm, whole.clone(), Strategy::DualLora, 3), &mut |_, _| {}).unwrap();

    let resumed = dir.path().join("resumed");
    let cfg = config(&cohort, &fm, resumed.clone(), Strategy::DualLora, 3);
    let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train::run(&cfg, &mut |round, _| assert!(round < 2, "killed after round 2"))
    }));
    assert!(killed.is_err());
    assert!(!resumed.exists(), "no partial output");
    assert!(dir.path().join(".resumed.training/server").exists(), "checkpoints kept");
    train::run(&cfg, &mut |round, _| assert!(round > 2, "rounds 1 and 2 are not repeated")).unwrap();
    for file in ["predictions.csv", "metrics.json", "comm.json", "rounds.json", "run.json"] {
        assert_eq!(std::fs::read(whole.join(file)).unwrap(), std::fs::read(resumed.join(file)).unwrap(), "{file}");
    }

    // Other options do not pick up these checkpoints: refused, then discarded with force.
    let killed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        train::run(&config(&cohort, &fm, dir.path().join("other"), Strategy::DualLora, 3), &mut |_, _| panic!("kill"))
    }));
    assert!(killed.is_err());
    let other = config(&cohort, &fm, dir.path().join("other"), Strategy::FedAvg, 3);
    let err = train::run(&other, &mut |_, _| {}).unwrap_err().to_string();
    assert!(err.contains(".other.training") && err.contains("--force"), "{err}");
    train::run(&FedTrainConfig { force: true, ..other }, &mut |_, _| {}).unwrap();
}

#[test]
fn options_that_cannot_work_name_the_option() {
    let dir = tempfile::tempdir().unwrap();
    let (cohort, fm) = setup(dir.path());
    let mut cfg = config(&cohort, &fm, dir.path().join("run"), Strategy::DualLora, 1);
    cfg.options.lora_blocks = 5;
    let err = train::run(&cfg, &mut |_, _| {}).unwrap_err().to_string();
    assert!(err.contains("option `lora_blocks`") && err.contains("the model has 2 blocks"), "{err}");
    assert!(!dir.path().join("run").exists() && !dir.path().join(".run.training").exists());
    let err = "fedprox".parse::<Strategy>().unwrap_err().to_string();
    assert!(err.contains("unknown strategy \"fedprox\"") && err.contains("dual-lora"), "{err}");
}

/// Writes `text` to `dir/name`; returns the path.
fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    std::fs::write(dir.join(name), text).unwrap();
    dir.join(name)
}

/// A weights file giving every train subject of the fixture cohort `weight(is_hcm)`, plus the rows `extra`.
fn weights_file(dir: &Path, name: &str, weight: impl Fn(bool) -> f64, extra: &str) -> PathBuf {
    let mut text = String::from("subject_id,stratum,weight\n");
    for site in ["siteA", "siteB"] {
        for i in 0..6 {
            text.push_str(&format!("acdc:{site}-{i},x,{}\n", weight(i % 2 == 1)));
        }
    }
    write(dir, name, &(text + extra))
}

#[test]
fn sample_weights_weigh_the_loss_per_subject() {
    let dir = tempfile::tempdir().unwrap();
    let (cohort, fm) = setup(dir.path());
    let run = |name: &str, weights: Option<PathBuf>| {
        let mut cfg = config(&cohort, &fm, dir.path().join(name), Strategy::FedAvg, 2);
        cfg.options.local.batch = 1; // single-subject batches: a zero-weight one carries no loss and is skipped
        cfg.options.sample_weights = weights;
        train::run(&cfg, &mut |_, _| {}).unwrap();
        std::fs::read_to_string(dir.path().join(name).join("predictions.csv")).unwrap()
    };
    let plain = run("plain", None);
    let uniform = weights_file(dir.path(), "uniform.csv", |_| 0.25, "");
    assert_eq!(run("uniform", Some(uniform.clone())), plain, "equal weights leave the loss as it was");
    let sha = cmr_core::manifest::sha256_file(&uniform).unwrap();
    assert_eq!(json(&dir.path().join("uniform/run.json"))["sample_weights_sha256"], sha.as_str(), "recorded");
    assert!(json(&dir.path().join("plain/run.json")).get("sample_weights_sha256").is_none());

    let no_hcm = weights_file(dir.path(), "no-hcm.csv", |hcm| if hcm { 0.0 } else { 1.0 }, "");
    let scores = run("no-hcm", Some(no_hcm));
    assert_ne!(scores, plain, "without the HCM subjects' loss the model scores differently");
    let mean_score = |csv: &str| {
        let scores: Vec<f64> = csv.lines().skip(1).map(|l| l.split(',').nth(3).unwrap().parse().unwrap()).collect();
        scores.iter().sum::<f64>() / scores.len() as f64
    };
    assert!(mean_score(&scores) < mean_score(&plain), "trained on NOR only, it leans to NOR");
}

#[test]
fn a_weights_file_that_does_not_fit_the_cohort_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let (cohort, fm) = setup(dir.path());
    let d = dir.path();
    let cases = [
        (
            weights_file(d, "unknown.csv", |_| 1.0, "acdc:elsewhere-1,x,1\n"),
            "1 subject(s) not in the cohort, e.g. acdc:elsewhere-1",
        ),
        (write(d, "partial.csv", "subject_id,weight\nacdc:siteA-0,1\n"), "no weight for train subject `acdc:siteA-1`"),
        (write(d, "negative.csv", "subject_id,weight\nacdc:siteA-0,-1\n"), "row 1: weight \"-1\" of `acdc:siteA-0`"),
        (write(d, "columns.csv", "id,w\nacdc:siteA-0,1\n"), "no `subject_id` column"),
    ];
    for (file, expected) in cases {
        let mut cfg = config(&cohort, &fm, d.join("run"), Strategy::FedAvg, 1);
        cfg.options.sample_weights = Some(file.clone());
        let err = train::run(&cfg, &mut |_, _| {}).unwrap_err().to_string();
        assert!(err.contains(&file.display().to_string()) && err.contains(expected), "{err}");
        assert!(!d.join("run").exists() && !d.join(".run.training").exists(), "nothing written");
    }
}
