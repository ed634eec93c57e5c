//! `report.csv`: one row per model, attribute, group and metric with its value and interval — group metrics
//! (`kind = metric`; the attribute `overall` holds all subjects), disparities and fairness statistics
//! (`kind = disparity`, group empty), and with a comparison the changes (`kind = change`, model
//! `candidate vs baseline`, values candidate − baseline, McNemar's p-value as metric `mcnemar_p_value`).

use crate::audit::GroupReport;
use crate::bootstrap::Estimate;
use crate::compare::GroupChange;
use crate::report::Report;

/// Column names, in order.
pub const HEADER: [&str; 12] = [
    "model",
    "kind",
    "attribute",
    "group",
    "n",
    "positives",
    "small",
    "metric",
    "value",
    "ci_low",
    "ci_high",
    "reason",
];

/// The fields of a row that precede the metric.
struct Row<'a> {
    model: &'a str,
    kind: &'a str,
    attribute: &'a str,
    group: &'a str,
    n: Option<usize>,
    positives: Option<usize>,
    small: Option<bool>,
}

impl<'a> Row<'a> {
    fn group(model: &'a str, attribute: &'a str, g: &'a GroupReport) -> Self {
        let (n, positives, small) = (Some(g.n), Some(g.positives), Some(g.small));
        Self { model, kind: "metric", attribute, group: &g.group, n, positives, small }
    }

    fn change(model: &'a str, attribute: &'a str, g: &'a GroupChange) -> Self {
        Self { model, kind: "change", attribute, group: &g.group, n: Some(g.n), positives: None, small: Some(g.small) }
    }

    fn grouping(model: &'a str, kind: &'a str, attribute: &'a str) -> Self {
        Self { model, kind, attribute, group: "", n: None, positives: None, small: None }
    }
}

struct Table(csv::Writer<Vec<u8>>);

impl Table {
    fn row(&mut self, row: &Row, metric: &str, e: &Estimate) {
        let number = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        let count = |v: Option<usize>| v.map(|v| v.to_string()).unwrap_or_default();
        let record = [
            row.model.to_string(),
            row.kind.to_string(),
            row.attribute.to_string(),
            row.group.to_string(),
            count(row.n),
            count(row.positives),
            row.small.map(|s| s.to_string()).unwrap_or_default(),
            metric.to_string(),
            number(e.value),
            number(e.ci_low),
            number(e.ci_high),
            e.reason.map(|r| r.to_string()).unwrap_or_default(),
        ];
        self.0.write_record(record).expect("writing to memory cannot fail");
    }

    fn change(&mut self, model: &str, attribute: &str, g: &GroupChange) {
        let row = Row::change(model, attribute, g);
        for (metric, e) in g.metrics.iter() {
            self.row(&row, metric.name(), e);
        }
        let p = Estimate { value: Some(g.mcnemar.p_value), reason: None, ci_low: None, ci_high: None, replicates: 0 };
        self.row(&row, "mcnemar_p_value", &p);
    }
}

pub(super) fn render(report: &Report) -> Vec<u8> {
    let mut table = Table(csv::Writer::from_writer(Vec::new()));
    table.0.write_record(HEADER).expect("writing to memory cannot fail");
    for model in &report.models {
        let label = model.label.as_str();
        let overall = Row::group(label, "overall", &model.overall);
        for (metric, e) in model.overall.metrics.iter() {
            table.row(&overall, metric.name(), e);
        }
        for grouping in &model.groupings {
            for g in &grouping.groups {
                let row = Row::group(label, &grouping.attribute, g);
                for (metric, e) in g.metrics.iter() {
                    table.row(&row, metric.name(), e);
                }
            }
            let row = Row::grouping(label, "disparity", &grouping.attribute);
            for (metric, d) in grouping.disparities.iter() {
                table.row(&row, &format!("{}_difference", metric.name()), &d.difference);
                table.row(&row, &format!("{}_ratio", metric.name()), &d.ratio);
            }
            for (stat, e) in grouping.fairness.iter() {
                table.row(&row, stat.name(), e);
            }
        }
    }
    if let Some(c) = &report.comparison {
        let label = format!("{} vs {}", c.candidate, c.baseline);
        table.change(&label, "overall", &c.overall);
        for grouping in &c.groupings {
            for g in &grouping.groups {
                table.change(&label, &grouping.attribute, g);
            }
            let row = Row::grouping(&label, "change", &grouping.attribute);
            for (stat, e) in grouping.fairness.iter() {
                table.row(&row, stat.name(), e);
            }
        }
    }
    table.0.into_inner().expect("flushing to memory cannot fail")
}
