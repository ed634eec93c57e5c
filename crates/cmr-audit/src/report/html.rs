//! `report.html`: one self-contained page — inline CSS, SVG and PNG, no scripts, no external assets. When comparing
//! it opens with the answer (overall and worst-group balanced accuracy before and after) and, when given, example
//! synthetic subjects; then per-group
//! bars and interval whiskers for balanced accuracy, sensitivity and specificity, a before/after dumbbell chart when
//! comparing, a table of disparities with small-group flags, and every metric in collapsible tables.

use std::fmt::Write as _;

use crate::audit::{GroupReport, GroupingReport, ModelAudit};
use crate::bootstrap::Estimate;
use crate::compare::Comparison;
use crate::disparity::Stat;
use crate::examples::Example;
use crate::metrics::Metric;
use crate::report::svg::{self, escape, BarGroup, Dumbbell, Point};
use crate::report::text::{change, estimate, p_value, percent};
use crate::report::Report;

/// The metrics drawn as bars.
const CHARTED: [Metric; 3] = [Metric::BalancedAccuracy, Metric::Tpr, Metric::Tnr];
/// The statistics of the disparity table.
const DISPARITIES: [Stat; 5] = [
    Stat::WorstGroupBalancedAccuracy,
    Stat::BalancedAccuracyDifference,
    Stat::EqualizedOddsDifference,
    Stat::DemographicParityDifference,
    Stat::EqualOpportunityDifference,
];

