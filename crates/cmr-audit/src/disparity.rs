//! Disparities between the groups of one grouping (issue 5, "Metrics"), as Fairlearn's `MetricFrame.difference()`
//! and `.ratio()` with `method="between_groups"`: the difference is max − min and the ratio min / max of a metric over
//! the groups where it is defined (pandas skips NaN the same way). The named fairness metrics follow
//! `fairlearn.metrics`: demographic parity on the selection rate, equalized odds as the worse of the TPR and FPR
//! disparities (`agg="worst_case"`), equal opportunity on the TPR.
//!
//! The same functions run on the point estimates and on every bootstrap replicate, so each disparity gets an interval.

use crate::metrics::{Metric, Undefined, Value, Values, METRIC_COUNT};

/// Smallest and largest defined value of one metric over a grouping's groups.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Extremes {
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// Index of the (first) group with the smallest value.
    pub min_group: usize,
    /// Index of the (first) group with the largest value.
    pub max_group: usize,
    /// Number of groups with a defined value.
    pub defined: usize,
}

/// [`Extremes`] of every metric, indexed by [`Metric::index`].
pub type MetricExtremes = [Extremes; METRIC_COUNT];

impl Extremes {
    /// No group seen yet.
    pub const NONE: Extremes =
        Extremes { min: f64::INFINITY, max: f64::NEG_INFINITY, min_group: 0, max_group: 0, defined: 0 };

    /// Takes group `group`'s value into account (undefined values are skipped).
    pub fn add(&mut self, group: usize, value: Value) {
        let Ok(v) = value else { return };
        if v < self.min {
            (self.min, self.min_group) = (v, group);
        }
        if v > self.max {
            (self.max, self.max_group) = (v, group);
        }
        self.defined += 1;
    }

    /// Takes every metric of group `group` into account.
    pub fn add_all(extremes: &mut MetricExtremes, group: usize, values: &Values) {
        for (e, v) in extremes.iter_mut().zip(values) {
            e.add(group, *v);
        }
    }

    /// max − min over the groups.
    pub fn difference(&self) -> Value {
        if self.defined < 2 {
            return Err(Undefined::FewerThanTwoGroups);
        }
        Ok(self.max - self.min)
    }

    /// min / max over the groups.
    pub fn ratio(&self) -> Value {
        if self.defined < 2 {
            Err(Undefined::FewerThanTwoGroups)
        } else if self.min < 0.0 {
            Err(Undefined::NegativeValues)
        } else if self.max == 0.0 {
            Err(Undefined::ZeroMaximum)
        } else {
            Ok(self.min / self.max)
        }
    }

    /// The smallest value (the worst group's, for a metric where higher is better).
    pub fn minimum(&self) -> Value {
        if self.defined == 0 {
            return Err(Undefined::NoGroup);
        }
        Ok(self.min)
    }
}

/// A summary statistic of a grouping: the named fairness metrics and the worst group's balanced accuracy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stat {
    /// The smallest balanced accuracy of any group.
    WorstGroupBalancedAccuracy,
    /// max − min of balanced accuracy.
    BalancedAccuracyDifference,
    /// max − min of the selection rate (`fairlearn.metrics.demographic_parity_difference`).
    DemographicParityDifference,
    /// min / max of the selection rate (`demographic_parity_ratio`).
    DemographicParityRatio,
    /// The larger of the TPR and FPR differences (`equalized_odds_difference`).
    EqualizedOddsDifference,
    /// The smaller of the TPR and FPR ratios (`equalized_odds_ratio`).
    EqualizedOddsRatio,
    /// max − min of the TPR (`equal_opportunity_difference`).
    EqualOpportunityDifference,
    /// min / max of the TPR (`equal_opportunity_ratio`).
    EqualOpportunityRatio,
}

impl Stat {
    /// Every statistic, in report order.
    pub const ALL: [Stat; 8] = [
        Stat::WorstGroupBalancedAccuracy,
        Stat::BalancedAccuracyDifference,
        Stat::DemographicParityDifference,
        Stat::DemographicParityRatio,
        Stat::EqualizedOddsDifference,
        Stat::EqualizedOddsRatio,
        Stat::EqualOpportunityDifference,
        Stat::EqualOpportunityRatio,
    ];

