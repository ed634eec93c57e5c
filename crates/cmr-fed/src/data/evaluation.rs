//! Evaluation of the classifier on the test split (issue 7, item 5): balanced accuracy, sensitivity, specificity,
//! ROC AUC and MCC per client and pooled, from the predicted probability at threshold 0.5, with the definitions of
//! `cmr_core::metrics` (scikit-learn's, shared with the audit); `RUN_DIR/metrics.json`; and
//! `RUN_DIR/predictions.csv` with the columns `subject_id, site, y_true, y_score, y_pred`, which the audit stage
//! reads (`site` becomes an attribute column there). Both files are written atomically.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use cmr_core::metrics::{Metric, Sample, Undefined};

use crate::error::{FedError, Result};

/// A subject is predicted positive when its score is above this (scikit-learn's `predict` of a probabilistic
/// classifier: a score of exactly 0.5 is negative).
pub const THRESHOLD: f64 = 0.5;
/// File name of the predictions in a run folder.
pub const PREDICTIONS_CSV: &str = "predictions.csv";
/// File name of the metrics in a run folder.
pub const METRICS_JSON: &str = "metrics.json";
/// Header of [`PREDICTIONS_CSV`].
pub const PREDICTIONS_HEADER: [&str; 5] = ["subject_id", "site", "y_true", "y_score", "y_pred"];

/// The metrics reported per client and pooled, with their names in `metrics.json`.
const REPORTED: [(Metric, &str); 5] = [
    (Metric::BalancedAccuracy, "balanced_accuracy"),
    (Metric::Tpr, "sensitivity"),
    (Metric::Tnr, "specificity"),
    (Metric::Auc, "auc"),
    (Metric::Mcc, "mcc"),
];

/// The model's output for one test subject.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    /// `{dataset}:{id}` from the cohort.
    pub subject_id: String,
    /// The subject's client.
    pub site: String,
    /// The task label.
    pub y_true: bool,
    /// Predicted probability of the positive class, in \[0, 1\].
    pub y_score: f64,
}

impl Prediction {
    /// The predicted label: `y_score > THRESHOLD`.
    pub fn y_pred(&self) -> bool {
        self.y_score > THRESHOLD
    }
}

/// The metrics of one set of subjects. A metric that is undefined (say, sensitivity of a client without positive
/// test subjects) is `null`, and `undefined` says why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BinaryMetrics {
    /// Subjects.
    pub n: usize,
    /// Subjects with `y_true = 1`.
    pub positives: usize,
    /// Mean of sensitivity and specificity.
    pub balanced_accuracy: Option<f64>,
    /// TP / (TP + FN).
    pub sensitivity: Option<f64>,
    /// TN / (TN + FP).
    pub specificity: Option<f64>,
    /// Area under the ROC curve of `y_score` (ties count one half, as `roc_auc_score`).
    pub auc: Option<f64>,
    /// Matthews correlation coefficient.
    pub mcc: Option<f64>,
    /// Why each `null` metric is undefined; absent when every metric is defined.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub undefined: BTreeMap<&'static str, Undefined>,
}

impl BinaryMetrics {
    /// The metrics of `predictions`, or `None` for no predictions.
    pub fn of<'a>(predictions: impl IntoIterator<Item = &'a Prediction>) -> Option<Self> {
        let (mut y_true, mut y_pred, mut y_score) = (Vec::new(), Vec::new(), Vec::new());
        for p in predictions {
            y_true.push(p.y_true);
            y_pred.push(p.y_pred());
            y_score.push(p.y_score);
        }
        if y_true.is_empty() {
            return None;
        }
        let n = y_true.len();
        let values = Sample::of_all(&y_true, &y_pred, Some(&y_score)).metrics(&vec![1; n]);
        let mut undefined = BTreeMap::new();
        let [balanced_accuracy, sensitivity, specificity, auc, mcc] =
            REPORTED.map(|(metric, name)| match values[metric.index()] {
                Ok(value) => Some(value),
                Err(why) => {
                    undefined.insert(name, why);
                    None
                }
            });
        let positives = y_true.iter().filter(|&&t| t).count();
        Some(Self { n, positives, balanced_accuracy, sensitivity, specificity, auc, mcc, undefined })
    }
}

/// `metrics.json`: the metrics of every client and of all test subjects together.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Evaluation {
    /// The decision threshold on `y_score` ([`THRESHOLD`]).
    pub threshold: f64,
    /// All subjects together.
    pub pooled: BinaryMetrics,
    /// Per client (site), sorted by site; a client without test subjects is absent.
    pub clients: BTreeMap<String, BinaryMetrics>,
}

