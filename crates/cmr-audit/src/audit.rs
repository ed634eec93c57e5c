//! The audit itself: per-group metrics with stratified-bootstrap intervals, disparities per grouping, and — with two
//! models — the paired changes of [`crate::compare`] (issue 5, "Metrics" and "Uncertainty").
//!
//! Each group is evaluated once for every model: the point estimate on its subjects, then `bootstrap` resamples of
//! the group drawn from its own seeded stream, each scored for every model. A replicate of a disparity combines the
//! groups' values in the same replicate, so group and disparity intervals come from one set of resamples; replicate
//! extremes are folded group by group, so memory stays O(replicates) however many groups an intersection has.

use crate::bootstrap::{Estimate, Resampler};
use crate::compare::{self, GroupChange, GroupingChange};
use crate::disparity::{Extremes, MetricExtremes, Stat};
use crate::groups::{Group, Grouping};
use crate::keyed::Keyed;
use crate::metrics::{Metric, Sample, Values, METRIC_COUNT};

/// The predictions of one model, in the subject order of the audit.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// Name in the reports (`baseline`, `augmented`, …).
    pub label: String,
    /// Predicted labels.
    pub y_pred: Vec<bool>,
    /// Predicted probabilities, when available.
    pub y_score: Option<Vec<f64>>,
}

/// True labels and the models to audit on them (one, or two for a comparison).
#[derive(Debug, Clone, PartialEq)]
pub struct Data {
    /// True labels.
    pub y_true: Vec<bool>,
    /// Models; the first is the baseline of a comparison.
    pub models: Vec<Model>,
}

/// How to audit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Settings {
    /// Bootstrap replicates; 0 gives point estimates with null intervals.
    pub bootstrap: usize,
    /// Root seed of the resampling streams.
    pub seed: u64,
    /// Coverage of the percentile intervals, e.g. 0.95.
    pub confidence: f64,
    /// Groups with fewer subjects are flagged `small`.
    pub min_group_size: usize,
}

/// The audit of one model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ModelAudit {
    /// The model's label.
    pub label: String,
    /// Whether the model has scores (and so AUC values).
    pub has_scores: bool,
    /// All subjects as one group (`all`).
    pub overall: GroupReport,
    /// One entry per grouping, in `--by` order, the intersection last.
    pub groupings: Vec<GroupingReport>,
}

/// Metrics of one group.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupReport {
    /// Group label (`F`, `F × 60s`).
    pub group: String,
    /// Value of each column of the grouping.
    pub values: Vec<String>,
    /// Subjects.
    pub n: usize,
    /// Subjects with `y_true = 1`.
    pub positives: usize,
    /// Fewer than `min_group_size` subjects: kept, but its numbers are fragile.
    pub small: bool,
    /// Every metric with its interval.
    pub metrics: Keyed<Metric, Estimate>,
}

/// Disparities of one grouping, for one model.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct GroupingReport {
    /// Grouping name (`sex`, `sex × age_band`).
    pub attribute: String,
    /// Its attribute columns.
    pub columns: Vec<String>,
    /// Its groups.
    pub groups: Vec<GroupReport>,
    /// Per metric: max − min and min / max over the groups.
    pub disparities: Keyed<Metric, Disparity>,
    /// The named fairness metrics and the worst group's balanced accuracy.
    pub fairness: Keyed<Stat, Estimate>,
    /// The group with the lowest balanced accuracy; `null` when no group has one.
    pub worst_group: Option<WorstGroup>,
}

/// A metric's spread over groups.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Disparity {
    /// max − min (Fairlearn `difference(method="between_groups")`).
    pub difference: Estimate,
    /// min / max (Fairlearn `ratio(method="between_groups")`).
    pub ratio: Estimate,
    /// Group with the smallest value.
    pub min_group: Option<String>,
    /// Group with the largest value.
    pub max_group: Option<String>,
}

/// The group with the lowest balanced accuracy.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorstGroup {
    /// Its label.
    pub group: String,
    /// Its balanced accuracy.
    pub balanced_accuracy: Estimate,
    /// Whether it is a small group.
    pub small: bool,
}

