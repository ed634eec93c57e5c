//! Binary-classification metrics on (bootstrap-)weighted subjects, shared by the stages that score a classifier:
//! `cmr-audit` per subgroup (issue 5) and `cmr-fed` per client and pooled (issue 7). Pure math on labels,
//! predictions and scores; no files.
//!
//! Definitions follow scikit-learn (`balanced_accuracy_score`, `roc_auc_score`, `matthews_corrcoef`, `recall_score`,
//! …) and Fairlearn (`selection_rate`, `true_negative_rate`, …), with one difference on purpose (issue 5): where a
//! metric is undefined — a rate over an empty class, AUC without both classes, MCC with an empty row or column of
//! the confusion matrix — the value is [`Undefined`] with its reason, never 0 or NaN. scikit-learn instead returns
//! 0 (`zero_division`, MCC) or silently averages over the classes present (balanced accuracy).
//!
//! A subject drawn `w` times by the bootstrap counts `w` times: confusion counts are weighted sums, and AUC is the
//! weighted Mann–Whitney statistic (ties count one half), which equals the trapezoidal area under the ROC curve that
//! `roc_auc_score` computes (ties of scores included).
//!
//! ```
//! use cmr_core::metrics::{Metric, Sample};
//! // TP, FN, TN, FP with scores; AUC: the positives 0.9 and 0.4 beat 2 and 1 of the negatives 0.6, 0.1.
//! let sample = Sample::of_all(&[true, true, false, false], &[true, false, false, true], Some(&[0.9, 0.4, 0.1, 0.6]));
//! let values = sample.metrics(&[1; 4]);
//! assert_eq!(values[Metric::BalancedAccuracy.index()], Ok(0.5));
//! assert_eq!(values[Metric::Auc.index()], Ok(0.75));
//! ```

use std::fmt;

/// A metric reported per group. `n` and `positives` are counts and reported beside these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Share of subjects with `y_true = 1`.
    Prevalence,
    /// Share of correct predictions.
    Accuracy,
    /// Mean of TPR and TNR.
    BalancedAccuracy,
    /// Sensitivity, recall: TP / (TP + FN).
    Tpr,
    /// Specificity: TN / (TN + FP).
    Tnr,
    /// FP / (FP + TN).
    Fpr,
    /// FN / (FN + TP).
    Fnr,
    /// Precision: TP / (TP + FP).
    Ppv,
    /// 2·TP / (2·TP + FP + FN).
    F1,
    /// Share of subjects predicted positive.
    SelectionRate,
    /// Area under the ROC curve of `y_score`.
    Auc,
    /// Matthews correlation coefficient.
    Mcc,
}

/// Number of [`Metric`]s.
pub const METRIC_COUNT: usize = 12;

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; METRIC_COUNT] = [
        Metric::Prevalence,
        Metric::Accuracy,
        Metric::BalancedAccuracy,
        Metric::Tpr,
        Metric::Tnr,
        Metric::Fpr,
        Metric::Fnr,
        Metric::Ppv,
        Metric::F1,
        Metric::SelectionRate,
        Metric::Auc,
        Metric::Mcc,
    ];

    /// Name in the reports (`balanced_accuracy`, `tpr`, …).
    pub fn name(self) -> &'static str {
        match self {
            Metric::Prevalence => "prevalence",
            Metric::Accuracy => "accuracy",
            Metric::BalancedAccuracy => "balanced_accuracy",
            Metric::Tpr => "tpr",
            Metric::Tnr => "tnr",
            Metric::Fpr => "fpr",
            Metric::Fnr => "fnr",
            Metric::Ppv => "ppv",
            Metric::F1 => "f1",
            Metric::SelectionRate => "selection_rate",
            Metric::Auc => "auc",
            Metric::Mcc => "mcc",
        }
    }

    /// Words for people (Markdown and HTML reports).
    pub fn title(self) -> &'static str {
        match self {
            Metric::Prevalence => "prevalence",
            Metric::Accuracy => "accuracy",
            Metric::BalancedAccuracy => "balanced accuracy",
            Metric::Tpr => "sensitivity (TPR)",
            Metric::Tnr => "specificity (TNR)",
            Metric::Fpr => "false-positive rate",
            Metric::Fnr => "false-negative rate",
            Metric::Ppv => "precision (PPV)",
            Metric::F1 => "F1",
            Metric::SelectionRate => "selection rate",
            Metric::Auc => "AUC",
            Metric::Mcc => "MCC",
        }
    }

    /// Position in [`Metric::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Why a value is not defined. Serialized as its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undefined {
    /// The group has no subjects with `y_true = 1`.
    NoPositives,
    /// The group has no subjects with `y_true = 0`.
    NoNegatives,
    /// The model predicts no subject of the group positive.
    NoPredictedPositives,
    /// The model predicts no subject of the group negative.
    NoPredictedNegatives,
    /// The predictions file has no `y_score` column.
    NoScores,
    /// A disparity needs a defined value in at least two groups.
    FewerThanTwoGroups,
    /// No group of the grouping has a defined value.
    NoGroup,
    /// A ratio whose largest group value is 0.
    ZeroMaximum,
    /// A ratio over values of both signs (only MCC can be negative) has no meaning.
    NegativeValues,
}