const STYLE: &str = "
body { font-family: 'DejaVu Sans', Arial, sans-serif; color: #222; margin: 24px auto; max-width: 1100px; padding: 0 16px; }
h1 { font-size: 1.6em; margin-bottom: 4px; } h2 { margin-top: 32px; border-bottom: 1px solid #ddd; }
.meta { color: #555; } .cards { display: flex; flex-wrap: wrap; gap: 12px; }
.card { border: 1px solid #ccd; border-radius: 6px; padding: 10px 14px; background: #f6f8fb; }
.card b { display: block; font-size: 1.3em; }
table { border-collapse: collapse; margin: 8px 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; } th { background: #eef2f7; }
tr.small td { background: #fff6e0; } .flag { color: #b35900; font-weight: bold; }
.improved { color: #007a4d; font-weight: bold; } .worsened { color: #b00020; font-weight: bold; }
svg { display: block; margin: 8px 0; } .charts { display: flex; flex-wrap: wrap; gap: 8px 32px; align-items: flex-start; } svg .title { font-size: 13px; font-weight: bold; }
svg .tick, svg .label, svg .na { font-size: 11px; fill: #333; } svg .grid { stroke: #e3e3e3; }
.gallery { display: flex; flex-wrap: wrap; gap: 16px; } figure { margin: 0; max-width: 520px; }
figure img { max-width: 100%; image-rendering: pixelated; border: 1px solid #ccd; } figcaption { font-size: 0.85em; color: #444; }
svg .whisker { stroke: #222; stroke-width: 1.2; fill: none; } svg .stem { stroke: #666; stroke-width: 2; }
";

pub(super) fn render(report: &Report) -> String {
    let cfg = &report.config;
    let labels = report.models.iter().map(|m| m.label.as_str()).collect::<Vec<_>>().join(" vs ");
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Subgroup audit: {0}</title>\
         <style>{STYLE}</style></head><body><h1>Subgroup audit: {0}</h1>",
        escape(&labels)
    );
    let _ = write!(
        h,
        "<p class=\"meta\">{} subjects · {} intervals from {} bootstrap replicates resampled within each group \
         (seed {}) · groups under {} subjects flagged <span class=\"flag\">⚠</span></p>",
        report.subjects,
        percent(cfg.confidence),
        cfg.bootstrap,
        cfg.seed,
        cfg.min_group_size
    );
    if let Some(c) = &report.comparison {
        answer(&mut h, &report.models, c);
    }
    if !report.examples.is_empty() {
        examples(&mut h, &report.examples);
    }
    overall_cards(&mut h, &report.models);
    disparity_table(&mut h, &report.models);
    for g in 0..report.models[0].groupings.len() {
        grouping_section(&mut h, &report.models, g, report.comparison.as_ref());
    }
    h.push_str("<h2>Inputs</h2><ul>");
    for input in &report.inputs {
        let _ = write!(
            h,
            "<li>{}: <code>{}</code> sha256 <code>{}</code></li>",
            input.role,
            escape(&input.path.display().to_string()),
            input.sha256
        );
    }
    h.push_str("</ul></body></html>\n");
    h
}

fn overall_cards(h: &mut String, models: &[ModelAudit]) {
    h.push_str("<div class=\"cards\">");
    for model in models {
        for metric in [Metric::BalancedAccuracy, Metric::Tpr, Metric::Tnr, Metric::Auc] {
            let _ = write!(
                h,
                "<div class=\"card\">{} · {}<b>{}</b></div>",
                escape(&model.label),
                metric.title(),
                escape(&estimate(model.overall.metrics.get(metric)))
            );
        }
    }
    h.push_str("</div>");
}

/// The answer the report exists for, first: overall balanced accuracy and each attribute's worst group (the
/// baseline's) before and after, each with its interval, and the paired change with its verdict.
fn answer(h: &mut String, models: &[ModelAudit], c: &Comparison) {
    let hl = &c.headline;
    let (before, after) = (escape(&c.baseline), escape(&c.candidate));
    let _ = write!(
        h,
        "<h2>Did {after} close the subgroup gap?</h2><table class=\"answer\"><tr><th></th><th>group</th>\
         <th>{before}</th><th>{after}</th><th>change</th><th>verdict</th><th>McNemar p</th></tr>"
    );
    let ba = |r: &GroupReport| escape(&estimate(r.metrics.get(Metric::BalancedAccuracy)));
    let s = &hl.overall_balanced_accuracy;
    let (class, held) = if hl.overall_held { ("improved", "held") } else { ("worsened", "did not hold") };
    let _ = write!(
        h,
        "<tr><td>overall balanced accuracy</td><td>all (n={})</td><td>{}</td><td>{}</td><td>{}</td>\
         <td class=\"{class}\">overall performance {held}</td><td>p {}</td></tr>",
        models[0].overall.n,
        ba(&models[0].overall),
        ba(&models[1].overall),
        escape(&change(&s.change)),
        p_value(c.overall.mcnemar.p_value),
    );
    for (g, grouping) in c.groupings.iter().enumerate() {
        let Some(w) = &grouping.worst_group else { continue };
        let report = |m: usize| models[m].groupings[g].groups.iter().find(|r| r.group == w.group);
        let (Some(b), Some(a)) = (report(0), report(1)) else { continue };
        let _ = write!(
            h,
            "<tr><td>worst group by {}</td><td>{}{} (n={})</td><td>{}</td><td>{}</td><td>{}</td>\
             <td class=\"{}\">{}</td><td>p {}</td></tr>",
            escape(&grouping.attribute),
            escape(&w.group),
            flag(w.small),
            b.n,
            ba(b),
            ba(a),
            escape(&change(&w.shift.change)),
            w.shift.verdict.words().replace(' ', "-"),
            w.shift.verdict.words(),
            p_value(grouping.groups.iter().find(|g| g.group == w.group).map_or(1.0, |g| g.mcnemar.p_value)),
        );
    }
    let _ = write!(
        h,
        "</table><p>The baseline's worst group improved for {} of {} attributes and worsened for {}. Intervals are \
         percentile bootstrap intervals; a change is called improved or worsened only when its paired interval \
         excludes 0.</p>",
        hl.worst_groups_improved, hl.worst_groups_compared, hl.worst_groups_worsened
    );
}

/// The example synthetic subjects: ED (top row) and ES previews with the conditioning mask's outlines, captioned
/// with their prompts.
fn examples(h: &mut String, examples: &[Example]) {
    use base64::Engine as _;
    h.push_str(
        "<h2>Examples of the synthetic subjects</h2><p class=\"meta\">Generated images, ED above ES, slices base → \
         apex, with the outlines of the mask that conditioned them (from the named real train subject).</p>\
         <div class=\"gallery\">",
    );
    for e in examples {
        let _ = write!(
            h,
            "<figure><img alt=\"{0}\" src=\"data:image/png;base64,{1}\"><figcaption><b>{2}</b><br>{0}<br>mask of {3}\
             </figcaption></figure>",
            escape(&e.prompt),
            base64::engine::general_purpose::STANDARD.encode(&e.png),
            escape(&e.subject_id),
            escape(e.parent_subject.as_deref().unwrap_or("n/a")),
        );
    }
    h.push_str("</div>");
}

fn disparity_table(h: &mut String, models: &[ModelAudit]) {
    h.push_str("<h2>Disparities</h2><table><tr><th>attribute</th><th>model</th><th>worst group</th>");
    for stat in DISPARITIES {
        let _ = write!(h, "<th>{}</th>", stat.title());
    }
    h.push_str("<th>small groups</th></tr>");
    for g in 0..models[0].groupings.len() {
        for model in models {
            let grouping = &model.groupings[g];
            let small: Vec<String> =
                grouping.groups.iter().filter(|r| r.small).map(|r| format!("{} (n={})", r.group, r.n)).collect();
            let worst = grouping
                .worst_group
                .as_ref()
                .map_or("n/a".into(), |w| format!("{}{}", escape(&w.group), flag(w.small)));
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{worst}</td>",
                escape(&grouping.attribute),
                escape(&model.label)
            );
            for stat in DISPARITIES {
                let _ = write!(h, "<td>{}</td>", escape(&estimate(grouping.fairness.get(stat))));
            }
            let small = if small.is_empty() {
                "none".into()
            } else {
                format!("<span class=\"flag\">⚠</span> {}", escape(&small.join(", ")))
            };
            let _ = write!(h, "<td>{small}</td></tr>");
        }
    }
    h.push_str("</table>");
}

fn grouping_section(h: &mut String, models: &[ModelAudit], g: usize, comparison: Option<&Comparison>) {
    let attribute = &models[0].groupings[g].attribute;
    let _ = write!(h, "<h2>By {}</h2>", escape(attribute));
    let series: Vec<&str> = CHARTED.iter().map(|m| m.title()).collect();
    h.push_str("<div class=\"charts\">");
    for model in models {
        let groups: Vec<BarGroup> = model.groupings[g]
            .groups
            .iter()
            .map(|r| BarGroup {
                label: r.group.clone(),
                small: r.small,
                bars: CHARTED.iter().map(|&m| point(r.metrics.get(m))).collect(),
            })
            .collect();
        h.push_str(&svg::bars(&format!("{} by {attribute}", model.label), &series, &groups));
    }
    if let Some(c) = comparison {
        let ba = |r: &GroupReport| r.metrics.get(Metric::BalancedAccuracy).value;
        let rows: Vec<Dumbbell> = models[0].groupings[g]
            .groups
            .iter()
            .zip(&models[1].groupings[g].groups)
            .map(|(a, b)| Dumbbell { label: a.group.clone(), small: a.small, before: ba(a), after: ba(b) })
            .collect();
        let title = format!("balanced accuracy by {attribute}: {} → {}", c.baseline, c.candidate);
        h.push_str(&svg::dumbbells(&title, [c.baseline.as_str(), c.candidate.as_str()], &rows));
    }
    h.push_str("</div>");
    for model in models {
        metric_table(h, model, &model.groupings[g]);
    }
}

fn metric_table(h: &mut String, model: &ModelAudit, grouping: &GroupingReport) {
    let _ = write!(
        h,
        "<details><summary>All metrics of {} by {}</summary><table><tr><th>group</th><th>n</th><th>positives</th>",
        escape(&model.label),
        escape(&grouping.attribute)
    );
    for metric in Metric::ALL {
        let _ = write!(h, "<th>{}</th>", metric.title());
    }
    h.push_str("</tr>");
    for r in &grouping.groups {
        let class = if r.small { " class=\"small\"" } else { "" };
        let _ = write!(
            h,
            "<tr{class}><td>{}{}</td><td>{}</td><td>{}</td>",
            escape(&r.group),
            flag(r.small),
            r.n,
            r.positives
        );
        for metric in Metric::ALL {
            let _ = write!(h, "<td>{}</td>", escape(&estimate(r.metrics.get(metric))));
        }
        h.push_str("</tr>");
    }
    h.push_str("</table></details>");
}

fn point(e: &Estimate) -> Option<Point> {
    let interval = e.ci_low.zip(e.ci_high);
    e.value.map(|value| Point { value, interval })
}

fn flag(small: bool) -> &'static str {
    if small {
        " <span class=\"flag\">⚠</span>"
    } else {
        ""
    }
}
