//! Per-subject loss weights (`fed train --sample-weights FILE`): the weights arm of the experiment (issue 8), which
//! trains on the real cohort with a weight per train subject instead of synthetic subjects.
//!
//! The file is a CSV table with at least the columns `subject_id` and `weight` (other columns, such as the
//! `stratum` of `balance plan --strategy weights`'s `weights.csv`, are ignored): one row per subject, weights
//! finite and non-negative. Their scale does not matter: a batch's loss is the weighted mean (see
//! [`crate::train::loss`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::error::{FedError, Result};

/// The weight of every subject a weights file lists.
#[derive(Debug, Clone, PartialEq)]
pub struct SubjectWeights {
    path: PathBuf,
    weights: BTreeMap<String, f64>,
}

impl SubjectWeights {
    /// Reads the weights file `path`.
    ///
    /// # Errors
    /// [`FedError::Input`] naming the file (and the row) for an unreadable file, a missing `subject_id` or
    /// `weight` column, a weight that is not a finite non-negative number, or a subject listed twice.
    pub fn read(path: &Path) -> Result<Self> {
        let bad = |message: String| FedError::input(path, message);
        let mut reader = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
        let header = reader.headers().map_err(|e| bad(e.to_string()))?.clone();
        let column = |name: &str| {
            header
                .iter()
                .position(|h| h == name)
                .ok_or_else(|| bad(format!("no `{name}` column (header {:?}); expected subject_id and weight", header)))
        };
        let (id_column, weight_column) = (column("subject_id")?, column("weight")?);
        let mut weights = BTreeMap::new();
        for (row, record) in reader.records().enumerate() {
            let record = record.map_err(|e| bad(e.to_string()))?;
            let (id, value) =
                (record.get(id_column).unwrap_or_default(), record.get(weight_column).unwrap_or_default());
            let weight = value.parse::<f64>().ok().filter(|w| w.is_finite() && *w >= 0.0).ok_or_else(|| {
                bad(format!("row {}: weight {value:?} of `{id}` is not a finite non-negative number", row + 1))
            })?;
            if weights.insert(id.to_owned(), weight).is_some() {
                return Err(bad(format!("row {}: subject `{id}` is listed twice", row + 1)));
            }
        }
        Ok(Self { path: path.into(), weights })
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that every listed subject is one of the cohort's (`known`): weights of other subjects mean the file
    /// was made for another cohort.
    ///
    /// # Errors
    /// [`FedError::Input`] naming the file, the count and the first unknown subjects.
    pub fn check_known(&self, known: impl Fn(&str) -> bool) -> Result<()> {
        let unknown: Vec<&str> = self.weights.keys().map(String::as_str).filter(|id| !known(id)).collect();
        if unknown.is_empty() {
            return Ok(());
        }
        let first: Vec<&str> = unknown.iter().take(5).copied().collect();
        Err(FedError::input(
            &self.path,
            format!(
                "{} subject(s) not in the cohort, e.g. {}; was the file made for another cohort?",
                unknown.len(),
                first.join(", ")
            ),
        ))
    }

    /// The weight of `subject_id`.
    ///
    /// # Errors
    /// [`FedError::Input`] naming the file and the subject when the file has no weight for it.
    pub fn of(&self, subject_id: &str) -> Result<f64> {
        self.weights.get(subject_id).copied().ok_or_else(|| {
            FedError::input(&self.path, format!("no weight for train subject `{subject_id}`; every one needs a weight"))
        })
    }
}