impl fmt::Display for Undefined {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Undefined::NoPositives => "no subjects with y_true = 1",
            Undefined::NoNegatives => "no subjects with y_true = 0",
            Undefined::NoPredictedPositives => "no subjects predicted positive",
            Undefined::NoPredictedNegatives => "no subjects predicted negative",
            Undefined::NoScores => "no y_score column",
            Undefined::FewerThanTwoGroups => "fewer than two groups with a defined value",
            Undefined::NoGroup => "no group with a defined value",
            Undefined::ZeroMaximum => "the largest group value is 0",
            Undefined::NegativeValues => "a group value is negative",
        })
    }
}

impl serde::Serialize for Undefined {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// A metric value or the reason it has none.
pub type Value = Result<f64, Undefined>;

/// The values of every metric, indexed by [`Metric::index`].
pub type Values = [Value; METRIC_COUNT];

/// One group's subjects as one model saw them, in group-local order (position `k` is the group's `k`-th member).
#[derive(Debug, Clone)]
pub struct Sample {
    /// Confusion cell of each subject: `2·y_true + y_pred` (0 TN, 1 FP, 2 FN, 3 TP).
    cells: Vec<u8>,
    /// Subjects sorted by score, cut into blocks of equal score; `None` without scores.
    ranking: Option<Ranking>,
}

#[derive(Debug, Clone)]
struct Ranking {
    /// Group-local positions in increasing score order.
    order: Vec<u32>,
    /// End (exclusive, into `order`) of each run of equal scores.
    block_ends: Vec<u32>,
}

impl Sample {
    /// The sample of the subjects `members` (indices into the full arrays).
    ///
    /// # Panics
    /// If a member index is out of range of `y_true`, `y_pred` or `y_score` (a programmer error).
    pub fn new(members: &[usize], y_true: &[bool], y_pred: &[bool], y_score: Option<&[f64]>) -> Self {
        let cells = members.iter().map(|&i| 2 * u8::from(y_true[i]) + u8::from(y_pred[i])).collect();
        let ranking = y_score.map(|scores| {
            let local: Vec<f64> = members.iter().map(|&i| scores[i]).collect();
            let mut order: Vec<u32> = (0..local.len() as u32).collect();
            order.sort_by(|&a, &b| local[a as usize].total_cmp(&local[b as usize]));
            let mut block_ends = Vec::new();
            for k in 1..=order.len() {
                if k == order.len() || local[order[k] as usize] != local[order[k - 1] as usize] {
                    block_ends.push(k as u32);
                }
            }
            Ranking { order, block_ends }
        });
        Self { cells, ranking }
    }

    /// The sample of every subject of the arrays, in their order.
    ///
    /// # Panics
    /// If `y_pred` or `y_score` is shorter than `y_true` (a programmer error).
    pub fn of_all(y_true: &[bool], y_pred: &[bool], y_score: Option<&[f64]>) -> Self {
        Self::new(&(0..y_true.len()).collect::<Vec<_>>(), y_true, y_pred, y_score)
    }

    /// Confusion counts with subject `k` counted `weights[k]` times.
    pub fn confusion(&self, weights: &[u32]) -> Confusion {
        let mut counts = [0u64; 4];
        for (&cell, &w) in self.cells.iter().zip(weights) {
            counts[cell as usize] += u64::from(w);
        }
        let [tn, fp, fn_, tp] = counts;
        Confusion { tp, fp, tn, fn_ }
    }

