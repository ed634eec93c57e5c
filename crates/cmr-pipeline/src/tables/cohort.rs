//! `[cohort]`: where the subjects come from — the built-in phantom (`layout`, `subjects`, `scenario`), a dataset
//! folder (`root` + `dataset`), or several (`[[cohort.sources]]`, each a `root` + `dataset`, joined into one cohort)
//! — and how `ingest` turns them into a cohort (`task`, `size`, `slices`, `spacing`, `val_fraction`,
//! `test_fraction`, `attributes`). The same names as `cmr-debias phantom` and `ingest`'s flags.

use std::path::PathBuf;

use cmr_core::split::SplitFractions;
use cmr_core::{Dataset, Task};
use cmr_io::ingest::IngestConfig;
use cmr_phantom::Layout;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::load::Origins;
use crate::schema::{Schema, Section};

/// The `[cohort]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CohortTable {
    /// Phantom: dataset layout written, `acdc` or `mnms1`. `None`: `acdc` (with no `root`).
    pub layout: Option<Layout>,
    /// Phantom: number of subjects. `None`: 200.
    pub subjects: Option<usize>,
    /// Phantom: bias scenario, a name in `metadata/phantom/scenarios/` or a `.toml` path. `None`: `balanced`.
    pub scenario: Option<String>,
    /// Phantom: folder holding `phantom/` (scenarios, population). `None`: `metadata` in the working directory,
    /// falling back to the built-in copies (as `cmr-debias phantom`).
    pub metadata: Option<PathBuf>,
    /// A real dataset folder (e.g. `"${ACDC_ROOT}"`); needs `dataset`. `None`: the phantom.
    pub root: Option<PathBuf>,
    /// Layout of `root`: `acdc`, `mnms1`, `mnms2` or `ukbb`.
    pub dataset: Option<Dataset>,
    /// Several dataset folders, ingested each with the options below and joined into one cohort (each split
    /// within its own sites). Empty: `root` + `dataset`, or the phantom.
    pub sources: Vec<SourceTable>,
    /// Task mapping diagnoses to labels: `hcm` or `disease`. Default `hcm`.
    pub task: Task,
    /// In-plane size of the subject tensor in pixels. Default 96.
    pub size: usize,
    /// Short-axis slices per frame. Default 8.
    pub slices: usize,
    /// In-plane spacing after resampling, mm. Default 1.5.
    pub spacing: f64,
    /// Share of each (site, label) stratum in the validation split. Default 0.15.
    pub val_fraction: f64,
    /// Share of each (site, label) stratum in the test split. Default 0.15.
    pub test_fraction: f64,
    /// Attribute bins and prompt template, used by ingest and balance. `None`: the built-in
    /// `metadata/attributes.toml`.
    pub attributes: Option<PathBuf>,
}

impl Default for CohortTable {
    fn default() -> Self {
        let ingest = IngestConfig::new(Dataset::Acdc, "", "");
        Self {
            layout: None,
            subjects: None,
            scenario: None,
            metadata: None,
            root: None,
            dataset: None,
            sources: Vec::new(),
            task: ingest.task,
            size: ingest.size,
            slices: ingest.slices,
            spacing: ingest.spacing_mm,
            val_fraction: ingest.fractions.val,
            test_fraction: ingest.fractions.test,
            attributes: None,
        }
    }
}

impl Section for CohortTable {
    fn path_offset(key: &str, value: &str) -> Option<usize> {
        match key {
            "root" | "metadata" | "attributes" => Some(0),
            // A scenario is a file when it looks like one (cmr_phantom::Scenario::load), else a name.
            "scenario" if value.ends_with(".toml") || value.contains(['/', '\\']) => Some(0),
            _ => None,
        }
    }

    fn nested() -> Vec<(&'static str, Schema)> {
        vec![("sources", Schema::of::<SourceTable>())]
    }
}

/// One `[[cohort.sources]]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourceTable {
    /// Dataset folder (e.g. `"${ACDC_ROOT}"`).
    pub root: Option<PathBuf>,
    /// Its layout: `acdc`, `mnms1`, `mnms2` or `ukbb`.
    pub dataset: Option<Dataset>,
}

impl Section for SourceTable {
    fn path_offset(key: &str, _value: &str) -> Option<usize> {
        (key == "root").then_some(0)
    }
}

