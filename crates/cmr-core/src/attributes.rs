//! Subject attributes and their bins. Bins and the prompt template are read from `metadata/attributes.toml`; the
//! repository's copy is compiled in as the default so every stage agrees without a path argument.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use serde::Deserialize;

use crate::error::{CoreError, Result};

/// The repository's `metadata/attributes.toml`, compiled in.
pub const DEFAULT_ATTRIBUTES_TOML: &str = include_str!("../../../metadata/attributes.toml");

/// Biological sex as recorded by the datasets (F/M).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub enum Sex {
    /// Female.
    F,
    /// Male.
    M,
}

impl Sex {
    /// The code stored in the cohort table.
    pub fn code(self) -> &'static str {
        match self {
            Sex::F => "F",
            Sex::M => "M",
        }
    }

    /// The word used in prompts.
    pub fn word(self) -> &'static str {
        match self {
            Sex::F => "Female",
            Sex::M => "Male",
        }
    }
}

impl fmt::Display for Sex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl FromStr for Sex {
    type Err = String;

    /// Accepts the spellings found in public CMR datasets: `F`/`M`, `female`/`male`, `0`/`1` is *not* accepted
    /// because datasets disagree on which is which.
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "f" | "female" | "woman" => Ok(Sex::F),
            "m" | "male" | "man" => Ok(Sex::M),
            other => Err(format!("F or M, got {other:?}")),
        }
    }
}

/// One bin: values below `below` (exclusive) that no earlier bin took; the last bin has no bound.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Bin {
    /// Name stored in the cohort table.
    pub label: String,
    /// Exclusive upper bound; `None` on the last bin.
    pub below: Option<f64>,
}

/// Prompt template and per-diagnosis condition phrases.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PromptSpec {
    /// Template with `{sex}`, `{decade}`, `{bmi_class}`, `{condition}` placeholders.
    pub template: String,
    /// Diagnosis code → condition phrase.
    pub condition: BTreeMap<String, String>,
}

/// Age bands, BMI classes and the prompt, as in `metadata/attributes.toml`.
#[derive(Debug, Clone, Deserialize, serde::Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AttributeBins {
    /// Age bands in increasing order.
    pub age_band: Vec<Bin>,
    /// BMI classes in increasing order.
    pub bmi_class: Vec<Bin>,
    /// Prompt template.
    pub prompt: PromptSpec,
}

impl Default for AttributeBins {
    fn default() -> Self {
        Self::parse(DEFAULT_ATTRIBUTES_TOML, Path::new("metadata/attributes.toml"))
            .expect("the compiled-in metadata/attributes.toml is valid (tested)")
    }
}

impl AttributeBins {
    /// Reads and validates an attributes file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
        Self::parse(&text, path)
    }

    /// Parses attributes TOML; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let bins: AttributeBins =
            toml::from_str(text).map_err(|e| CoreError::Table { path: path.into(), message: e.to_string() })?;
        for (field, list) in [("age_band", &bins.age_band), ("bmi_class", &bins.bmi_class)] {
            validate_bins(list)
                .map_err(|got| CoreError::invalid(path, field, "increasing bounds, last bin unbounded", got))?;
        }
        Ok(bins)
    }

    /// The age band of `age` (years).
    pub fn age_band(&self, age: f64) -> &str {
        bin_of(&self.age_band, age)
    }

    /// The BMI class of `bmi` (kg/m²).
    pub fn bmi_class(&self, bmi: f64) -> &str {
        bin_of(&self.bmi_class, bmi)
    }

    /// Labels of a binned column (`age_band` or `bmi_class`) in bin order, or `None` for another column.
    pub fn labels(&self, column: &str) -> Option<Vec<&str>> {
        let bins = match column {
            "age_band" => &self.age_band,
            "bmi_class" => &self.bmi_class,
            _ => return None,
        };
        Some(bins.iter().map(|b| b.label.as_str()).collect())
    }
}

/// Body-mass index in kg/m² from height (cm) and weight (kg); `None` when either is missing or non-positive.
///
/// ```
/// let bmi = cmr_core::attributes::bmi(Some(180.0), Some(81.0)).unwrap();
/// assert!((bmi - 25.0).abs() < 1e-12);
/// assert_eq!(cmr_core::attributes::bmi(Some(160.0), Some(64.0)), Some(25.0));
/// assert_eq!(cmr_core::attributes::bmi(Some(180.0), None), None);
/// ```
pub fn bmi(height_cm: Option<f64>, weight_kg: Option<f64>) -> Option<f64> {
    match (height_cm, weight_kg) {
        // w·10⁴/h² rather than w/(h/100)²: the latter puts 64 kg at 160 cm at 24.999…, below the WHO bound 25.
        (Some(h), Some(w)) if h > 0.0 && w > 0.0 => Some(w * 1e4 / (h * h)),
        _ => None,
    }
}

fn bin_of(bins: &[Bin], value: f64) -> &str {
    &bins[bin_index(bins, value)].label
}

/// Index of the bin of `value` in validated `bins` (increasing bounds, last one unbounded): the first bin whose
/// exclusive upper bound is above `value`, else the last.
pub fn bin_index(bins: &[Bin], value: f64) -> usize {
    bins.iter().position(|b| b.below.is_none_or(|below| value < below)).unwrap_or(bins.len().saturating_sub(1))
}

fn validate_bins(bins: &[Bin]) -> std::result::Result<(), String> {
    let Some((last, rest)) = bins.split_last() else {
        return Err("no bins".into());
    };
    if last.below.is_some() {
        return Err(format!("last bin {:?} has a bound", last.label));
    }
    let bounds: Vec<f64> = rest.iter().map(|b| b.below.unwrap_or(f64::NAN)).collect();
    if bounds.iter().any(|b| !b.is_finite()) || bounds.windows(2).any(|w| w[0] >= w[1]) {
        return Err(format!("bounds {bounds:?}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_bins_follow_who_and_decades() {
        let bins = AttributeBins::default();
        assert_eq!(bins.bmi_class(18.49), "underweight");
        assert_eq!(bins.bmi_class(18.5), "normal");
        assert_eq!(bins.bmi_class(24.99), "normal");
        assert_eq!(bins.bmi_class(25.0), "overweight");
        assert_eq!(bins.bmi_class(30.0), "obese");
        assert_eq!(bins.age_band(69.9), "60s");
        assert_eq!(bins.age_band(70.0), "70s");
        assert_eq!(bins.age_band(15.0), "<20");
        assert_eq!(bins.age_band(95.0), "80s+");
    }

    #[test]
    fn unordered_bins_are_rejected_naming_the_field() {
        let text = DEFAULT_ATTRIBUTES_TOML.replace("below = 25.0", "below = 10.0");
        let err = AttributeBins::parse(&text, Path::new("a.toml")).unwrap_err().to_string();
        assert!(err.contains("a.toml") && err.contains("bmi_class"), "{err}");
    }

    #[test]
    fn sex_parses_common_spellings_only() {
        assert_eq!("female".parse::<Sex>(), Ok(Sex::F));
        assert_eq!(" M ".parse::<Sex>(), Ok(Sex::M));
        assert!("1".parse::<Sex>().is_err());
    }
}
