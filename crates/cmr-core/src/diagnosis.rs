//! Datasets, their diagnosis codes, and the task labels derived from them.

use std::fmt;
use std::str::FromStr;

/// A source dataset layout that `ingest` can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dataset {
    /// ACDC (MICCAI 2017): <https://www.creatis.insa-lyon.fr/Challenge/acdc/>.
    Acdc,
    /// M&Ms-1 (MICCAI 2020): <https://www.ub.edu/mnms/>.
    Mnms1,
    /// M&Ms-2 (MICCAI 2021): <https://www.ub.edu/mnms-2/>.
    Mnms2,
    /// A UK-Biobank-style folder per subject plus a metadata CSV.
    Ukbb,
}

impl Dataset {
    /// All datasets, in CLI order.
    pub const ALL: [Dataset; 4] = [Dataset::Acdc, Dataset::Mnms1, Dataset::Mnms2, Dataset::Ukbb];

    /// Name used in subject ids, the `dataset` column and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Acdc => "acdc",
            Dataset::Mnms1 => "mnms1",
            Dataset::Mnms2 => "mnms2",
            Dataset::Ukbb => "ukbb",
        }
    }

    /// The diagnosis codes the dataset uses.
    pub fn diagnosis_codes(self) -> &'static [&'static str] {
        match self {
            Dataset::Acdc => &["NOR", "MINF", "DCM", "HCM", "RV"],
            Dataset::Mnms1 => &["NOR", "DCM", "HCM", "HHD", "ARV", "AHS", "IHD", "LVNC"],
            Dataset::Mnms2 => &["NOR", "LV", "HCM", "ARR", "FALL", "CIA", "RV", "TRI"],
            // A UK-Biobank-style metadata file may use any code of the public datasets.
            Dataset::Ukbb => &[
                "NOR", "MINF", "DCM", "HCM", "RV", "HHD", "ARV", "AHS", "IHD", "LVNC", "LV", "ARR", "FALL", "CIA",
                "TRI",
            ],
        }
    }

    /// Normalises a diagnosis string of this dataset to its code, or explains what was expected.
    pub fn parse_diagnosis(self, raw: &str) -> Result<&'static str, String> {
        let wanted = raw.trim().to_ascii_uppercase();
        self.diagnosis_codes()
            .iter()
            .copied()
            .find(|code| *code == wanted)
            .ok_or_else(|| format!("one of {}", self.diagnosis_codes().join(", ")))
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dataset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dataset::ALL
            .into_iter()
            .find(|d| d.name() == s)
            .ok_or_else(|| format!("unknown dataset {s:?}; expected one of acdc, mnms1, mnms2, ukbb"))
    }
}

/// The classification task that turns a diagnosis into a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// NOR vs HCM (Linardos et al. 2022): HCM = 1, NOR = 0, other diagnoses excluded.
    #[default]
    Hcm,
    /// Normal vs any disease (Med-DualLoRA): NOR = 0, anything else = 1.
    Disease,
}

impl Task {
    /// Name on the command line and in pipeline files.
    pub fn name(self) -> &'static str {
        match self {
            Task::Hcm => "hcm",
            Task::Disease => "disease",
        }
    }

    /// The label of a diagnosis code, or `None` when the task excludes it.
    ///
    /// ```
    /// use cmr_core::Task;
    /// assert_eq!(Task::Hcm.label("HCM"), Some(1));
    /// assert_eq!(Task::Hcm.label("DCM"), None);
    /// assert_eq!(Task::Disease.label("DCM"), Some(1));
    /// assert_eq!(Task::Disease.label("NOR"), Some(0));
    /// ```
    pub fn label(self, diagnosis: &str) -> Option<i32> {
        match (self, diagnosis) {
            (_, "NOR") => Some(0),
            (Task::Hcm, "HCM") => Some(1),
            (Task::Hcm, _) => None,
            (Task::Disease, _) => Some(1),
        }
    }
}

impl FromStr for Task {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hcm" => Ok(Task::Hcm),
            "disease" => Ok(Task::Disease),
            other => Err(format!("unknown task {other:?}; expected hcm or disease")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diagnosis_codes_are_checked_per_dataset() {
        assert_eq!(Dataset::Acdc.parse_diagnosis("minf"), Ok("MINF"));
        assert!(Dataset::Mnms1.parse_diagnosis("MINF").unwrap_err().contains("IHD"));
        assert_eq!(Dataset::Mnms2.parse_diagnosis("FALL"), Ok("FALL"));
    }
}