/// Where the cohort's subjects come from, resolved.
#[derive(Debug, Clone, PartialEq)]
pub enum CohortSource {
    /// The built-in phantom, written by the `phantom` stage.
    Phantom {
        /// Layout written (and read back by ingest).
        layout: Layout,
        /// Number of subjects.
        subjects: usize,
        /// Scenario name or path.
        scenario: String,
        /// Folder holding `phantom/`.
        metadata: PathBuf,
    },
    /// Dataset folders, each with its layout, in the order given.
    Datasets(Vec<(Dataset, PathBuf)>),
}

const PHANTOM_KEYS: [&str; 4] = ["layout", "subjects", "scenario", "metadata"];

impl CohortTable {
    /// The source of the subjects, after checking that the phantom and dataset keys are not mixed, that every
    /// dataset folder exists (naming the environment variable it came from) and that none is given twice.
    pub fn source(&self, origins: &Origins) -> Result<CohortSource> {
        let given = self.root.is_some() || self.dataset.is_some();
        let listed: Vec<(&str, SourceTable)> = match (given, self.sources.is_empty()) {
            (false, true) => return self.phantom(origins),
            (true, false) => {
                let message = "give `root` + `dataset` or [[cohort.sources]], not both".to_string();
                return Err(origins.invalid("cohort", "sources", message));
            }
            (true, true) => vec![("cohort", SourceTable { root: self.root.clone(), dataset: self.dataset })],
            (false, false) => self.sources.iter().map(|s| ("cohort.sources", s.clone())).collect(),
        };
        let phantom =
            [self.layout.is_some(), self.subjects.is_some(), self.scenario.is_some(), self.metadata.is_some()];
        if let Some(i) = phantom.iter().position(|g| *g) {
            let message = "is a phantom option; it cannot be combined with dataset folders".to_string();
            return Err(origins.invalid("cohort", PHANTOM_KEYS[i], message));
        }
        let mut datasets: Vec<(Dataset, PathBuf)> = Vec::with_capacity(listed.len());
        for (table, source) in listed {
            let invalid = |key: &str, message: String| Err(origins.invalid(table, key, message));
            let (Some(dataset), Some(root)) = (source.dataset, source.root) else {
                return invalid(
                    "root",
                    "needs both `root` (the dataset folder) and `dataset` (acdc, mnms1, mnms2 or ukbb)".into(),
                );
            };
            if !root.is_dir() {
                let shown = root.display().to_string();
                let from = origins.raw(&format!("{table}.root"), &shown).map(|raw| format!(" (from {raw:?})"));
                let from = from.unwrap_or_default();
                return invalid("root", format!("{shown}{from} is not a folder; point it at the {dataset} dataset"));
            }
            if datasets.iter().any(|(d, _)| *d == dataset) {
                return invalid("dataset", format!("{dataset} is given twice; one folder per dataset"));
            }
            datasets.push((dataset, root));
        }
        Ok(CohortSource::Datasets(datasets))
    }

    /// The phantom with its defaults.
    fn phantom(&self, origins: &Origins) -> Result<CohortSource> {
        if self.subjects == Some(0) {
            return Err(origins.invalid("cohort", "subjects", "must be at least 1".into()));
        }
        Ok(CohortSource::Phantom {
            layout: self.layout.unwrap_or(Layout::Acdc),
            subjects: self.subjects.unwrap_or(200),
            scenario: self.scenario.clone().unwrap_or_else(|| "balanced".into()),
            metadata: self.metadata.clone().unwrap_or_else(|| "metadata".into()),
        })
    }

    /// The split fractions, checked.
    pub fn fractions(&self, origins: &Origins) -> Result<SplitFractions> {
        let fractions = SplitFractions { val: self.val_fraction, test: self.test_fraction };
        for (key, value) in [("val_fraction", fractions.val), ("test_fraction", fractions.test)] {
            if !(0.0..1.0).contains(&value) {
                return Err(origins.invalid("cohort", key, format!("must be in [0, 1), got {value}")));
            }
        }
        if fractions.val + fractions.test >= 1.0 {
            let message = format!(
                "val_fraction + test_fraction must leave a train share, got {}",
                fractions.val + fractions.test
            );
            return Err(origins.invalid("cohort", "test_fraction", message));
        }
        Ok(fractions)
    }
}
