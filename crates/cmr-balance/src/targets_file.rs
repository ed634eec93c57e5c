//! The CSV files of the `counts:FILE` and `reference:FILE` strategies: one row per stratum, one column per stratum
//! key (named as the key, values as the report prints them) and one value column — `target` (an exact subject count)
//! for `counts`, `share` (a non-negative weight; normalised per balancing group) for `reference`.
//!
//! With `--per-site` the file may also have a `site` column (targets per site); without one its rows apply to every
//! site. Strata the file does not list are left out of the strategy (their current count stands for `counts`, their
//! share is 0 for `reference`).

use std::path::Path;

use cmr_core::CoreError;

use crate::error::{BalanceError, Result};
use crate::strata::Strata;

/// The value column of a targets file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueColumn {
    /// `target`: an exact count ≥ 0 (strategy `counts`).
    Target,
    /// `share`: a weight ≥ 0 (strategy `reference`).
    Share,
}

impl ValueColumn {
    fn name(self) -> &'static str {
        match self {
            ValueColumn::Target => "target",
            ValueColumn::Share => "share",
        }
    }

    fn parse(self, text: &str) -> Option<f64> {
        match self {
            ValueColumn::Target => text.trim().parse::<u64>().ok().map(|v| v as f64),
            ValueColumn::Share => text.trim().parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0),
        }
    }

    fn expected(self) -> &'static str {
        match self {
            ValueColumn::Target => "a whole count ≥ 0",
            ValueColumn::Share => "a finite share ≥ 0",
        }
    }
}

/// Reads a targets file against `strata`. `site_key` is true when `--per-site` put `site` in front of the keys (the
/// file may then omit it). Returns the file's value for every stratum (`None` where the file does not list it).
pub fn read(path: &Path, strata: &Strata, value: ValueColumn, site_key: bool) -> Result<Vec<Option<f64>>> {
    let csv_err = |e: csv::Error| CoreError::Table { path: path.into(), message: e.to_string() };
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(path).map_err(csv_err)?;
    let header: Vec<String> = reader.headers().map_err(csv_err)?.iter().map(str::to_string).collect();
    // 1. columns: every key (site optional with --per-site), the value column, nothing else
    let position = |name: &str| header.iter().position(|h| h == name);
    let value_at = position(value.name()).ok_or_else(|| CoreError::missing(path, value.name()))?;
    let mut key_at: Vec<Option<usize>> = Vec::with_capacity(strata.keys.len());
    for (k, key) in strata.keys.iter().enumerate() {
        match position(key) {
            Some(at) => key_at.push(Some(at)),
            None if site_key && k == 0 => key_at.push(None),
            None => return Err(CoreError::missing(path, key.as_str()).into()),
        }
    }
    if let Some(extra) = header.iter().find(|h| *h != value.name() && !strata.keys.contains(*h)) {
        let expected = format!("the stratum keys {} and `{}`", strata.keys.join(", "), value.name());
        return Err(BalanceError::invalid(path, extra.as_str(), expected, "an unknown column"));
    }
    // 2. rows → strata
    let mut values: Vec<Option<f64>> = vec![None; strata.len()];
    for record in reader.records() {
        let record = record.map_err(csv_err)?;
        let line = record.position().map_or(0, |p| p.line());
        let stratum: Vec<String> = strata
            .keys
            .iter()
            .zip(&key_at)
            .filter_map(|(key, at)| at.map(|at| format!("{key}={}", &record[at])))
            .collect();
        let stratum = stratum.join("|");
        // Level index per key; `None` for an omitted site (every site).
        let mut levels: Vec<Option<usize>> = Vec::with_capacity(strata.keys.len());
        for (k, at) in key_at.iter().enumerate() {
            let Some(at) = *at else {
                levels.push(None);
                continue;
            };
            let cell = &record[at];
            let level = strata.levels[k].iter().position(|l| l == cell).ok_or_else(|| {
                let (column, known) = (&strata.keys[k], strata.levels[k].join(", "));
                let problem = format!("column `{column}` has no level {cell:?} (levels: {known})");
                BalanceError::UnknownStratum { path: path.into(), line, stratum: stratum.clone(), problem }
            })?;
            levels.push(Some(level));
        }
        let cell = &record[value_at];
        let parsed = value.parse(cell).ok_or_else(|| {
            BalanceError::invalid(
                path,
                format!("{} (line {line})", value.name()),
                value.expected(),
                format!("{cell:?}"),
            )
        })?;
        let sites = if levels.first().is_some_and(Option::is_none) { 0..strata.levels[0].len() } else { 0..1 };
        for site in sites {
            let s: usize = levels.iter().enumerate().map(|(k, level)| level.unwrap_or(site) * strata.stride(k)).sum();
            if values[s].replace(parsed).is_some() {
                let expected = "each stratum once";
                return Err(BalanceError::invalid(path, format!("line {line}"), expected, format!("{stratum} again")));
            }
        }
    }
    Ok(values)
}
