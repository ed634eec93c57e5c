//! Procedural cardiac-MRI cohort ("phantom"): subjects drawn from a population model under a bias scenario
//! ([`scenario`], [`quota`], [`population`]), a heart built from each subject's attributes ([`anatomy`]), imaged like a
//! bSSFP short-axis cine by one of four scanner vendors ([`vendor`], [`appearance`]) and written as real NIfTI in the
//! ACDC or M&Ms-1 layout ([`writer`]), so `cmr-debias ingest` reads it with the same code as real data.
//!
//! The realism target (issue 2): a segmentation network trained on real ACDC scans segments the phantom's
//! mid-ventricular slices with Dice ≥ 0.85 per structure; `scripts/phantom-realism.py` measures it.
//!
//! ```no_run
//! use cmr_phantom::{run, Layout, PhantomConfig, Scenario};
//! let scenario = Scenario::load("balanced", std::path::Path::new("metadata"))?;
//! let cfg = PhantomConfig { out: "runs/phantom".into(), layout: Layout::Acdc, subjects: 20, scenario, seed: 0, force: false };
//! let report = run(&cfg, &|done, total| eprintln!("{done}/{total}"))?;
//! assert_eq!(report.subjects.len(), 20);
//! # Ok::<(), cmr_phantom::Error>(())
//! ```

pub mod anatomy;
pub mod appearance;
pub mod plan;
pub mod population;
pub mod quota;
pub mod scenario;
pub mod vendor;
pub mod writer;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use cmr_core::{CoreError, Sex};

pub use plan::{plan_subjects, SubjectSpec};
pub use population::Population;
pub use quota::{QuotaCell, Quotas};
pub use scenario::Scenario;
pub use vendor::Vendor;
pub use writer::Layout;

/// A phantom condition. Declared in code order (`DCM < HCM < MINF < NOR`), which is the quota tie-break order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Condition {
    /// Dilated cardiomyopathy: dilated LV, thin walls, EF < 40 %.
    #[serde(rename = "DCM")]
    Dcm,
    /// Hypertrophic cardiomyopathy: maximal wall thickness ≥ 15 mm (often asymmetric septal), small cavity, high EF.
    #[serde(rename = "HCM")]
    Hcm,
    /// Previous myocardial infarction: regional thinning and akinesis, mildly dilated LV, reduced EF.
    #[serde(rename = "MINF")]
    Minf,
    /// Normal subject.
    #[serde(rename = "NOR")]
    Nor,
}

impl Condition {
    /// All conditions in clinical order.
    pub const ALL: [Condition; 4] = [Condition::Nor, Condition::Hcm, Condition::Dcm, Condition::Minf];

    /// ACDC code (`Group` in Info.cfg); also the key in scenario files.
    pub fn acdc_code(self) -> &'static str {
        match self {
            Condition::Nor => "NOR",
            Condition::Hcm => "HCM",
            Condition::Dcm => "DCM",
            Condition::Minf => "MINF",
        }
    }

    /// M&Ms-1 code (`Pathology`): MINF is written as IHD (ischaemic heart disease).
    pub fn mnms_code(self) -> &'static str {
        match self {
            Condition::Minf => "IHD",
            other => other.acdc_code(),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.acdc_code())
    }
}

impl FromStr for Condition {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Condition::ALL
            .into_iter()
            .find(|c| c.acdc_code() == s)
            .ok_or_else(|| "a phantom condition: NOR, HCM, DCM or MINF".to_string())
    }
}

/// Errors of the phantom stage; each names the file (and field) concerned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing `path` failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A TOML file does not parse or has unknown keys (the message names the key).
    #[error("{path}: {message}")]
    Toml { path: PathBuf, message: String },
    /// A field of a metadata file has an unexpected value.
    #[error("{path}: field `{field}`: expected {expected}, got {got}")]
    Invalid { path: PathBuf, field: String, expected: String, got: String },
    /// A required table is absent.
    #[error("{path}: missing `{field}`")]
    Missing { path: PathBuf, field: String },
    /// No scenario file and no built-in scenario has this name.
    #[error("unknown phantom scenario {name:?}: {looked} does not exist and no built-in scenario has that name (built-in: {builtin}); pass a name or a .toml path")]
    UnknownScenario { name: String, looked: PathBuf, builtin: String },
    /// The configuration cannot produce a cohort.
    #[error("invalid phantom configuration: {0}")]
    Config(String),
    /// A NIfTI file could not be written.
    #[error("{path}: writing NIfTI: {source}")]
    Nifti {
        path: PathBuf,
        #[source]
        source: Box<cmr_io::Error>,
    },
    /// An error of the shared layer (atomic output folder, manifest).
    #[error(transparent)]
    Core(#[from] CoreError),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), source }
    }

    pub(crate) fn toml(path: &Path, e: toml::de::Error) -> Self {
        Self::Toml { path: path.into(), message: e.to_string().trim_end().to_string() }
    }

    pub(crate) fn invalid(
        path: &Path,
        field: impl Into<String>,
        expected: impl Into<String>,
        got: impl fmt::Debug,
    ) -> Self {
        let got = format!("{got:?}");
        Self::Invalid { path: path.into(), field: field.into(), expected: expected.into(), got }
    }

    pub(crate) fn missing(path: &Path, field: impl Into<String>) -> Self {
        Self::Missing { path: path.into(), field: field.into() }
    }
}