    /// Every metric with subject `k` counted `weights[k]` times (all ones for the point estimate).
    pub fn metrics(&self, weights: &[u32]) -> Values {
        let c = self.confusion(weights);
        let auc = match &self.ranking {
            None => Err(Undefined::NoScores),
            Some(ranking) => self.auc(ranking, weights, &c),
        };
        c.metrics(auc)
    }

    /// Weighted Mann–Whitney AUC: P(score of a positive > score of a negative) + ½·P(equal).
    fn auc(&self, ranking: &Ranking, weights: &[u32], c: &Confusion) -> Value {
        let (positives, negatives) = (c.positives(), c.negatives());
        if positives == 0 {
            return Err(Undefined::NoPositives);
        }
        if negatives == 0 {
            return Err(Undefined::NoNegatives);
        }
        // Walk the score blocks upwards: each positive beats every negative below its block and ties half of the
        // negatives in it. Sums of integer weights stay exact in u64 (doubled to keep the halves integral).
        let (mut negatives_below, mut twice_wins, mut start) = (0u64, 0u64, 0usize);
        for &end in &ranking.block_ends {
            let (mut pos, mut neg) = (0u64, 0u64);
            for &k in &ranking.order[start..end as usize] {
                let w = u64::from(weights[k as usize]);
                if self.cells[k as usize] >= 2 {
                    pos += w;
                } else {
                    neg += w;
                }
            }
            twice_wins += pos * (2 * negatives_below + neg);
            negatives_below += neg;
            start = end as usize;
        }
        Ok(twice_wins as f64 / (2.0 * positives as f64 * negatives as f64))
    }
}

/// Weighted confusion counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Confusion {
    /// True positives.
    pub tp: u64,
    /// False positives.
    pub fp: u64,
    /// True negatives.
    pub tn: u64,
    /// False negatives.
    pub fn_: u64,
}

impl Confusion {
    /// Subjects (weighted).
    pub fn n(&self) -> u64 {
        self.tp + self.fp + self.tn + self.fn_
    }

    /// Subjects with `y_true = 1`.
    pub fn positives(&self) -> u64 {
        self.tp + self.fn_
    }

    /// Subjects with `y_true = 0`.
    pub fn negatives(&self) -> u64 {
        self.tn + self.fp
    }

