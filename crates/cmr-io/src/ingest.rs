//! `ingest`: a dataset folder → a cohort folder (DESIGN.md, stage 1 "cohort"):
//!
//! ```text
//! COHORT_DIR/
//!   ingest.json                          resolved configuration (written first)
//!   tensors/<dataset>_<id>.safetensors   one subject tensor per subject (crate::store)
//!   cohort.parquet, cohort.csv           the cohort table (cmr_core::cohort)
//!   manifest.json                        sha256 of every file above
//! ```
//!
//! The folder is built in a hidden staging sibling and renamed into place only when every subject succeeded, so a
//! failure leaves nothing behind; an existing folder is replaced only with `force`. Subjects are processed on all
//! cores; the outputs do not depend on the number of threads (same inputs and seed → byte-identical files).

use std::path::{Path, PathBuf};

use cmr_core::atomic::{self, OutputDir};
use cmr_core::attributes::AttributeBins;
use cmr_core::manifest::Manifest;
use cmr_core::parallel;
use cmr_core::split::{self, SplitFractions, SplitKey};
use cmr_core::{CohortRow, Dataset, Source, Task};

use crate::adapters::{self, SubjectRecord};
use crate::error::{Error, Result};
use crate::frames;
use crate::labels::LabelMap;
use crate::preprocess::{preprocess, PreprocessConfig, HIGH_PERCENTILE, LOW_PERCENTILE};
use crate::store::write_tensor;

/// File name of the resolved configuration inside a cohort folder.
pub const INGEST_JSON: &str = "ingest.json";
/// Folder of the subject tensors inside a cohort folder.
pub const TENSORS_DIR: &str = "tensors";

/// Everything `ingest` needs, resolved (CLI flags or pipeline file).
#[derive(Debug, Clone, PartialEq)]
pub struct IngestConfig {
    /// Dataset layout of `root`.
    pub dataset: Dataset,
    /// Dataset folder.
    pub root: PathBuf,
    /// Cohort folder to write; must not exist unless `force`.
    pub out: PathBuf,
    /// Task mapping diagnoses to labels (subjects it excludes are left out).
    pub task: Task,
    /// In-plane size `H = W` of the subject tensor (default 96).
    pub size: usize,
    /// Slices `S` per frame (default 8).
    pub slices: usize,
    /// In-plane spacing after resampling in mm (default 1.5).
    pub spacing_mm: f64,
    /// Seed of the train/val/test split.
    pub seed: u64,
    /// Replace an existing `out`.
    pub force: bool,
    /// Validation and test shares of each (site, label) stratum.
    pub fractions: SplitFractions,
    /// Attribute bins and prompt template.
    pub attributes: AttributeBins,
}

impl IngestConfig {
    /// A config with the defaults: task `hcm`, 96 × 96 pixels, 8 slices, 1.5 mm, seed 0, fractions 0.15 / 0.15,
    /// the built-in attribute bins, no `force`.
    pub fn new(dataset: Dataset, root: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        let geometry = PreprocessConfig::default();
        Self {
            dataset,
            root: root.into(),
            out: out.into(),
            task: Task::default(),
            size: geometry.size,
            slices: geometry.slices,
            spacing_mm: geometry.spacing_mm,
            seed: 0,
            force: false,
            fractions: SplitFractions::default(),
            attributes: AttributeBins::default(),
        }
    }

    fn geometry(&self) -> PreprocessConfig {
        PreprocessConfig { size: self.size, slices: self.slices, spacing_mm: self.spacing_mm }
    }
}

/// What `ingest` did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct IngestReport {
    /// Subjects written.
    pub subjects: usize,
    /// Subject ids (`{dataset}:{id}`) whose diagnosis the task excludes.
    pub excluded_by_task: Vec<String>,
    /// Subject ids listed in the metadata whose image files are absent.
    pub skipped_missing_images: Vec<String>,
    /// The cohort folder.
    pub out: PathBuf,
}

/// The resolved configuration as written to `ingest.json`.
#[derive(serde::Serialize)]
struct Resolved<'a> {
    tool: String,
    dataset: &'static str,
    root: &'a Path,
    task: &'static str,
    #[serde(flatten)]
    geometry: PreprocessConfig,
    seed: u64,
    val_fraction: f64,
    test_fraction: f64,
    attributes: &'a AttributeBins,
    conventions: Conventions,
}

/// How the tensors were made, for people reading `ingest.json` (details in `crate::preprocess`).
#[derive(serde::Serialize)]
struct Conventions {
    tensor: &'static str,
    in_plane: &'static str,
    slices: &'static str,
    intensity: String,
}