/// Everything [`evaluate`] finds.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// One audit per model.
    pub models: Vec<ModelAudit>,
    /// With two models: the changes from the first to the second.
    pub comparison: Option<compare::Comparison>,
}

/// Audits every model of `data` on `groupings`.
///
/// # Panics
/// If `data` has no model or more than two, or array lengths differ (programmer errors; the stage validates).
pub fn evaluate(data: &Data, groupings: &[Grouping], settings: &Settings) -> Evaluation {
    assert!((1..=2).contains(&data.models.len()), "one model, or two to compare");
    let n = data.y_true.len();
    for model in &data.models {
        assert_eq!(model.y_pred.len(), n, "y_pred of {}", model.label);
        assert!(model.y_score.as_ref().is_none_or(|s| s.len() == n), "y_score of {}", model.label);
    }
    // 1. all subjects
    let all = Group { label: "all".into(), values: Vec::new(), members: (0..n).collect() };
    let overall = evaluate_group(data, &all, &["audit", "bootstrap", "overall"], settings, None);
    // 2. every grouping
    let mut per_model: Vec<Vec<GroupingReport>> = vec![Vec::new(); data.models.len()];
    let mut changes = Vec::new();
    for grouping in groupings {
        let (reports, change) = evaluate_grouping(data, grouping, settings);
        for (list, report) in per_model.iter_mut().zip(reports) {
            list.push(report);
        }
        changes.extend(change);
    }
    // 3. assemble
    let comparison = overall.change.map(|overall_change| {
        let labels = [data.models[0].label.as_str(), data.models[1].label.as_str()];
        compare::Comparison::new(labels, &overall.reports, overall_change, changes)
    });
    let models = data
        .models
        .iter()
        .zip(overall.reports)
        .zip(per_model)
        .map(|((model, overall), groupings)| ModelAudit {
            label: model.label.clone(),
            has_scores: model.y_score.is_some(),
            overall,
            groupings,
        })
        .collect();
    Evaluation { models, comparison }
}

/// One group evaluated for every model.
struct GroupRun {
    /// Point values per model.
    point: Vec<Values>,
    /// Report per model.
    reports: Vec<GroupReport>,
    /// With two models: the paired change.
    change: Option<GroupChange>,
}

/// Replicate extremes of a grouping: per model, per replicate; and the index of the group being folded in.
struct Fold<'a> {
    extremes: &'a mut [Vec<MetricExtremes>],
    group: usize,
}

fn evaluate_group(
    data: &Data,
    group: &Group,
    stream: &[&str],
    settings: &Settings,
    mut fold: Option<Fold>,
) -> GroupRun {
    let n = group.members.len();
    let samples: Vec<Sample> = data
        .models
        .iter()
        .map(|m| Sample::new(&group.members, &data.y_true, &m.y_pred, m.y_score.as_deref()))
        .collect();
    // 1. point estimates
    let ones = vec![1u32; n];
    let point: Vec<Values> = samples.iter().map(|s| s.metrics(&ones)).collect();
    let positives = samples[0].confusion(&ones).positives() as usize;
    // 2. replicates: the same resample scores every model (paired)
    let per_metric =
        || -> Vec<Vec<f64>> { (0..METRIC_COUNT).map(|_| Vec::with_capacity(settings.bootstrap)).collect() };
    let mut replicates: Vec<Vec<Vec<f64>>> = samples.iter().map(|_| per_metric()).collect();
    let mut deltas = per_metric();
    let mut resampler = Resampler::new(n, settings.seed, stream);
    for r in 0..settings.bootstrap {
        let weights = resampler.draw();
        let values: Vec<Values> = samples.iter().map(|s| s.metrics(weights)).collect();
        for (m, model_values) in values.iter().enumerate() {
            for (k, v) in model_values.iter().enumerate() {
                if let Ok(v) = v {
                    replicates[m][k].push(*v);
                }
            }
            if let Some(fold) = fold.as_mut() {
                Extremes::add_all(&mut fold.extremes[m][r], fold.group, model_values);
            }
        }
        if let [a, b] = &values[..] {
            for k in 0..METRIC_COUNT {
                if let (Ok(a), Ok(b)) = (a[k], b[k]) {
                    deltas[k].push(b - a);
                }
            }
        }
    }
    // 3. intervals
    let small = n < settings.min_group_size;
    let reports = point
        .iter()
        .zip(&mut replicates)
        .map(|(values, reps)| GroupReport {
            group: group.label.clone(),
            values: group.values.clone(),
            n,
            positives,
            small,
            metrics: Keyed::from_fn(|m: Metric| {
                Estimate::new(values[m.index()], &mut reps[m.index()], settings.confidence)
            }),
        })
        .collect();
    let change = match &point[..] {
        [a, b] => Some(GroupChange {
            group: group.label.clone(),
            n,
            small,
            metrics: Keyed::from_fn(|m: Metric| {
                let k = m.index();
                Estimate::new(compare::delta(a[k], b[k]), &mut deltas[k], settings.confidence)
            }),
            mcnemar: compare::McNemar::of(&group.members, &data.y_true, &data.models[0].y_pred, &data.models[1].y_pred),
        }),
        _ => None,
    };
    GroupRun { point, reports, change }
}

