//! Inline SVG charts of the HTML report, drawn by hand (no scripts, no external assets): grouped bars with interval
//! whiskers per group, and a before/after dumbbell chart. Every value lies in [0, 1].

use std::fmt::Write as _;

/// Colours of the series, in order (colour-blind-safe Okabe–Ito palette).
pub const COLOURS: [&str; 4] = ["#0072B2", "#009E73", "#E69F00", "#CC79A7"];
/// Colour of the baseline in a dumbbell chart.
pub const BASELINE: &str = "#999999";

/// A value with its interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The value.
    pub value: f64,
    /// Interval bounds, when known.
    pub interval: Option<(f64, f64)>,
}

/// One group of bars.
#[derive(Debug, Clone, PartialEq)]
pub struct BarGroup {
    /// Group label.
    pub label: String,
    /// Drawn faded with a ⚠ mark.
    pub small: bool,
    /// One bar per series; `None` where undefined (drawn as "n/a").
    pub bars: Vec<Option<Point>>,
}

/// One row of a dumbbell chart.
#[derive(Debug, Clone, PartialEq)]
pub struct Dumbbell {
    /// Group label.
    pub label: String,
    /// Drawn with a ⚠ mark.
    pub small: bool,
    /// Baseline value.
    pub before: Option<f64>,
    /// Candidate value.
    pub after: Option<f64>,
}

const PLOT_HEIGHT: f64 = 200.0;
const TOP: f64 = 30.0;
const LEFT: f64 = 44.0;
const BAR: f64 = 13.0;
const GAP: f64 = 18.0;

/// Grouped bars with interval whiskers: `series[i]` names the `i`-th bar of every group.
pub fn bars(title: &str, series: &[&str], groups: &[BarGroup]) -> String {
    let slot = series.len() as f64 * BAR + GAP;
    let plot_width = (groups.len() as f64 * slot).max(240.0);
    let longest = groups.iter().map(|g| g.label.chars().count()).max().unwrap_or(0) as f64;
    let label_room = (longest * 6.5).clamp(20.0, 160.0);
    let legend_width: f64 = series.iter().map(|name| legend_step(name)).sum();
    let width = LEFT + (plot_width + 16.0).max(legend_width).max(text_width(title));
    let height = TOP + PLOT_HEIGHT + label_room + 34.0;
    let y = |v: f64| TOP + PLOT_HEIGHT * (1.0 - v.clamp(0.0, 1.0));
    let mut svg = open(width, height, title);
    axis(&mut svg, plot_width, &y);
    for (i, group) in groups.iter().enumerate() {
        let x0 = LEFT + i as f64 * slot + GAP / 2.0;
        let opacity = if group.small { 0.45 } else { 1.0 };
        for (j, bar) in group.bars.iter().enumerate() {
            let x = x0 + j as f64 * BAR;
            let colour = COLOURS[j % COLOURS.len()];
            let Some(p) = bar else {
                let _ = write!(
                    svg,
                    r#"<text x="{:.1}" y="{:.1}" class="na" transform="rotate(-90 {:.1} {:.1})">n/a</text>"#,
                    x + BAR / 2.0 + 3.0,
                    y(0.0) - 4.0,
                    x + BAR / 2.0 + 3.0,
                    y(0.0) - 4.0
                );
                continue;
            };
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{colour}" fill-opacity="{opacity}"><title>{}: {}: {:.3}</title></rect>"#,
                y(p.value),
                BAR - 2.0,
                y(0.0) - y(p.value),
                escape(&group.label),
                escape(series[j]),
                p.value
            );
            if let Some((low, high)) = p.interval {
                let cx = x + (BAR - 2.0) / 2.0;
                let _ = write!(
                    svg,
                    r#"<path d="M{cx:.1} {:.1}V{:.1}M{:.1} {:.1}h6M{:.1} {:.1}h6" class="whisker"/>"#,
                    y(low),
                    y(high),
                    cx - 3.0,
                    y(low),
                    cx - 3.0,
                    y(high)
                );
            }
        }
        let lx = x0 + series.len() as f64 * BAR / 2.0;
        let ly = y(0.0) + 12.0;
        let mark = if group.small { " ⚠" } else { "" };
        let _ = write!(
            svg,
            r#"<text x="{lx:.1}" y="{ly:.1}" class="label" text-anchor="end" transform="rotate(-35 {lx:.1} {ly:.1})">{}{mark}</text>"#,
            escape(&group.label)
        );
    }
    legend(&mut svg, series, height - 12.0);
    svg.push_str("</svg>");
    svg
}

