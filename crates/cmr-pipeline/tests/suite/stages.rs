//! `stages::build` (issue 8): the federated stages of each arm with their inputs, the audit's reports, and
//! `[fm] model` instead of pretraining.

use std::path::{Path, PathBuf};

use cmr_pipeline::stage::Input;
use cmr_pipeline::stages::audit::Audit;
use cmr_pipeline::tables::Arm;
use cmr_pipeline::{Pipeline, Stage};

const RUN: &str = "/run";

/// `text` after a `[cohort]` table naming the repository's metadata (the phantom's scenarios).
fn build(text: &str) -> cmr_pipeline::Result<Vec<Box<dyn Stage>>> {
    let metadata = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../metadata");
    let text = format!("[cohort]\nmetadata = '{}'\n{text}", metadata.display());
    let path = Path::new("/work/pipelines/test.toml");
    let pipeline = Pipeline::parse(&text, path, &[], &|_| None, Path::new("/cwd"))?;
    cmr_pipeline::stages::build(&pipeline, Path::new(RUN))
}

fn names(stages: &[Box<dyn Stage>]) -> Vec<&'static str> {
    stages.iter().map(|s| s.name()).collect()
}

/// The inputs of stage `name` as `(path, upstream stage)`.
fn inputs(stages: &[Box<dyn Stage>], name: &str) -> Vec<(PathBuf, Option<&'static str>)> {
    let stage = stages.iter().find(|s| s.name() == name).unwrap_or_else(|| panic!("no stage {name}"));
    stage.inputs().into_iter().map(|Input { path, from, .. }| (path, from)).collect()
}

#[test]
fn each_arm_trains_on_its_cohort_from_the_pretrained_model_and_the_audit_reads_every_arm() {
    let stages = build("[federated]\narms = ['weights', 'baseline']\n").unwrap();
    let expected = ["phantom", "cohort", "weights", "fm", "federated-baseline", "federated-weights", "audit"];
    assert_eq!(names(&stages), expected);
    let (cohort, fm) = ((PathBuf::from("/run/cohort"), Some("cohort")), (PathBuf::from("/run/fm"), Some("fm")));
    assert_eq!(inputs(&stages, "fm"), std::slice::from_ref(&cohort));
    assert_eq!(inputs(&stages, "federated-baseline"), [cohort.clone(), fm.clone()]);
    let weights = (PathBuf::from("/run/weights/weights.csv"), Some("weights"));
    assert_eq!(inputs(&stages, "federated-weights"), [cohort.clone(), fm, weights]);
    let predictions = |arm: &'static str| (PathBuf::from(format!("/run/{arm}/predictions.csv")), Some(arm));
    assert_eq!(inputs(&stages, "audit"), [cohort, predictions("federated-baseline"), predictions("federated-weights")]);
    // The arms' options are one configuration: only the weights file tells them apart.
    let config = |name: &str| stages.iter().find(|s| s.name() == name).unwrap().config();
    let (baseline, weighted) = (config("federated-baseline"), config("federated-weights"));
    assert_eq!(baseline["options"], weighted["options"]);
    assert_eq!((&baseline["sample_weights"], &weighted["sample_weights"]), (&false.into(), &true.into()));
    assert_eq!(baseline["options"]["task"], "hcm", "[cohort] task when [federated] has none");
}

#[test]
fn fm_model_replaces_pretraining_and_a_missing_one_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("[fm]\nmodel = '{}'\n[federated]\narms = ['baseline']\n", dir.path().display());
    let err = build(&text).err().expect("an empty folder is not a model").to_string();
    assert!(
        err.contains("[fm] model") && err.contains("is not a foundation-model folder (no fm.safetensors)"),
        "{err}"
    );

    std::fs::write(dir.path().join("fm.safetensors"), b"").unwrap();
    let stages = build(&text).unwrap();
    assert_eq!(names(&stages), ["phantom", "cohort", "federated-baseline", "audit"]);
    assert!(inputs(&stages, "federated-baseline").contains(&(dir.path().to_path_buf(), None)), "an external input");
}

#[test]
fn the_headline_report_is_augmented_against_baseline() {
    let of =
        |arms: &[Arm]| -> Vec<(Arm, Option<&str>)> { Audit::of(arms).into_iter().map(|a| (a.arm, a.folder)).collect() };
    assert_eq!(
        of(&[Arm::Weights, Arm::Baseline, Arm::Augmented]),
        [(Arm::Augmented, None), (Arm::Weights, Some("weights"))]
    );
    assert_eq!(of(&[Arm::Baseline, Arm::Weights]), [(Arm::Weights, None)]);
    assert_eq!(of(&[Arm::Baseline]), [(Arm::Baseline, None)], "the baseline alone");
}