/// Checks the predictions — at least one, unique subject ids, scores in \[0, 1\] — and computes their metrics.
///
/// # Errors
/// [`FedError::Input`] naming `predictions.csv` and the offending subject.
pub fn evaluate(predictions: &[Prediction]) -> Result<Evaluation> {
    check(predictions)?;
    let mut by_site: BTreeMap<&str, Vec<&Prediction>> = BTreeMap::new();
    for p in predictions {
        by_site.entry(&p.site).or_default().push(p);
    }
    let clients = by_site
        .into_iter()
        .filter_map(|(site, members)| Some((site.to_string(), BinaryMetrics::of(members)?)))
        .collect();
    let pooled = BinaryMetrics::of(predictions).expect("checked non-empty");
    Ok(Evaluation { threshold: THRESHOLD, pooled, clients })
}

/// Evaluates `predictions` and writes `predictions.csv` and `metrics.json` into `run_dir` (each atomically, after
/// every check has passed). Returns the evaluation.
pub fn write_evaluation(run_dir: &Path, predictions: &[Prediction]) -> Result<Evaluation> {
    let evaluation = evaluate(predictions)?;
    write_predictions(&run_dir.join(PREDICTIONS_CSV), predictions)?;
    cmr_core::atomic::write_json(&run_dir.join(METRICS_JSON), &evaluation)?;
    Ok(evaluation)
}

/// Writes `predictions` as CSV to `path` atomically, header [`PREDICTIONS_HEADER`], labels as 0/1, scores in
/// Rust's shortest round-trip decimal form, fields quoted only where RFC 4180 needs it.
pub fn write_predictions(path: &Path, predictions: &[Prediction]) -> Result<()> {
    check(predictions)?;
    cmr_core::atomic::write_with(path, |file| {
        let mut writer = csv::Writer::from_writer(file);
        writer.write_record(PREDICTIONS_HEADER)?;
        for p in predictions {
            let (y_true, y_pred) = (u8::from(p.y_true).to_string(), u8::from(p.y_pred()).to_string());
            writer.write_record([p.subject_id.as_str(), &p.site, &y_true, &p.y_score.to_string(), &y_pred])?;
        }
        writer.flush()
    })?;
    Ok(())
}

/// Reads a [`PREDICTIONS_CSV`] written by [`write_predictions`] (e.g. a finished run that `fed compare` reuses).
///
/// # Errors
/// [`FedError::Input`] naming the file and the row when the header, a label or a score is not as written.
pub fn read_predictions(path: &Path) -> Result<Vec<Prediction>> {
    let bad = |message: String| FedError::input(path, message);
    let mut reader = csv::Reader::from_path(path).map_err(|e| bad(e.to_string()))?;
    let header = reader.headers().map_err(|e| bad(e.to_string()))?;
    if header.iter().ne(PREDICTIONS_HEADER) {
        return Err(bad(format!("header {:?}, expected {}", header, PREDICTIONS_HEADER.join(","))));
    }
    let mut predictions = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let record = record.map_err(|e| bad(e.to_string()))?;
        let field = |i: usize| record.get(i).unwrap_or_default();
        let label = |i: usize| match field(i) {
            "0" => Ok(false),
            "1" => Ok(true),
            other => Err(bad(format!("row {}: {} is {other:?}, expected 0 or 1", row + 1, PREDICTIONS_HEADER[i]))),
        };
        let y_score =
            field(3).parse().map_err(|_| bad(format!("row {}: y_score {:?} is not a number", row + 1, field(3))))?;
        predictions.push(Prediction { subject_id: field(0).into(), site: field(1).into(), y_true: label(2)?, y_score });
    }
    check(&predictions)?;
    Ok(predictions)
}

fn check(predictions: &[Prediction]) -> Result<()> {
    let bad = |message: String| Err(FedError::input(PREDICTIONS_CSV, message));
    if predictions.is_empty() {
        return bad("no test subjects to evaluate".into());
    }
    let mut seen = HashSet::new();
    for p in predictions {
        if !seen.insert(p.subject_id.as_str()) {
            return bad(format!("subject `{}` is predicted twice", p.subject_id));
        }
        if !(0.0..=1.0).contains(&p.y_score) {
            return bad(format!(
                "subject `{}` has y_score {}, expected a probability in [0, 1]",
                p.subject_id, p.y_score
            ));
        }
    }
    Ok(())
}