/// Before/after dumbbells: one row per group, the baseline and the candidate value joined by a line.
pub fn dumbbells(title: &str, labels: [&str; 2], rows: &[Dumbbell]) -> String {
    const ROW: f64 = 24.0;
    const PLOT_WIDTH: f64 = 420.0;
    let longest = rows.iter().map(|r| r.label.chars().count()).max().unwrap_or(0) as f64;
    let left = (longest * 7.0 + 24.0).clamp(60.0, 220.0);
    let width = (left + PLOT_WIDTH + 24.0).max(LEFT + text_width(title));
    let height = TOP + rows.len() as f64 * ROW + 56.0;
    let x = |v: f64| left + PLOT_WIDTH * v.clamp(0.0, 1.0);
    let mut svg = open(width, height, title);
    let bottom = TOP + rows.len() as f64 * ROW;
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let _ = write!(
            svg,
            r#"<line x1="{0:.1}" x2="{0:.1}" y1="{TOP:.1}" y2="{bottom:.1}" class="grid"/><text x="{0:.1}" y="{1:.1}" class="tick" text-anchor="middle">{tick}</text>"#,
            x(tick),
            bottom + 14.0
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let cy = TOP + (i as f64 + 0.5) * ROW;
        let mark = if row.small { " ⚠" } else { "" };
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="label" text-anchor="end">{}{mark}</text>"#,
            left - 8.0,
            cy + 4.0,
            escape(&row.label)
        );
        if let (Some(a), Some(b)) = (row.before, row.after) {
            let _ = write!(svg, r#"<line x1="{:.1}" x2="{:.1}" y1="{cy:.1}" y2="{cy:.1}" class="stem"/>"#, x(a), x(b));
        }
        for (value, colour, label) in [(row.before, BASELINE, labels[0]), (row.after, COLOURS[0], labels[1])] {
            if let Some(v) = value {
                let _ = write!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{cy:.1}" r="5" fill="{colour}"><title>{}: {}: {v:.3}</title></circle>"#,
                    x(v),
                    escape(&row.label),
                    escape(label)
                );
            }
        }
    }
    let _ = write!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="5" fill="{BASELINE}"/>"#, LEFT, height - 16.0);
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" class="tick">{}</text>"#,
        LEFT + 9.0,
        height - 12.0,
        escape(labels[0])
    );
    let _ = write!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="5" fill="{}"/>"#, LEFT + 140.0, height - 16.0, COLOURS[0]);
    let _ = write!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" class="tick">{}</text>"#,
        LEFT + 149.0,
        height - 12.0,
        escape(labels[1])
    );
    svg.push_str("</svg>");
    svg
}

fn open(width: f64, height: f64, title: &str) -> String {
    format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" role="img" aria-label="{0}"><text x="{LEFT}" y="18" class="title">{0}</text>"#,
        escape(title)
    )
}

fn axis(svg: &mut String, plot_width: f64, y: &dyn Fn(f64) -> f64) {
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let (right, at, label_x) = (LEFT + plot_width, y(tick), LEFT - 6.0);
        let _ = write!(
            svg,
            r#"<line x1="{LEFT}" x2="{right:.1}" y1="{at:.1}" y2="{at:.1}" class="grid"/><text x="{label_x:.1}" y="{:.1}" class="tick" text-anchor="end">{tick}</text>"#,
            at + 4.0
        );
    }
}

fn legend(svg: &mut String, series: &[&str], baseline: f64) {
    let mut x = LEFT;
    for (i, name) in series.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<rect x="{x:.1}" y="{:.1}" width="10" height="10" fill="{}"/>"#,
            baseline - 9.0,
            COLOURS[i % COLOURS.len()]
        );
        let _ = write!(svg, r#"<text x="{:.1}" y="{baseline:.1}" class="tick">{}</text>"#, x + 14.0, escape(name));
        x += legend_step(name);
    }
}

/// Horizontal room of one legend entry: key, name, gap.
fn legend_step(name: &str) -> f64 {
    14.0 + name.chars().count() as f64 * 6.5 + 18.0
}

/// Rough width of a chart title (13 px bold).
fn text_width(text: &str) -> f64 {
    text.chars().count() as f64 * 7.5
}

/// Escapes text for HTML and SVG.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_draw_one_rect_per_defined_value_and_whiskers_for_intervals() {
        let p = |v: f64| Some(Point { value: v, interval: Some((v - 0.1, v + 0.05)) });
        let groups = vec![
            BarGroup { label: "F".into(), small: false, bars: vec![p(0.8), p(0.6), None] },
            BarGroup { label: "M<&>".into(), small: true, bars: vec![p(0.7), p(0.9), p(0.5)] },
        ];
        let svg = bars("By sex", &["BA", "TPR", "TNR"], &groups);
        assert_eq!(svg.matches("<rect").count(), 5 + 3, "5 bars + 3 legend keys");
        assert_eq!(svg.matches(r#"class="whisker""#).count(), 5);
        assert!(svg.contains("M&lt;&amp;&gt; ⚠") && svg.contains(">n/a<"), "{svg}");
        // A value of 0.8 on a 200-px axis starting at y = 30: top at 30 + 200·0.2 = 70.
        assert!(svg.contains(r#"y="70.0" width="11.0" height="160.0""#), "{svg}");
    }

    #[test]
    fn dumbbells_join_defined_pairs() {
        let rows = vec![
            Dumbbell { label: "F".into(), small: false, before: Some(0.6), after: Some(0.7) },
            Dumbbell { label: "M".into(), small: false, before: Some(0.8), after: None },
        ];
        let svg = dumbbells("BA", ["baseline", "augmented"], &rows);
        assert_eq!(svg.matches(r#"class="stem""#).count(), 1);
        assert_eq!(svg.matches("<circle").count(), 3 + 2, "three values + two legend dots");
    }
}
