//! `cmr-debias balance report`: where the cohort is thin. Counts per stratum and per marginal (real and synthetic),
//! the share of each, the smallest non-empty strata and the strata with no subject (issue 4, item 1).

use std::fmt;
use std::path::PathBuf;

use cmr_core::{AttributeBins, Split};
use serde::Serialize;

use crate::error::Result;
use crate::strata::{check_keys, Counts, Strata};
use crate::table::CohortColumns;

/// What `report` counts.
#[derive(Debug, Clone)]
pub struct ReportConfig {
    /// Cohort folder (holds `cohort.parquet`).
    pub cohort: PathBuf,
    /// Stratum keys, most significant first (default [`crate::DEFAULT_KEYS`]).
    pub by: Vec<String>,
    /// Split whose rows are counted; `None` counts every split (default: train).
    pub split: Option<Split>,
    /// Bins for the numeric keys `age` and `bmi`.
    pub attributes: AttributeBins,
    /// How many of the smallest non-empty strata to list (default 5).
    pub smallest: usize,
}

/// Subject counts of one stratum or one marginal level.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Count {
    /// Key values (one per key for a stratum, one for a marginal level).
    pub values: Vec<String>,
    /// Real + synthetic subjects.
    pub subjects: u64,
    /// Real subjects.
    pub real: u64,
    /// Synthetic subjects.
    pub synthetic: u64,
    /// `subjects` over all counted subjects (0 when there are none).
    pub share: f64,
}

/// Counts per level of one key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Marginal {
    /// The key column.
    pub column: String,
    /// One entry per level, in level order.
    pub levels: Vec<Count>,
}

/// The strata report (also the `--json` output).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StrataReport {
    /// Cohort folder.
    pub cohort: PathBuf,
    /// Counted split (`train`, `val`, `test`) or `all`.
    pub split: String,
    /// Stratum keys.
    pub keys: Vec<String>,
    /// Counted subjects.
    pub subjects: u64,
    /// Counted real subjects.
    pub real: u64,
    /// Counted synthetic subjects.
    pub synthetic: u64,
    /// Every stratum (the cross product of the key levels), in key order.
    pub strata: Vec<Count>,
    /// Per-key counts.
    pub marginals: Vec<Marginal>,
    /// The smallest non-empty strata, ascending (ties in key order).
    pub smallest: Vec<Count>,
    /// Key values of the strata without any subject.
    pub empty: Vec<Vec<String>>,
}

/// The name of a split choice in reports and errors (`all` for every split).
pub fn scope_name(split: Option<Split>) -> String {
    split.map_or_else(|| "all".to_string(), |s| s.to_string())
}

/// Builds the strata report of a cohort.
pub fn run(cfg: &ReportConfig) -> Result<StrataReport> {
    // 1. check the keys before reading
    let table = cfg.cohort.join(cmr_core::cohort::COHORT_PARQUET);
    check_keys(&table, &cfg.by)?;
    // 2. read the columns used
    let mut columns: Vec<&str> = cfg.by.iter().map(String::as_str).collect();
    columns.extend(["subject_id", "split", "source"]);
    let cols = CohortColumns::read(&cfg.cohort, &columns)?;
    // 3. assign strata and count
    let selected: Vec<bool> = cols.splits()?.into_iter().map(|s| cfg.split.is_none_or(|want| want == s)).collect();
    let strata = Strata::build(&cols, &cfg.by, &cfg.attributes, &selected, &scope_name(cfg.split))?;
    let counts = strata.counts(&cols.sources()?);
    Ok(assemble(cfg, &strata, &counts))
}

fn assemble(cfg: &ReportConfig, strata: &Strata, counts: &Counts) -> StrataReport {
    let (real, synthetic) = (counts.real.iter().sum::<u64>(), counts.synthetic.iter().sum::<u64>());
    let subjects = real + synthetic;
    let count = |values: Vec<String>, real: u64, synthetic: u64| Count {
        values,
        subjects: real + synthetic,
        real,
        synthetic,
        share: if subjects == 0 { 0.0 } else { (real + synthetic) as f64 / subjects as f64 },
    };
    let all: Vec<Count> =
        (0..strata.len()).map(|s| count(strata.values(s), counts.real[s], counts.synthetic[s])).collect();
    let marginals = strata
        .keys
        .iter()
        .enumerate()
        .map(|(k, column)| {
            let mut per_level = vec![(0u64, 0u64); strata.levels[k].len()];
            for s in 0..strata.len() {
                let level = &mut per_level[strata.level(s, k)];
                level.0 += counts.real[s];
                level.1 += counts.synthetic[s];
            }
            let levels = strata.levels[k]
                .iter()
                .zip(per_level)
                .map(|(value, (real, synthetic))| count(vec![value.clone()], real, synthetic))
                .collect();
            Marginal { column: column.clone(), levels }
        })
        .collect();
    let mut smallest: Vec<Count> = all.iter().filter(|c| c.subjects > 0).cloned().collect();
    smallest.sort_by_key(|c| c.subjects); // stable: ties stay in key order
    smallest.truncate(cfg.smallest);
    let empty = all.iter().filter(|c| c.subjects == 0).map(|c| c.values.clone()).collect();
    StrataReport {
        cohort: cfg.cohort.clone(),
        split: scope_name(cfg.split),
        keys: strata.keys.clone(),
        subjects,
        real,
        synthetic,
        strata: all,
        marginals,
        smallest,
        empty,
    }
}

impl fmt::Display for StrataReport {
    /// A table for people: non-empty strata, marginals, the smallest strata and the empty ones.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: {} {} subjects ({} real, {} synthetic) by {}",
            self.cohort.display(),
            self.subjects,
            self.split,
            self.real,
            self.synthetic,
            self.keys.join(" × ")
        )?;
        let row = |f: &mut fmt::Formatter<'_>, c: &Count| {
            writeln!(
                f,
                "  {:<40} {:>8} {:>6.1}% {:>8} {:>9}",
                c.values.join(" | "),
                c.subjects,
                100.0 * c.share,
                c.real,
                c.synthetic
            )
        };
        writeln!(f, "\nstrata{:>43} {:>7} {:>8} {:>9}", "subjects", "share", "real", "synthetic")?;
        for c in self.strata.iter().filter(|c| c.subjects > 0) {
            row(f, c)?;
        }
        for m in &self.marginals {
            writeln!(f, "\n{}", m.column)?;
            for c in &m.levels {
                row(f, c)?;
            }
        }
        writeln!(f, "\nsmallest strata")?;
        for c in &self.smallest {
            row(f, c)?;
        }
        writeln!(f, "\n{} of {} strata have no subject", self.empty.len(), self.strata.len())?;
        for values in &self.empty {
            writeln!(f, "  {}", values.join(" | "))?;
        }
        Ok(())
    }
}
