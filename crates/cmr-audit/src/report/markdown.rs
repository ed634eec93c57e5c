//! `report.md`: a short summary a clinician can read — overall performance, the before/after answer, and per
//! attribute the balanced accuracy, sensitivity and specificity of each group, the worst group and the gaps.

use std::fmt::Write as _;

use crate::audit::{GroupingReport, ModelAudit};
use crate::compare::Comparison;
use crate::disparity::Stat;
use crate::metrics::Metric;
use crate::report::text::{change, estimate, number, percent};
use crate::report::Report;

/// The metrics shown per group.
const SHOWN: [Metric; 3] = [Metric::BalancedAccuracy, Metric::Tpr, Metric::Tnr];

pub(super) fn render(report: &Report) -> String {
    let cfg = &report.config;
    let mut md = String::new();
    let labels = report.models.iter().map(|m| m.label.as_str()).collect::<Vec<_>>().join(" vs ");
    let _ = writeln!(md, "# Subgroup audit: {labels}\n");
    let _ = writeln!(
        md,
        "{} subjects. Values are point estimates with {} bootstrap intervals in brackets ({} replicates, \
         resampled within each group, seed {}). Groups with fewer than {} subjects are marked ⚠: their numbers are \
         fragile. n/a: the metric is undefined for that group (the reason is given in report.json).\n",
        report.subjects,
        percent(cfg.confidence),
        cfg.bootstrap,
        cfg.seed,
        cfg.min_group_size
    );
    let _ = writeln!(md, "## Overall\n");
    let _ = writeln!(md, "| model | balanced accuracy | sensitivity | specificity | AUC |\n|---|---|---|---|---|");
    for model in &report.models {
        let m = &model.overall.metrics;
        let cells = [Metric::BalancedAccuracy, Metric::Tpr, Metric::Tnr, Metric::Auc].map(|k| estimate(m.get(k)));
        let _ = writeln!(md, "| {} | {} |", model.label, cells.join(" | "));
    }
    if let Some(c) = &report.comparison {
        before_after(&mut md, c);
    }
    for g in 0..report.models[0].groupings.len() {
        let per_model: Vec<(&ModelAudit, &GroupingReport)> =
            report.models.iter().map(|m| (m, &m.groupings[g])).collect();
        attribute(&mut md, &per_model);
    }
    md
}

fn before_after(md: &mut String, c: &Comparison) {
    let h = &c.headline;
    let s = &h.overall_balanced_accuracy;
    let _ = writeln!(md, "\n## Before and after: {} → {}\n", c.baseline, c.candidate);
    let held = if h.overall_held { "overall performance held" } else { "overall performance did not hold" };
    let _ = writeln!(
        md,
        "- Overall balanced accuracy {} → {}, change {}: **{held}**.",
        number(s.baseline),
        number(s.candidate),
        change(&s.change)
    );
    let _ = writeln!(
        md,
        "- The worst group improved for {} of {} attributes and worsened for {}.",
        h.worst_groups_improved, h.worst_groups_compared, h.worst_groups_worsened
    );
    for grouping in &c.groupings {
        let Some(w) = &grouping.worst_group else { continue };
        let gap = grouping.fairness.get(Stat::BalancedAccuracyDifference);
        let _ = writeln!(
            md,
            "- By {}: worst group {}{} {} → {}, change {}: **{}**; balanced-accuracy gap change {}.",
            grouping.attribute,
            w.group,
            if w.small { " ⚠" } else { "" },
            number(w.shift.baseline),
            number(w.shift.candidate),
            change(&w.shift.change),
            w.shift.verdict.words(),
            change(gap)
        );
    }
}

fn attribute(md: &mut String, per_model: &[(&ModelAudit, &GroupingReport)]) {
    let first = per_model[0].1;
    let _ = writeln!(md, "\n## By {}\n", first.attribute);
    let mut header = String::from("| group | n |");
    let mut rule = String::from("|---|---:|");
    for (model, _) in per_model {
        for metric in SHOWN {
            let name = if per_model.len() > 1 {
                format!("{} ({})", metric.title(), model.label)
            } else {
                metric.title().into()
            };
            let _ = write!(header, " {name} |");
            rule.push_str("---|");
        }
    }
    let _ = writeln!(md, "{header}\n{rule}");
    for (i, group) in first.groups.iter().enumerate() {
        let flag = if group.small { " ⚠" } else { "" };
        let _ = write!(md, "| {}{flag} | {} |", group.group, group.n);
        for (_, grouping) in per_model {
            for metric in SHOWN {
                let _ = write!(md, " {} |", estimate(grouping.groups[i].metrics.get(metric)));
            }
        }
        md.push('\n');
    }
    md.push('\n');
    for (model, grouping) in per_model {
        let who = if per_model.len() > 1 { format!("{}: ", model.label) } else { String::new() };
        let worst = grouping.worst_group.as_ref().map_or_else(
            || "no group has a balanced accuracy".to_string(),
            |w| {
                format!(
                    "worst group {}{} at {}",
                    w.group,
                    if w.small { " ⚠" } else { "" },
                    estimate(&w.balanced_accuracy)
                )
            },
        );
        let f = &grouping.fairness;
        let _ = writeln!(
            md,
            "- {who}{worst}; balanced-accuracy gap {}; equalized odds difference {}; demographic parity difference {}.",
            estimate(f.get(Stat::BalancedAccuracyDifference)),
            estimate(f.get(Stat::EqualizedOddsDifference)),
            estimate(f.get(Stat::DemographicParityDifference))
        );
    }
}