/// What `cmr-debias phantom` asks for.
#[derive(Debug, Clone)]
pub struct PhantomConfig {
    /// Output folder; must not exist unless `force`.
    pub out: PathBuf,
    /// Dataset layout to write.
    pub layout: Layout,
    /// Number of subjects (≥ 1).
    pub subjects: usize,
    /// Bias scenario (with its population model).
    pub scenario: Scenario,
    /// Root seed: every random stream derives from it (`cmr_core::seed`).
    pub seed: u64,
    /// Replace an existing output folder.
    pub force: bool,
}

/// Ground truth of one written subject.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SubjectTruth {
    /// Id in the layout (`patient001`, or the M&Ms external code).
    pub id: String,
    /// Scanner vendor.
    pub vendor: Vendor,
    /// Site (centre) of that vendor.
    pub site: String,
    /// Sex.
    pub sex: Sex,
    /// Age in whole years, as written.
    pub age: u32,
    /// Height in cm, as written (0.1 cm).
    pub height_cm: f64,
    /// Weight in kg, as written (0.1 kg).
    pub weight_kg: f64,
    /// Condition.
    pub diagnosis: Condition,
    /// Model LV end-diastolic volume in mL.
    pub lv_edv_ml: f64,
    /// Model LV ejection fraction in %.
    pub lv_ef_percent: f64,
    /// Model maximal ED LV wall thickness in mm.
    pub max_wall_mm: f64,
    /// Number of cine frames.
    pub frames: usize,
    /// ED frame, 0-based.
    pub ed: usize,
    /// ES frame, 0-based.
    pub es: usize,
}

/// What a phantom run wrote.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PhantomReport {
    /// The output folder.
    pub out: PathBuf,
    /// Layout written.
    pub layout: Layout,
    /// Scenario name.
    pub scenario: String,
    /// Root seed.
    pub seed: u64,
    /// Every subject, in id order.
    pub subjects: Vec<SubjectTruth>,
    /// Subjects per vendor.
    pub by_vendor: BTreeMap<String, usize>,
    /// Subjects per ACDC diagnosis code.
    pub by_diagnosis: BTreeMap<String, usize>,
    /// Subjects per sex.
    pub by_sex: BTreeMap<String, usize>,
}

/// The exact counts `scenario` prescribes for `n` subjects (see [`quota`]).
pub fn quotas(scenario: &Scenario, n: usize) -> Quotas {
    scenario.quotas(n)
}

/// Writes a phantom cohort: plans the subjects (exact quotas, seeded attributes), builds and images each one (in
/// parallel; output does not depend on the thread count) into a staging folder, writes the layout's metadata, the
/// ground-truth table `phantom_subjects.csv` and `manifest.json`, then moves the folder into place. `progress` is
/// called with (subjects done, total).
pub fn run(cfg: &PhantomConfig, progress: &(dyn Fn(usize, usize) + Sync)) -> Result<PhantomReport, Error> {
    // 1. check inputs
    if cfg.subjects == 0 {
        return Err(Error::Config("--subjects must be at least 1".into()));
    }
    // 2. plan: exact quotas, then attributes per subject
    let specs = plan_subjects(&cfg.scenario, cfg.subjects, cfg.seed, cfg.layout);
    // 3. build, image and write every subject into the staging folder
    let out = cmr_core::atomic::OutputDir::create(&cfg.out, cfg.force)?;
    let subjects = writer::write_subjects(out.path(), cfg.layout, &specs, cfg.seed, progress)?;
    // 4. metadata tables and manifest
    writer::write_tables(out.path(), cfg.layout, &subjects)?;
    cmr_core::manifest::Manifest::build(out.path())?.write(out.path())?;
    let out_path = out.commit()?;
    let count = |key: &dyn Fn(&SubjectTruth) -> String| {
        let mut map = BTreeMap::new();
        for s in &subjects {
            *map.entry(key(s)).or_insert(0) += 1;
        }
        map
    };
    Ok(PhantomReport {
        out: out_path,
        layout: cfg.layout,
        scenario: cfg.scenario.name.clone(),
        seed: cfg.seed,
        by_vendor: count(&|s| s.vendor.name().to_string()),
        by_diagnosis: count(&|s| s.diagnosis.acdc_code().to_string()),
        by_sex: count(&|s| s.sex.code().to_string()),
        subjects,
    })
}
