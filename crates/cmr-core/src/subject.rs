//! One row of the cohort table: a subject's identity, attributes, labels and provenance (DESIGN.md, "Cohort table").

use std::fmt;
use std::str::FromStr;

use crate::attributes::{self, AttributeBins, Sex};
use crate::prompt::prompt;

/// Subject-level data split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// Training subjects; the only source of synthetic data.
    Train,
    /// Validation subjects.
    Val,
    /// Held-out test subjects.
    Test,
}

/// Where a subject's images come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Acquired (or phantom) images read by `ingest`.
    Real,
    /// Images made by the diffusion stage.
    Synthetic,
}

macro_rules! name_enum {
    ($ty:ty { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Name stored in the cohort table.
            pub fn name(self) -> &'static str {
                match self { $(Self::$variant => $name),+ }
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.name()) }
        }
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($name => Ok(Self::$variant),)+
                    other => Err(format!("one of {}, got {other:?}", [$($name),+].join(", "))),
                }
            }
        }
    };
}

name_enum!(Split { Train => "train", Val => "val", Test => "test" });
name_enum!(Source { Real => "real", Synthetic => "synthetic" });

/// One subject of a cohort, with every column of the cohort table.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CohortRow {
    /// `{dataset}:{id}`, unique in a cohort.
    pub subject_id: String,
    /// Dataset name (`acdc`, `mnms1`, …).
    pub dataset: String,
    /// Acquisition site (a federated client).
    pub site: String,
    /// Scanner vendor.
    pub vendor: String,
    /// Sex, when the dataset records it.
    pub sex: Option<Sex>,
    /// Age in years.
    pub age: Option<f64>,
    /// Height in cm.
    pub height_cm: Option<f64>,
    /// Weight in kg.
    pub weight_kg: Option<f64>,
    /// Body-mass index in kg/m², derived from height and weight when the dataset has none.
    pub bmi: Option<f64>,
    /// Age band from `metadata/attributes.toml`.
    pub age_band: Option<String>,
    /// BMI class from `metadata/attributes.toml`.
    pub bmi_class: Option<String>,
    /// Diagnosis code of the source dataset.
    pub diagnosis: String,
    /// Task label (0/1).
    pub label: i32,
    /// Data split.
    pub split: Split,
    /// Real or synthetic.
    pub source: Source,
    /// For synthetic subjects: the real train subject whose mask conditioned the generation.
    pub parent_subject: Option<String>,
    /// For synthetic subjects: sha256 of the generator weights.
    pub generator_sha256: Option<String>,
    /// For synthetic subjects: the generation seed.
    pub seed: Option<u64>,
    /// Text prompt built from the attributes (empty when none is known).
    pub prompt: String,
    /// Path of the subject tensor, relative to the cohort folder.
    pub tensor_path: String,
    /// sha256 of the subject tensor file.
    pub tensor_sha256: String,
}

/// Attributes as a dataset records them, before derivation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawAttributes {
    /// Sex, if recorded.
    pub sex: Option<Sex>,
    /// Age in years, if recorded.
    pub age: Option<f64>,
    /// Height in cm, if recorded.
    pub height_cm: Option<f64>,
    /// Weight in kg, if recorded.
    pub weight_kg: Option<f64>,
    /// BMI, if recorded directly (UK-Biobank-style files).
    pub bmi: Option<f64>,
}

/// Derived attribute columns: BMI (from height and weight when absent), age band, BMI class and the prompt.
#[derive(Debug, Clone, PartialEq)]
pub struct DerivedAttributes {
    /// BMI in kg/m².
    pub bmi: Option<f64>,
    /// Age band.
    pub age_band: Option<String>,
    /// BMI class.
    pub bmi_class: Option<String>,
    /// Prompt.
    pub prompt: String,
}

impl RawAttributes {
    /// Derives BMI, bins and the prompt for a subject with `diagnosis`.
    pub fn derive(&self, bins: &AttributeBins, diagnosis: &str) -> DerivedAttributes {
        let bmi = self.bmi.or_else(|| attributes::bmi(self.height_cm, self.weight_kg));
        let age_band = self.age.map(|a| bins.age_band(a).to_string());
        let bmi_class = bmi.map(|b| bins.bmi_class(b).to_string());
        let prompt = prompt(bins, self.sex, self.age, bmi_class.as_deref(), Some(diagnosis));
        DerivedAttributes { bmi, age_band, bmi_class, prompt }
    }
}