/// Runs `ingest`; `progress(done, total)` is called as subjects finish (from worker threads).
///
/// # Errors
/// [`Error::Core`] (`OutputExists`) when `cfg.out` exists without `force`; [`Error::Invalid`] for a zero size or
/// slice count or a non-positive spacing; [`Error::NoSubjects`] when nothing is left after the task; any error of
/// discovery, reading or preprocessing, naming the file and field. No output is left behind on error.
pub fn run(cfg: &IngestConfig, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<IngestReport> {
    // 1. check inputs and claim the output folder
    let geometry = cfg.geometry();
    if geometry.size == 0 || geometry.slices == 0 || !(geometry.spacing_mm > 0.0 && geometry.spacing_mm.is_finite()) {
        return Err(Error::invalid(
            &cfg.out,
            "size, slices, spacing_mm",
            "size ≥ 1, slices ≥ 1, spacing > 0",
            format!("{geometry:?}"),
        ));
    }
    let out = OutputDir::create(&cfg.out, cfg.force)?;

    // 2. write the resolved configuration before any work
    atomic::write_json(&out.path().join(INGEST_JSON), &resolved(cfg))?;

    // 3. find subjects and apply the task
    let found = adapters::discover(cfg.dataset, &cfg.root)?;
    let subject_id = |id: &str| format!("{}:{id}", cfg.dataset.name());
    let (kept, excluded): (Vec<_>, Vec<_>) = found.subjects.iter().partition(|r| cfg.task.label(r.diagnosis).is_some());
    let excluded_by_task: Vec<String> = excluded.iter().map(|r| subject_id(&r.id)).collect();
    if kept.is_empty() {
        return Err(Error::NoSubjects {
            root: cfg.root.clone(),
            dataset: cfg.dataset.name().into(),
            task: cfg.task.name().into(),
            found: found.subjects.len(),
            excluded: excluded.len(),
            skipped: found.skipped_missing_images.len(),
        });
    }

    // 4. subject tensors, in parallel
    let tensors = out.path().join(TENSORS_DIR);
    std::fs::create_dir(&tensors).map_err(|e| Error::io(&tensors, e))?;
    let labels = LabelMap::of(cfg.dataset);
    let written = parallel::map_in_order(&kept, progress, |record| -> Result<(String, String)> {
        let subject = frames::load(record, labels)?;
        let tensor = preprocess(&subject, &geometry)?;
        let relative = format!("{TENSORS_DIR}/{}_{}.safetensors", cfg.dataset.name(), record.id);
        let sha256 = write_tensor(&out.path().join(&relative), &tensor)?;
        Ok((relative, sha256))
    })?;

    // 5. cohort table with seeded splits
    let ids: Vec<String> = kept.iter().map(|r| subject_id(&r.id)).collect();
    let labels: Vec<i32> = kept.iter().map(|r| cfg.task.label(r.diagnosis).expect("kept by the task")).collect();
    let keys: Vec<SplitKey<'_>> = kept
        .iter()
        .zip(&ids)
        .zip(&labels)
        .map(|((r, id), &label)| SplitKey { subject_id: id, site: &r.site, label })
        .collect();
    let splits = split::assign(&keys, cfg.fractions, cfg.seed);
    let rows: Vec<CohortRow> = kept
        .iter()
        .zip(ids)
        .zip(labels)
        .zip(splits)
        .zip(written)
        .map(|((((record, subject_id), label), split), (tensor_path, tensor_sha256))| {
            row(record, subject_id, label, split, tensor_path, tensor_sha256, cfg)
        })
        .collect();
    cmr_core::cohort::write(out.path(), &rows)?;

    // 6. manifest, then move the folder into place
    Manifest::build(out.path())?.write(out.path())?;
    let out = out.commit()?;
    Ok(IngestReport {
        subjects: rows.len(),
        excluded_by_task,
        skipped_missing_images: found.skipped_missing_images.iter().map(|id| subject_id(id)).collect(),
        out,
    })
}

fn row(
    record: &SubjectRecord,
    subject_id: String,
    label: i32,
    split: cmr_core::Split,
    tensor_path: String,
    tensor_sha256: String,
    cfg: &IngestConfig,
) -> CohortRow {
    let a = &record.attributes;
    let derived = a.derive(&cfg.attributes, record.diagnosis);
    CohortRow {
        subject_id,
        dataset: cfg.dataset.name().into(),
        site: record.site.clone(),
        vendor: record.vendor.clone(),
        sex: a.sex,
        age: a.age,
        height_cm: a.height_cm,
        weight_kg: a.weight_kg,
        bmi: derived.bmi,
        age_band: derived.age_band,
        bmi_class: derived.bmi_class,
        diagnosis: record.diagnosis.into(),
        label,
        split,
        source: Source::Real,
        parent_subject: None,
        generator_sha256: None,
        seed: None,
        prompt: derived.prompt,
        tensor_path,
        tensor_sha256,
    }
}

fn resolved(cfg: &IngestConfig) -> Resolved<'_> {
    Resolved {
        tool: format!("cmr-io {}", env!("CARGO_PKG_VERSION")),
        dataset: cfg.dataset.name(),
        root: &cfg.root,
        task: cfg.task.name(),
        geometry: cfg.geometry(),
        seed: cfg.seed,
        val_fraction: cfg.fractions.val,
        test_fraction: cfg.fractions.test,
        attributes: &cfg.attributes,
        conventions: Conventions {
            tensor: "image f32 [2, S, H, W] (ED, ES) in [0, 1]; mask u8 canonical labels 0 bg, 1 LV, 2 MYO, 3 RV",
            in_plane: "rows = NIfTI x, columns = NIfTI y as stored (no flips); crop centred on the ED LV centroid",
            slices: "stored NIfTI z order, index 0 taken as the base; S slices spread over the ED LV span",
            intensity: format!("clipped to the {LOW_PERCENTILE}-{HIGH_PERCENTILE} percentiles of the ED and ES volumes, scaled to [0, 1]"),
        },
    }
}
