//! Before/after comparison of two models on the same subjects (issue 5, "Comparison"): per group, the change of
//! every metric (candidate − baseline) with a paired bootstrap interval — both models are scored on the very same
//! resamples — and an exact McNemar test on correctness; per grouping, the change of each fairness statistic; and
//! the headline: did the baseline's worst group improve, and did overall performance hold.

use crate::audit::{GroupReport, GroupingReport};
use crate::bootstrap::Estimate;
use crate::disparity::{MetricExtremes, Stat};
use crate::keyed::Keyed;
use crate::metrics::{Metric, Value};

/// `b − a`, undefined (with the first reason) when either is.
pub fn delta(a: Value, b: Value) -> Value {
    Ok(b? - a?)
}

/// McNemar's test on the subjects that exactly one of the two models classifies correctly.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct McNemar {
    /// Subjects only the baseline gets right.
    pub baseline_only_correct: u64,
    /// Subjects only the candidate gets right.
    pub candidate_only_correct: u64,
    /// Exact two-sided p-value: 2·P(X ≤ min) for X ~ Binomial(discordant, ½), at most 1 (1 without discordant
    /// subjects). Equals `scipy.stats.binomtest(b, b + c).pvalue`.
    pub p_value: f64,
}

impl McNemar {
    /// The test over the subjects `members`.
    pub fn of(members: &[usize], y_true: &[bool], baseline: &[bool], candidate: &[bool]) -> Self {
        let (mut b, mut c) = (0, 0);
        for &i in members {
            match (baseline[i] == y_true[i], candidate[i] == y_true[i]) {
                (true, false) => b += 1,
                (false, true) => c += 1,
                _ => {}
            }
        }
        Self { baseline_only_correct: b, candidate_only_correct: c, p_value: exact_p(b, c) }
    }
}

fn exact_p(b: u64, c: u64) -> f64 {
    let n = b + c;
    let k = b.min(c);
    // ln[C(n, i) / 2^n] for i = 0..=k, by the recurrence C(n, i+1) = C(n, i)·(n − i)/(i + 1); summed in log space
    // because 2^−n underflows for large n.
    let mut terms = Vec::with_capacity(k as usize + 1);
    let mut ln_term = -(n as f64) * std::f64::consts::LN_2;
    for i in 0..=k {
        terms.push(ln_term);
        ln_term += ((n - i) as f64).ln() - ((i + 1) as f64).ln();
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let ln_tail = max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln();
    (2.0 * ln_tail.exp()).min(1.0)
}

/// What a change's interval says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The interval lies above 0.
    Improved,
    /// The interval lies below 0.
    Worsened,
    /// The interval contains 0.
    NoClearChange,
    /// The change is undefined.
    Undefined,
}

impl Verdict {
    /// The verdict on `change`.
    pub fn of(change: &Estimate) -> Self {
        if change.value.is_none() {
            Verdict::Undefined
        } else if change.above_zero() {
            Verdict::Improved
        } else if change.below_zero() {
            Verdict::Worsened
        } else {
            Verdict::NoClearChange
        }
    }

    /// Words for people.
    pub fn words(self) -> &'static str {
        match self {
            Verdict::Improved => "improved",
            Verdict::Worsened => "worsened",
            Verdict::NoClearChange => "no clear change",
            Verdict::Undefined => "undefined",
        }
    }
}

/// Balanced accuracy of one group under both models.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Shift {
    /// Under the baseline.
    pub baseline: Option<f64>,
    /// Under the candidate.
    pub candidate: Option<f64>,
    /// candidate − baseline, with its paired interval.
    pub change: Estimate,
    /// What the interval says.
    pub verdict: Verdict,
}

impl Shift {
    fn of(baseline: &GroupReport, candidate: &GroupReport, change: &GroupChange) -> Self {
        let ba = |r: &GroupReport| r.metrics.get(Metric::BalancedAccuracy).value;
        let change = change.metrics.get(Metric::BalancedAccuracy).clone();
        Self { baseline: ba(baseline), candidate: ba(candidate), verdict: Verdict::of(&change), change }
    }
}

/// The changes of one group.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupChange {
    /// Group label.
    pub group: String,
    /// Subjects.
    pub n: usize,
    /// Whether it is a small group.
    pub small: bool,
    /// candidate − baseline of every metric, with paired intervals.
    pub metrics: Keyed<Metric, Estimate>,
    /// McNemar's test on correctness.
    pub mcnemar: McNemar,
}

/// The baseline's worst group and how it fared.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorstGroupChange {
    /// The group with the lowest balanced accuracy under the baseline.
    pub group: String,
    /// Whether it is a small group.
    pub small: bool,
    /// Its balanced accuracy under both models.
    #[serde(flatten)]
    pub shift: Shift,
}

/// The changes of one grouping.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupingChange {
    /// Grouping name.
    pub attribute: String,
    /// Per group.
    pub groups: Vec<GroupChange>,
    /// candidate − baseline of each fairness statistic (a negative difference means a smaller gap).
    pub fairness: Keyed<Stat, Estimate>,
    /// The baseline's worst group; `null` when no group has a balanced accuracy.
    pub worst_group: Option<WorstGroupChange>,
}

