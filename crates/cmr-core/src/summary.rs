//! Counts of a cohort by the columns people ask about first (`cmr-debias cohort summary`).

use std::collections::BTreeMap;

use crate::subject::CohortRow;

/// Columns summarised, in display order.
pub const SUMMARY_COLUMNS: [&str; 7] = ["site", "split", "label", "sex", "age_band", "bmi_class", "source"];

/// Value shown for a null attribute.
pub const MISSING: &str = "(missing)";

/// Subject counts per value of each summarised column.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CohortSummary {
    /// Number of subjects.
    pub subjects: usize,
    /// Column → value → count (values sorted; nulls as [`MISSING`]).
    pub counts: BTreeMap<String, BTreeMap<String, usize>>,
}

impl CohortSummary {
    /// Counts `rows` by each of [`SUMMARY_COLUMNS`].
    pub fn of(rows: &[CohortRow]) -> Self {
        let mut counts: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for row in rows {
            for column in SUMMARY_COLUMNS {
                let value = column_value(row, column).unwrap_or_else(|| MISSING.to_string());
                *counts.entry(column.to_string()).or_default().entry(value).or_default() += 1;
            }
        }
        Self { subjects: rows.len(), counts }
    }
}

/// The text value of a summarised column (`None` for a null attribute).
///
/// # Panics
/// On a column outside [`SUMMARY_COLUMNS`] (a programmer error).
pub fn column_value(row: &CohortRow, column: &str) -> Option<String> {
    match column {
        "site" => Some(row.site.clone()),
        "split" => Some(row.split.to_string()),
        "label" => Some(row.label.to_string()),
        "sex" => row.sex.map(|s| s.to_string()),
        "age_band" => row.age_band.clone(),
        "bmi_class" => row.bmi_class.clone(),
        "source" => Some(row.source.to_string()),
        other => panic!("not a summary column: {other}"),
    }
}
