//! The runner (issue 8, item 2) on stand-in stages that count their runs: records, skipping up-to-date stages, reruns
//! after a config change or a deleted output, stage selection and its errors.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use cmr_pipeline::record::StageRecord;
use cmr_pipeline::runner::{run_stages, RESOLVED_JSON};
use cmr_pipeline::stage::{Input, InputKind};
use cmr_pipeline::{Pipeline, PipelineError, RunOptions, Selection, Stage, Status};
use indicatif::ProgressBar;
use serde_json::{json, Value};

/// Writes `value.txt` = its `value` followed by its input's `value.txt`, and a manifest, atomically.
struct Echo {
    name: &'static str,
    value: String,
    upstream: Option<(&'static str, PathBuf)>,
    runs: Arc<AtomicUsize>,
}

impl Stage for Echo {
    fn name(&self) -> &'static str {
        self.name
    }

    fn config(&self) -> Value {
        json!({ "value": self.value })
    }

    fn inputs(&self) -> Vec<Input> {
        self.upstream.iter().map(|(from, dir)| Input::upstream(from, dir.clone(), InputKind::Folder)).collect()
    }

    fn run(&self, out: &Path, _bar: &ProgressBar) -> cmr_pipeline::Result<Value> {
        self.runs.fetch_add(1, Ordering::SeqCst);
        let upstream = match &self.upstream {
            Some((_, dir)) => {
                std::fs::read_to_string(dir.join("value.txt")).map_err(|e| PipelineError::stage(self.name, e))?
            }
            None => String::new(),
        };
        let dir = cmr_core::atomic::OutputDir::create(out, true)?;
        cmr_core::atomic::write_bytes(&dir.path().join("value.txt"), format!("{}{upstream}", self.value).as_bytes())?;
        cmr_core::manifest::Manifest::build(dir.path())?.write(dir.path())?;
        dir.commit()?;
        Ok(json!({ "wrote": "value.txt" }))
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    out: PathBuf,
    pipeline: Pipeline,
    runs: [Arc<AtomicUsize>; 3],
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let pipeline = Pipeline::parse("", &dir.path().join("p.toml"), &[], &|_| None, dir.path()).unwrap();
        Self { out: dir.path().join("run"), _dir: dir, pipeline, runs: Default::default() }
    }

    /// Stages a → b → c with values `values`.
    fn stages(&self, values: [&str; 3]) -> Vec<Box<dyn Stage>> {
        let names = ["a", "b", "c"];
        (0..3)
            .map(|i| {
                let upstream = (i > 0).then(|| (names[i - 1], self.out.join(names[i - 1])));
                let runs = self.runs[i].clone();
                Box::new(Echo { name: names[i], value: values[i].into(), upstream, runs }) as Box<dyn Stage>
            })
            .collect()
    }

    fn run(&self, values: [&str; 3], selection: Selection, force: bool) -> Result<Vec<Status>, PipelineError> {
        let opts = RunOptions { out: Some(self.out.clone()), selection, force, quiet: true };
        let report = run_stages(&self.pipeline, &self.stages(values), &opts)?;
        Ok(report.stages.iter().map(|s| s.status).collect())
    }

    fn runs(&self) -> [usize; 3] {
        self.runs.each_ref().map(|r| r.load(Ordering::SeqCst))
    }
}

use Status::{NotSelected, Ran, UpToDate};

#[test]
fn a_second_run_skips_every_stage_and_records_say_why() {
    let f = Fixture::new();
    assert_eq!(f.run(["1", "2", "3"], Selection::All, false).unwrap(), [Ran, Ran, Ran]);
    assert_eq!(std::fs::read_to_string(f.out.join("c/value.txt")).unwrap(), "321");
    assert!(f.out.join(RESOLVED_JSON).is_file(), "the resolved configuration is written");

    let record = StageRecord::read(&f.out.join("b")).expect("stage.json");
    assert_eq!(record.stage, "b");
    assert_eq!(record.config, json!({ "value": "2" }));
    assert_eq!(record.config_hash, cmr_pipeline::fingerprint::config_hash(&json!({ "value": "2" })));
    let upstream = f.out.join("a").display().to_string();
    assert_eq!(record.inputs.keys().collect::<Vec<_>>(), [&upstream]);
    assert_eq!(record.inputs[&upstream], cmr_pipeline::fingerprint::folder(&f.out.join("a")).unwrap());
    assert_eq!(record.outputs["value.txt"], cmr_core::manifest::sha256_hex(b"21"));
    assert_eq!(record.report, json!({ "wrote": "value.txt" }));

    assert_eq!(f.run(["1", "2", "3"], Selection::All, false).unwrap(), [UpToDate, UpToDate, UpToDate]);
    assert_eq!(f.runs(), [1, 1, 1]);
    assert_eq!(f.run(["1", "2", "3"], Selection::All, true).unwrap(), [Ran, Ran, Ran], "--force");
}

