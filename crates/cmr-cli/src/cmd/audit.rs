//! `cmr-debias audit`: subgroup fairness report of a classifier's predictions (crate `cmr-audit`).

use std::path::PathBuf;

use cmr_audit::stage::DEFAULT_BY;
use cmr_audit::AuditConfig;

/// Arguments of `cmr-debias audit`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Predictions file (.csv or .parquet): subject_id, y_true (0/1), y_pred (0/1), optionally y_score (a
    /// probability) and attribute columns. The baseline when comparing.
    #[arg(long)]
    predictions: PathBuf,
    /// Output folder for report.json, report.csv, report.md and report.html (must not exist unless --force).
    #[arg(long)]
    out: PathBuf,
    /// Cohort folder (holds cohort.parquet) to join the attributes from by subject_id [default: the attributes are
    /// columns of the predictions file].
    #[arg(long)]
    cohort: Option<PathBuf>,
    /// Attribute columns to audit, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_BY.map(String::from))]
    by: Vec<String>,
    /// Also audit every combination of the --by attributes (their full cross) [default: off].
    #[arg(long)]
    intersections: bool,
    /// Predictions of a second model on the same subjects: report the change from --predictions to it, with paired
    /// bootstrap intervals and McNemar tests [default: no comparison].
    #[arg(long)]
    compare: Option<PathBuf>,
    /// Model labels, comma-separated: one, or two with --compare [default: model; baseline,augmented with --compare].
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// Bootstrap replicates, resampled within each group; 0 reports point estimates only.
    #[arg(long, default_value_t = 1000)]
    bootstrap: usize,
    /// Root seed of the bootstrap.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Coverage of the percentile intervals.
    #[arg(long, default_value_t = 0.95)]
    confidence: f64,
    /// Groups with fewer subjects are kept but flagged as small.
    #[arg(long, default_value_t = 20)]
    min_group_size: usize,
    /// Synthetic folder from `diffusion generate`: a few of its subjects' previews and prompts open report.html
    /// [default: none].
    #[arg(long)]
    examples: Option<PathBuf>,
    /// Replace an existing output folder.
    #[arg(long)]
    force: bool,
    /// Print the whole report (report.json) on stdout.
    #[arg(long)]
    json: bool,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<()> {
    let cfg = AuditConfig {
        cohort: args.cohort,
        by: args.by,
        intersections: args.intersections,
        compare: args.compare,
        labels: args.labels,
        bootstrap: args.bootstrap,
        seed: args.seed,
        confidence: args.confidence,
        min_group_size: args.min_group_size,
        examples: args.examples,
        force: args.force,
        ..AuditConfig::new(args.predictions, args.out)
    };
    let report = cmr_audit::run(&cfg)?;
    if args.json {
        return super::print_json(&report);
    }
    println!("audited {} subjects; reports in {}", report.subjects, cfg.out.display());
    for model in &report.models {
        for grouping in &model.groupings {
            if let Some(worst) = &grouping.worst_group {
                let value = worst.balanced_accuracy.value.map_or("n/a".into(), |v| format!("{v:.3}"));
                let small = if worst.small { " (small group)" } else { "" };
                println!(
                    "  {}: worst {} group {}{small}: balanced accuracy {value}",
                    model.label, grouping.attribute, worst.group
                );
            }
        }
    }
    if let Some(c) = &report.comparison {
        let h = &c.headline;
        let held = if h.overall_held { "held" } else { "did not hold" };
        println!(
            "  {} vs {}: overall performance {held}; worst group improved for {} of {} attributes",
            c.candidate, c.baseline, h.worst_groups_improved, h.worst_groups_compared
        );
    }
    Ok(())
}