impl GroupingChange {
    /// Builds the changes from the group changes, both models' reports (`reports[0]` the baseline), and both
    /// models' extremes: `point[m]` on the data, `replicates[m][r]` in replicate `r`.
    pub fn new(
        attribute: &str,
        groups: Vec<GroupChange>,
        reports: &[GroupingReport],
        point: &[MetricExtremes],
        replicates: &[Vec<MetricExtremes>],
        confidence: f64,
    ) -> Self {
        let fairness = Keyed::from_fn(|stat: Stat| {
            let mut values: Vec<f64> = replicates[0]
                .iter()
                .zip(&replicates[1])
                .filter_map(|(a, b)| delta(stat.of(a), stat.of(b)).ok())
                .collect();
            Estimate::new(delta(stat.of(&point[0]), stat.of(&point[1])), &mut values, confidence)
        });
        let worst_group = reports[0].worst_group.as_ref().map(|worst| {
            let g = reports[0].groups.iter().position(|r| r.group == worst.group).expect("the worst group is a group");
            WorstGroupChange {
                group: worst.group.clone(),
                small: worst.small,
                shift: Shift::of(&reports[0].groups[g], &reports[1].groups[g], &groups[g]),
            }
        });
        Self { attribute: attribute.into(), groups, fairness, worst_group }
    }
}

/// The answer in one place.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Headline {
    /// Overall balanced accuracy under both models.
    pub overall_balanced_accuracy: Shift,
    /// Overall performance held: the change's interval does not lie below 0.
    pub overall_held: bool,
    /// Groupings whose baseline worst group has a defined change.
    pub worst_groups_compared: usize,
    /// Of these, how many improved (interval above 0).
    pub worst_groups_improved: usize,
    /// Of these, how many worsened (interval below 0).
    pub worst_groups_worsened: usize,
}

/// The comparison of two models.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Comparison {
    /// Label of the first model.
    pub baseline: String,
    /// Label of the second model.
    pub candidate: String,
    /// All subjects.
    pub overall: GroupChange,
    /// Per grouping.
    pub groupings: Vec<GroupingChange>,
    /// The headline answer.
    pub headline: Headline,
}

impl Comparison {
    /// Assembles the comparison; `overall` holds both models' reports of all subjects (baseline first).
    pub fn new(
        labels: [&str; 2],
        overall: &[GroupReport],
        overall_change: GroupChange,
        groupings: Vec<GroupingChange>,
    ) -> Self {
        let shift = Shift::of(&overall[0], &overall[1], &overall_change);
        let verdicts: Vec<Verdict> =
            groupings.iter().filter_map(|g| g.worst_group.as_ref()).map(|w| w.shift.verdict).collect();
        let count = |v: Verdict| verdicts.iter().filter(|&&x| x == v).count();
        let headline = Headline {
            overall_held: matches!(shift.verdict, Verdict::Improved | Verdict::NoClearChange),
            overall_balanced_accuracy: shift,
            worst_groups_compared: verdicts.len() - count(Verdict::Undefined),
            worst_groups_improved: count(Verdict::Improved),
            worst_groups_worsened: count(Verdict::Worsened),
        };
        Self { baseline: labels[0].into(), candidate: labels[1].into(), overall: overall_change, groupings, headline }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_mcnemar_p_values() {
        // b = 1, c = 6: P(X ≤ 1) = (1 + 7) / 128, two-sided 0.125.
        assert!((exact_p(1, 6) - 0.125).abs() < 1e-15);
        assert_eq!(exact_p(3, 3), 1.0);
        assert_eq!(exact_p(0, 0), 1.0);
        // scipy.stats.binomtest(400, 900).pvalue and binomtest(2000, 5000).pvalue (scipy 1.15.3).
        assert!((exact_p(400, 500) / 0.0009564441369189373 - 1.0).abs() < 1e-9);
        assert!((exact_p(2000, 3000) / 1.300231000520625e-45 - 1.0).abs() < 1e-9);
        assert_eq!(exact_p(0, 5000), 0.0, "underflows to 0 like scipy, never NaN");
    }

    #[test]
    fn mcnemar_counts_discordant_subjects_only() {
        let y = [true, true, false, false, true];
        let a = [true, false, false, true, true]; // right: 0, 2, 4
        let b = [true, true, true, false, false]; // right: 0, 1, 3
        let t = McNemar::of(&[0, 1, 2, 3, 4], &y, &a, &b);
        assert_eq!((t.baseline_only_correct, t.candidate_only_correct), (2, 2));
        assert_eq!(t.p_value, 1.0);
    }

    #[test]
    fn verdicts_follow_the_interval() {
        let est = |low: f64, high: f64| Estimate {
            value: Some((low + high) / 2.0),
            reason: None,
            ci_low: Some(low),
            ci_high: Some(high),
            replicates: 10,
        };
        assert_eq!(Verdict::of(&est(0.01, 0.05)), Verdict::Improved);
        assert_eq!(Verdict::of(&est(-0.05, -0.01)), Verdict::Worsened);
        assert_eq!(Verdict::of(&est(-0.01, 0.05)), Verdict::NoClearChange);
        assert_eq!(delta(Ok(0.5), Ok(0.75)), Ok(0.25));
        assert_eq!(
            delta(Err(crate::metrics::Undefined::NoPositives), Ok(0.75)),
            Err(crate::metrics::Undefined::NoPositives)
        );
    }
}