    /// Every metric from these counts; `auc` is computed by the caller (it needs the scores).
    ///
    /// # Panics
    /// If the counts are all zero (a group always has subjects).
    pub fn metrics(&self, auc: Value) -> Values {
        let Confusion { tp, fp, tn, fn_ } = *self;
        let n = self.n();
        assert!(n > 0, "metrics of an empty group");
        let (pos, neg, pred_pos, pred_neg) = (tp + fn_, tn + fp, tp + fp, tn + fn_);
        let rate = |num: u64, den: u64, why: Undefined| if den == 0 { Err(why) } else { Ok(num as f64 / den as f64) };
        let tpr = rate(tp, pos, Undefined::NoPositives);
        let tnr = rate(tn, neg, Undefined::NoNegatives);
        let balanced = tpr.and_then(|t| tnr.map(|s| (t + s) / 2.0));
        let mcc = if pos == 0 {
            Err(Undefined::NoPositives)
        } else if neg == 0 {
            Err(Undefined::NoNegatives)
        } else if pred_pos == 0 {
            Err(Undefined::NoPredictedPositives)
        } else if pred_neg == 0 {
            Err(Undefined::NoPredictedNegatives)
        } else {
            let (tp, fp, tn, fn_) = (tp as f64, fp as f64, tn as f64, fn_ as f64);
            let den = (pred_pos as f64) * (pos as f64) * (neg as f64) * (pred_neg as f64);
            Ok((tp * tn - fp * fn_) / den.sqrt())
        };
        [
            rate(pos, n, Undefined::NoPositives),
            rate(tp + tn, n, Undefined::NoPositives),
            balanced,
            tpr,
            tnr,
            rate(fp, neg, Undefined::NoNegatives),
            rate(fn_, pos, Undefined::NoPositives),
            rate(tp, pred_pos, Undefined::NoPredictedPositives),
            rate(2 * tp, 2 * tp + fp + fn_, Undefined::NoPositives),
            rate(pred_pos, n, Undefined::NoPositives),
            auc,
            mcc,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(y_true: &[u8], y_pred: &[u8], scores: Option<&[f64]>) -> Sample {
        let t: Vec<bool> = y_true.iter().map(|&v| v == 1).collect();
        let p: Vec<bool> = y_pred.iter().map(|&v| v == 1).collect();
        Sample::of_all(&t, &p, scores)
    }

    fn value(values: &Values, metric: Metric) -> f64 {
        values[metric.index()].unwrap_or_else(|why| panic!("{} undefined: {why}", metric.name()))
    }

    #[test]
    fn hand_computed_confusion_metrics() {
        // TP 3, FN 1, TN 4, FP 2: n 10.
        let s = sample(&[1, 1, 1, 1, 0, 0, 0, 0, 0, 0], &[1, 1, 1, 0, 0, 0, 0, 0, 1, 1], None);
        let v = s.metrics(&[1; 10]);
        let expect = [
            (Metric::Prevalence, 0.4),
            (Metric::Accuracy, 0.7),
            (Metric::Tpr, 0.75),
            (Metric::Tnr, 4.0 / 6.0),
            (Metric::BalancedAccuracy, (0.75 + 4.0 / 6.0) / 2.0),
            (Metric::Fpr, 2.0 / 6.0),
            (Metric::Fnr, 0.25),
            (Metric::Ppv, 0.6),
            (Metric::F1, 6.0 / 9.0),
            (Metric::SelectionRate, 0.5),
            (Metric::Mcc, (3.0 * 4.0 - 2.0 * 1.0) / (5.0f64 * 4.0 * 6.0 * 5.0).sqrt()),
        ];
        for (metric, want) in expect {
            assert!((value(&v, metric) - want).abs() < 1e-15, "{}", metric.name());
        }
        assert_eq!(v[Metric::Auc.index()], Err(Undefined::NoScores));
    }

    #[test]
    fn weights_count_subjects_repeatedly() {
        let s = sample(&[1, 0, 1], &[1, 0, 0], None);
        let c = s.confusion(&[3, 0, 2]);
        assert_eq!(c, Confusion { tp: 3, fp: 0, tn: 0, fn_: 2 });
        let v = s.metrics(&[3, 0, 2]);
        assert!((value(&v, Metric::Tpr) - 0.6).abs() < 1e-15);
        assert_eq!(v[Metric::Tnr.index()], Err(Undefined::NoNegatives));
        assert_eq!(v[Metric::BalancedAccuracy.index()], Err(Undefined::NoNegatives));
    }

    #[test]
    fn undefined_rates_carry_their_reason() {
        let v = sample(&[0, 0, 0], &[0, 0, 0], Some(&[0.1, 0.2, 0.3])).metrics(&[1; 3]);
        for metric in [Metric::Tpr, Metric::Fnr, Metric::BalancedAccuracy, Metric::F1, Metric::Auc, Metric::Mcc] {
            assert_eq!(v[metric.index()], Err(Undefined::NoPositives), "{}", metric.name());
        }
        assert_eq!(v[Metric::Ppv.index()], Err(Undefined::NoPredictedPositives));
        assert_eq!(value(&v, Metric::Tnr), 1.0);
        assert_eq!(value(&v, Metric::SelectionRate), 0.0);
        let all_positive = sample(&[1, 0], &[1, 1], None).metrics(&[1, 1]);
        assert_eq!(all_positive[Metric::Mcc.index()], Err(Undefined::NoPredictedNegatives));
    }

    #[test]
    fn auc_counts_ties_as_half_and_honours_weights() {
        // Positives 0.8, 0.5; negatives 0.5, 0.2: pairs (0.8>0.5)(0.8>0.2)(0.5=0.5)(0.5>0.2) → 3.5 / 4.
        let s = sample(&[1, 1, 0, 0], &[1, 0, 0, 0], Some(&[0.8, 0.5, 0.5, 0.2]));
        assert_eq!(value(&s.metrics(&[1; 4]), Metric::Auc), 0.875);
        // The tied negative counted twice: 2·3 = 6 pairs; 0.8 beats all 3 negatives, 0.5 beats one and ties two
        // (½ each): 3 + 1 + 1 = 5 of 6.
        let weighted = value(&s.metrics(&[1, 1, 2, 1]), Metric::Auc);
        assert!((weighted - 5.0 / 6.0).abs() < 1e-15, "{weighted}");
        // Equals the unweighted AUC of the sample with the subject duplicated.
        let dup = sample(&[1, 1, 0, 0, 0], &[1, 0, 0, 0, 0], Some(&[0.8, 0.5, 0.5, 0.5, 0.2]));
        assert_eq!(value(&dup.metrics(&[1; 5]), Metric::Auc), weighted);
    }
}