fn evaluate_grouping(
    data: &Data,
    grouping: &Grouping,
    settings: &Settings,
) -> (Vec<GroupingReport>, Option<GroupingChange>) {
    let models = data.models.len();
    let mut extremes = vec![vec![[Extremes::NONE; METRIC_COUNT]; settings.bootstrap]; models];
    let runs: Vec<GroupRun> = grouping
        .groups
        .iter()
        .enumerate()
        .map(|(g, group)| {
            let stream = ["audit", "bootstrap", grouping.name.as_str(), group.label.as_str()];
            let fold = Fold { extremes: &mut extremes, group: g };
            evaluate_group(data, group, &stream, settings, Some(fold))
        })
        .collect();
    let point_extremes: Vec<MetricExtremes> = (0..models)
        .map(|m| {
            let mut e = [Extremes::NONE; METRIC_COUNT];
            for (g, run) in runs.iter().enumerate() {
                Extremes::add_all(&mut e, g, &run.point[m]);
            }
            e
        })
        .collect();
    let label = |g: usize| grouping.groups[g].label.clone();
    let reports: Vec<GroupingReport> = (0..models)
        .map(|m| {
            let (point, reps) = (&point_extremes[m], &extremes[m]);
            let estimate = |f: &dyn Fn(&MetricExtremes) -> crate::metrics::Value| {
                let mut values: Vec<f64> = reps.iter().filter_map(|e| f(e).ok()).collect();
                Estimate::new(f(point), &mut values, settings.confidence)
            };
            let disparities = Keyed::from_fn(|metric: Metric| {
                let k = metric.index();
                let defined = point[k].defined > 0;
                Disparity {
                    difference: estimate(&|e| e[k].difference()),
                    ratio: estimate(&|e| e[k].ratio()),
                    min_group: defined.then(|| label(point[k].min_group)),
                    max_group: defined.then(|| label(point[k].max_group)),
                }
            });
            let ba = &point[Metric::BalancedAccuracy.index()];
            let worst_group = (ba.defined > 0).then(|| {
                let report = &runs[ba.min_group].reports[m];
                WorstGroup {
                    group: report.group.clone(),
                    balanced_accuracy: report.metrics.get(Metric::BalancedAccuracy).clone(),
                    small: report.small,
                }
            });
            GroupingReport {
                attribute: grouping.name.clone(),
                columns: grouping.columns.clone(),
                groups: runs.iter().map(|run| run.reports[m].clone()).collect(),
                disparities,
                fairness: Keyed::from_fn(|stat: Stat| estimate(&|e| stat.of(e))),
                worst_group,
            }
        })
        .collect();
    let change = (models == 2).then(|| {
        let groups: Vec<GroupChange> = runs.into_iter().filter_map(|run| run.change).collect();
        GroupingChange::new(&grouping.name, groups, &reports, &point_extremes, &extremes, settings.confidence)
    });
    (reports, change)
}