#[test]
fn a_config_change_reruns_that_stage_and_those_whose_inputs_changed() {
    let f = Fixture::new();
    f.run(["1", "2", "3"], Selection::All, false).unwrap();
    assert_eq!(f.run(["1", "X", "3"], Selection::All, false).unwrap(), [UpToDate, Ran, Ran]);
    assert_eq!(std::fs::read_to_string(f.out.join("c/value.txt")).unwrap(), "3X1");
    assert_eq!(f.runs(), [1, 2, 2]);
}

#[test]
fn a_deleted_output_reruns_its_stage_and_identical_output_keeps_later_stages() {
    let f = Fixture::new();
    f.run(["1", "2", "3"], Selection::All, false).unwrap();
    std::fs::remove_dir_all(f.out.join("b")).unwrap();
    assert_eq!(f.run(["1", "2", "3"], Selection::All, false).unwrap(), [UpToDate, Ran, UpToDate]);
    // A file deleted inside an output folder counts too.
    std::fs::remove_file(f.out.join("a/value.txt")).unwrap();
    assert_eq!(f.run(["1", "2", "3"], Selection::All, false).unwrap(), [Ran, UpToDate, UpToDate]);
    assert_eq!(f.runs(), [2, 2, 1]);
}

#[test]
fn from_and_only_select_stages_and_a_missing_upstream_output_is_named() {
    let f = Fixture::new();
    let err = f.run(["1", "2", "3"], Selection::Only("c".into()), false).unwrap_err().to_string();
    assert!(err.starts_with("stage c needs ") && err.contains("output of stage b, which is missing"), "{err}");
    assert!(err.contains("--from b"), "{err}");
    assert_eq!(f.runs(), [0, 0, 0]);

    assert_eq!(f.run(["1", "2", "3"], Selection::All, false).unwrap(), [Ran, Ran, Ran]);
    assert_eq!(f.run(["1", "2", "3"], Selection::From("b".into()), true).unwrap(), [NotSelected, Ran, Ran]);
    assert_eq!(f.run(["1", "2", "3"], Selection::Only("a".into()), true).unwrap(), [Ran, NotSelected, NotSelected]);

    let err = f.run(["1", "2", "3"], Selection::From("z".into()), false).unwrap_err().to_string();
    assert_eq!(err, "no stage \"z\" in this pipeline; its stages are a, b, c");
}

#[test]
fn a_failed_stage_leaves_no_record_and_a_killed_ones_staging_is_cleared() {
    let f = Fixture::new();
    f.run(["1", "2", "3"], Selection::All, false).unwrap();
    // A killed run's staging folder is cleared when the stage runs again; resume state is kept.
    for leftover in [".b.partial-999999", ".b.resume"] {
        std::fs::create_dir_all(f.out.join(leftover)).unwrap();
    }
    f.run(["1", "2", "3"], Selection::Only("b".into()), true).unwrap();
    assert!(!f.out.join(".b.partial-999999").exists() && f.out.join(".b.resume").exists());
    // b's input loses the file b reads: b fails, and its old record must not survive beside the old output.
    std::fs::remove_file(f.out.join("a/value.txt")).unwrap();
    let err = f.run(["1", "2", "3"], Selection::Only("b".into()), true).unwrap_err().to_string();
    assert!(err.starts_with("stage b: "), "{err}");
    assert!(f.out.join("b/value.txt").is_file(), "the old output is kept");
    assert!(StageRecord::read(&f.out.join("b")).is_none(), "no record beside an output b did not finish");
    assert_eq!(f.run(["1", "2", "3"], Selection::All, false).unwrap(), [Ran, Ran, UpToDate]);
}
