//! Benchmark of `report` and `plan` at UK-Biobank scale (issue 4, item 4): random cohorts of 10k, 100k and 1M rows
//! (`--quick`: 1k and 5k), each timed from `cohort.parquet` on disk to the result (the report in memory; the plan
//! folder written), median of a few runs.
//!
//! Plan case: default keys (`sex × age_band × bmi_class × label`), `not-majority`, `--max-synthetic-ratio 0.25`,
//! seed 1 — so the plan has about a quarter as many rows as the train split.
//!
//! `cargo bench -p cmr-balance --bench balance [-- --quick] [--json] [--dir DIR]` prints a table (or, with
//! `--json`, one JSON object with the cohort paths, which `scripts/bench-balance.sh` hands to the pandas peer).
//! `--dir` keeps the cohorts there (reused when present) instead of a temporary folder.

#[path = "../tests/suite/cohorts.rs"]
mod cohorts;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cmr_balance::plan::{self, PlanConfig};
use cmr_balance::report::{self, ReportConfig};
use cmr_balance::{Guards, Strategy, DEFAULT_KEYS};
use cmr_core::{AttributeBins, Split};

/// Median wall time of `runs` calls of `f`, and its last result.
fn time<T>(runs: usize, mut f: impl FnMut() -> T) -> (Duration, T) {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs {
        let start = Instant::now();
        last = Some(f());
        times.push(start.elapsed());
    }
    times.sort();
    (times[runs / 2], last.expect("runs ≥ 1"))
}

fn cohort(root: &Path, rows: usize) -> PathBuf {
    let dir = root.join(format!("cohort-{rows}"));
    if !dir.join(cmr_core::cohort::COHORT_PARQUET).exists() {
        cohorts::write_table(&dir, &cohorts::random(rows, 1));
    }
    dir
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let json = args.iter().any(|a| a == "--json");
    let temp = tempfile::tempdir().expect("temporary folder");
    let root = match args.iter().position(|a| a == "--dir") {
        Some(i) => PathBuf::from(args.get(i + 1).expect("--dir DIR")),
        None => temp.path().to_path_buf(),
    };
    let sizes: &[usize] = if quick { &[1_000, 5_000] } else { &[10_000, 100_000, 1_000_000] };
    let keys: Vec<String> = DEFAULT_KEYS.map(str::to_string).to_vec();
    let mut cases = Vec::new();
    if !json {
        println!("{:>9} {:>12} {:>12} {:>10}", "rows", "report ms", "plan ms", "planned");
    }
    for &rows in sizes {
        let dir = cohort(&root, rows);
        let runs = if rows >= 1_000_000 { 3 } else { 5 };
        let report_cfg = ReportConfig {
            cohort: dir.clone(),
            by: keys.clone(),
            split: Some(Split::Train),
            attributes: AttributeBins::default(),
            smallest: 5,
        };
        let (report_time, report) = time(runs, || report::run(&report_cfg).expect("report"));
        let plan_cfg = PlanConfig {
            cohort: dir.clone(),
            out: root.join(format!("plan-{rows}")),
            strategy: Strategy::NotMajority,
            by: keys.clone(),
            per_site: false,
            seed: 1,
            guards: Guards { min_real: 1, max_synthetic_ratio: Some(0.25) },
            attributes: AttributeBins::default(),
            force: true,
        };
        let (plan_time, summary) = time(runs, || plan::run(&plan_cfg).expect("plan"));
        assert_eq!(report.subjects, summary.train_subjects);
        if json {
            cases.push(serde_json::json!({
                "rows": rows,
                "cohort": dir,
                "report_s": report_time.as_secs_f64(),
                "plan_s": plan_time.as_secs_f64(),
                "planned": summary.planned,
            }));
        } else {
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            println!("{rows:>9} {:>12.1} {:>12.1} {:>10}", ms(report_time), ms(plan_time), summary.planned);
        }
    }
    if json {
        println!("{}", serde_json::json!({ "cases": cases }));
    }
}
