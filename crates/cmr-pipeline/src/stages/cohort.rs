//! The cohort stages: `phantom` writes the procedural cohort in a dataset layout (`cmr_phantom::run`), `cohort`
//! ingests dataset folders — the phantom's or real ones — into a cohort table and tensor store
//! (`cmr_io::ingest::run`; several folders are ingested one by one and joined).

use std::path::{Path, PathBuf};

use cmr_core::atomic::OutputDir;
use cmr_core::attributes::AttributeBins;
use cmr_core::manifest::Manifest;
use cmr_core::split::SplitFractions;
use cmr_core::{Dataset, Task};
use cmr_io::ingest::IngestConfig;
use cmr_phantom::{Layout, PhantomConfig, Scenario};
use indicatif::ProgressBar;
use serde::Serialize;
use serde_json::{json, Value};

use super::{COHORT, PHANTOM};
use crate::error::{PipelineError, Result};
use crate::stage::{callback, Input, Stage};

/// `phantom`: a procedural cohort in the ACDC or M&Ms-1 layout.
pub struct PhantomStage {
    /// Layout written.
    pub layout: Layout,
    /// Number of subjects.
    pub subjects: usize,
    /// The scenario, loaded (its content, not its path, is part of the config hash).
    pub scenario: Scenario,
    /// Root seed.
    pub seed: u64,
}

impl Stage for PhantomStage {
    fn name(&self) -> &'static str {
        PHANTOM
    }

    fn config(&self) -> Value {
        let mut scenario = serde_json::to_value(&self.scenario).unwrap_or(Value::Null);
        if let Value::Object(fields) = &mut scenario {
            fields.remove("source"); // where it was read from does not change the cohort
        }
        json!({ "layout": self.layout, "subjects": self.subjects, "seed": self.seed, "scenario": scenario })
    }

    fn inputs(&self) -> Vec<Input> {
        Vec::new()
    }

    fn run(&self, out: &Path, bar: &ProgressBar) -> Result<Value> {
        let cfg = PhantomConfig {
            out: out.into(),
            layout: self.layout,
            subjects: self.subjects,
            scenario: self.scenario.clone(),
            seed: self.seed,
            force: true,
        };
        let report = cmr_phantom::run(&cfg, &callback(bar)).map_err(|e| PipelineError::stage(PHANTOM, e))?;
        Ok(json!({
            "subjects": report.subjects.len(),
            "by_vendor": report.by_vendor,
            "by_diagnosis": report.by_diagnosis,
            "by_sex": report.by_sex,
        }))
    }
}

/// The dataset layout `ingest` reads from a phantom written in `layout`.
pub fn phantom_dataset(layout: Layout) -> Dataset {
    match layout {
        Layout::Acdc => Dataset::Acdc,
        Layout::Mnms1 => Dataset::Mnms1,
    }
}

/// What determines an ingested cohort besides the datasets' files.
#[derive(Debug, Clone, Serialize)]
pub struct IngestSettings {
    /// Task mapping diagnoses to labels.
    pub task: Task,
    /// In-plane size.
    pub size: usize,
    /// Slices per frame.
    pub slices: usize,
    /// In-plane spacing, mm.
    pub spacing: f64,
    /// Seed of the split.
    pub seed: u64,
    /// Validation share.
    pub val_fraction: f64,
    /// Test share.
    pub test_fraction: f64,
    /// Attribute bins and prompt template (their content).
    pub attributes: AttributeBins,
}

/// `cohort`: dataset folders → one cohort table + tensor store.
pub struct IngestStage {
    /// The dataset folders with their layouts (the `phantom` stage's output, or `[cohort]`'s folders).
    pub sources: Vec<(Dataset, Input)>,
    /// Everything else.
    pub settings: IngestSettings,
}

impl IngestStage {
    fn ingest(&self, dataset: Dataset, root: &Path, out: &Path, bar: &ProgressBar) -> Result<Value> {
        let s = &self.settings;
        let cfg = IngestConfig {
            dataset,
            root: root.into(),
            out: PathBuf::from(out),
            task: s.task,
            size: s.size,
            slices: s.slices,
            spacing_mm: s.spacing,
            seed: s.seed,
            force: true,
            fractions: SplitFractions { val: s.val_fraction, test: s.test_fraction },
            attributes: s.attributes.clone(),
        };
        let report = cmr_io::ingest::run(&cfg, &callback(bar)).map_err(|e| PipelineError::stage(COHORT, e))?;
        Ok(crate::stage::report_json(&report))
    }
}

impl Stage for IngestStage {
    fn name(&self) -> &'static str {
        COHORT
    }

    fn config(&self) -> Value {
        let datasets: Vec<Dataset> = self.sources.iter().map(|(d, _)| *d).collect();
        json!({ "datasets": datasets, "settings": self.settings })
    }

    fn inputs(&self) -> Vec<Input> {
        self.sources.iter().map(|(_, input)| input.clone()).collect()
    }

    fn run(&self, out: &Path, bar: &ProgressBar) -> Result<Value> {
        if let [(dataset, root)] = self.sources.as_slice() {
            return self.ingest(*dataset, &root.path, out, bar);
        }
        join(out, &self.sources, |dataset, root, part| self.ingest(dataset, root, part, bar))
    }
}

/// Ingests every source into a part folder of the staging output, then joins the parts into one cohort: rows in
/// source order, tensors under their own `tensor_path` (`tensors/<dataset>_<id>`, unique across datasets), each
/// part's `ingest.json` kept as `ingest-<dataset>.json`, a new manifest. Each dataset is split within its own sites,
/// which is what one split over the joined cohort would do, since sites do not span datasets.
fn join(
    out: &Path,
    sources: &[(Dataset, Input)],
    ingest: impl Fn(Dataset, &Path, &Path) -> Result<Value>,
) -> Result<Value> {
    let staging = OutputDir::create(out, true)?;
    let (mut rows, mut reports) = (Vec::new(), serde_json::Map::new());
    for (dataset, root) in sources {
        let part = staging.path().join(format!("part-{dataset}"));
        reports.insert(dataset.to_string(), ingest(*dataset, &root.path, &part)?);
        let part_rows = cmr_core::cohort::read(&part)?;
        for row in &part_rows {
            move_file(&part.join(&row.tensor_path), &staging.path().join(&row.tensor_path))?;
        }
        let ingest_json = staging.path().join(format!("ingest-{dataset}.json"));
        move_file(&part.join(cmr_io::ingest::INGEST_JSON), &ingest_json)?;
        std::fs::remove_dir_all(&part).map_err(|e| PipelineError::io(&part, e))?;
        rows.extend(part_rows);
    }
    cmr_core::cohort::write(staging.path(), &rows)?;
    Manifest::build(staging.path())?.write(staging.path())?;
    staging.commit()?;
    Ok(Value::Object(reports))
}

fn move_file(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| PipelineError::io(parent, e))?;
    }
    std::fs::rename(from, to).map_err(|e| PipelineError::io(from, e))
}