    /// Name in the reports.
    pub fn name(self) -> &'static str {
        match self {
            Stat::WorstGroupBalancedAccuracy => "worst_group_balanced_accuracy",
            Stat::BalancedAccuracyDifference => "balanced_accuracy_difference",
            Stat::DemographicParityDifference => "demographic_parity_difference",
            Stat::DemographicParityRatio => "demographic_parity_ratio",
            Stat::EqualizedOddsDifference => "equalized_odds_difference",
            Stat::EqualizedOddsRatio => "equalized_odds_ratio",
            Stat::EqualOpportunityDifference => "equal_opportunity_difference",
            Stat::EqualOpportunityRatio => "equal_opportunity_ratio",
        }
    }

    /// Words for people.
    pub fn title(self) -> &'static str {
        match self {
            Stat::WorstGroupBalancedAccuracy => "worst-group balanced accuracy",
            Stat::BalancedAccuracyDifference => "balanced-accuracy gap (max − min)",
            Stat::DemographicParityDifference => "demographic parity difference",
            Stat::DemographicParityRatio => "demographic parity ratio",
            Stat::EqualizedOddsDifference => "equalized odds difference",
            Stat::EqualizedOddsRatio => "equalized odds ratio",
            Stat::EqualOpportunityDifference => "equal opportunity difference",
            Stat::EqualOpportunityRatio => "equal opportunity ratio",
        }
    }

    /// The statistic from the extremes of every metric.
    pub fn of(self, e: &MetricExtremes) -> Value {
        let at = |m: Metric| &e[m.index()];
        match self {
            Stat::WorstGroupBalancedAccuracy => at(Metric::BalancedAccuracy).minimum(),
            Stat::BalancedAccuracyDifference => at(Metric::BalancedAccuracy).difference(),
            Stat::DemographicParityDifference => at(Metric::SelectionRate).difference(),
            Stat::DemographicParityRatio => at(Metric::SelectionRate).ratio(),
            Stat::EqualizedOddsDifference => Ok(at(Metric::Tpr).difference()?.max(at(Metric::Fpr).difference()?)),
            Stat::EqualizedOddsRatio => Ok(at(Metric::Tpr).ratio()?.min(at(Metric::Fpr).ratio()?)),
            Stat::EqualOpportunityDifference => at(Metric::Tpr).difference(),
            Stat::EqualOpportunityRatio => at(Metric::Tpr).ratio(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extremes(values: &[Value]) -> Extremes {
        let mut e = Extremes::NONE;
        for (g, v) in values.iter().enumerate() {
            e.add(g, *v);
        }
        e
    }

    #[test]
    fn difference_and_ratio_skip_undefined_groups() {
        let e = extremes(&[Ok(0.6), Err(Undefined::NoPositives), Ok(0.9), Ok(0.75)]);
        assert_eq!((e.min_group, e.max_group, e.defined), (0, 2, 3));
        assert!((e.difference().unwrap() - 0.3).abs() < 1e-15);
        assert!((e.ratio().unwrap() - 0.6 / 0.9).abs() < 1e-15);
        assert_eq!(e.minimum(), Ok(0.6));
    }

    #[test]
    fn degenerate_disparities_are_undefined_with_a_reason() {
        assert_eq!(extremes(&[Ok(0.5), Err(Undefined::NoPositives)]).difference(), Err(Undefined::FewerThanTwoGroups));
        assert_eq!(extremes(&[Ok(0.0), Ok(0.0)]).ratio(), Err(Undefined::ZeroMaximum));
        assert_eq!(extremes(&[Ok(0.0), Ok(0.0)]).difference(), Ok(0.0));
        assert_eq!(extremes(&[Ok(-0.2), Ok(0.4)]).ratio(), Err(Undefined::NegativeValues));
        assert_eq!(extremes(&[Err(Undefined::NoScores)]).minimum(), Err(Undefined::NoGroup));
    }

    #[test]
    fn equalized_odds_takes_the_worse_of_tpr_and_fpr() {
        let mut e = [Extremes::NONE; METRIC_COUNT];
        // Group 0: TPR 0.9, FPR 0.1, selection 0.5; group 1: TPR 0.8, FPR 0.3, selection 0.4.
        for (g, (tpr, fpr, sel)) in [(0.9, 0.1, 0.5), (0.8, 0.3, 0.4)].into_iter().enumerate() {
            e[Metric::Tpr.index()].add(g, Ok(tpr));
            e[Metric::Fpr.index()].add(g, Ok(fpr));
            e[Metric::SelectionRate.index()].add(g, Ok(sel));
        }
        let close = |s: Stat, want: f64| assert!((s.of(&e).unwrap() - want).abs() < 1e-12, "{}", s.name());
        close(Stat::EqualizedOddsDifference, 0.2);
        close(Stat::EqualizedOddsRatio, 1.0 / 3.0);
        close(Stat::EqualOpportunityDifference, 0.1);
        close(Stat::DemographicParityRatio, 0.8);
        assert_eq!(Stat::WorstGroupBalancedAccuracy.of(&e), Err(Undefined::NoGroup));
    }
}
