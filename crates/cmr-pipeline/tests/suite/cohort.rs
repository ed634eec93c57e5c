//! The `cohort` stage over two dataset folders (issue 8, `acdc-mnms-hcm.toml`): each is ingested and the parts are
//! joined into one verified cohort folder.

use std::collections::BTreeSet;

use cmr_core::attributes::AttributeBins;
use cmr_core::manifest::Manifest;
use cmr_core::{Dataset, Task};
use cmr_phantom::{Layout, PhantomConfig, Scenario};
use cmr_pipeline::stage::{Input, InputKind};
use cmr_pipeline::stages::cohort::{IngestSettings, IngestStage};
use cmr_pipeline::Stage;
use indicatif::ProgressBar;

#[test]
fn two_datasets_join_into_one_cohort() {
    // Prepare: a 4-subject phantom in each layout.
    let dir = tempfile::tempdir().unwrap();
    let mut sources = Vec::new();
    for (layout, dataset) in [(Layout::Acdc, Dataset::Acdc), (Layout::Mnms1, Dataset::Mnms1)] {
        let out = dir.path().join(dataset.name());
        let scenario = Scenario::builtin("balanced").unwrap().unwrap();
        let cfg = PhantomConfig { out: out.clone(), layout, subjects: 4, scenario, seed: 1, force: false };
        cmr_phantom::run(&cfg, &|_, _| {}).unwrap();
        sources.push((dataset, Input::external(out, InputKind::Dataset)));
    }
    let settings = IngestSettings {
        task: Task::Disease,
        size: 16,
        slices: 2,
        spacing: 1.5,
        seed: 0,
        val_fraction: 0.15,
        test_fraction: 0.15,
        attributes: AttributeBins::default(),
    };
    let stage = IngestStage { sources, settings };

    // Execute.
    let cohort = dir.path().join("cohort");
    let report = stage.run(&cohort, &ProgressBar::hidden()).unwrap();

    // Assert: every subject of both datasets once, every file listed and intact, no part folder left.
    let rows = cmr_core::cohort::read(&cohort).unwrap();
    assert_eq!(rows.len(), 8);
    let datasets: BTreeSet<&str> = rows.iter().map(|r| r.dataset.as_str()).collect();
    assert_eq!(datasets, BTreeSet::from(["acdc", "mnms1"]));
    assert_eq!(rows.iter().map(|r| &r.subject_id).collect::<BTreeSet<_>>().len(), 8);
    let manifest = Manifest::read(&cohort).unwrap();
    manifest.verify(&cohort).unwrap();
    for row in &rows {
        assert_eq!(manifest.files[&row.tensor_path].sha256, row.tensor_sha256, "{}", row.subject_id);
    }
    assert!(manifest.files.contains_key("ingest-acdc.json") && manifest.files.contains_key("ingest-mnms1.json"));
    assert!(manifest.files.keys().all(|f| !f.starts_with("part-")), "{:?}", manifest.files.keys());
    assert_eq!(report["acdc"]["subjects"], 4);
    assert_eq!(report["mnms1"]["subjects"], 4);
}
