//! Column access to the cohort table at scale. `report` and `plan` read only the columns they use (a Parquet
//! projection) and work on plain column vectors borrowed from the polars `DataFrame`, never on one `CohortRow` per
//! subject: at a million rows the per-row allocations would cost more than the whole computation.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use cmr_core::cohort::{ColumnKind, COHORT_PARQUET, SCHEMA};
use cmr_core::{atomic, CoreError, Sex, Source, Split};
use polars::prelude::*;

use crate::error::{BalanceError, Result};

/// A projection of a cohort table: the columns one computation needs.
#[derive(Debug)]
pub struct CohortColumns {
    /// The Parquet file read (named in errors).
    pub path: PathBuf,
    df: DataFrame,
}

/// The schema kind of cohort column `name`, or an error listing the cohort's columns.
pub fn column_kind(path: &Path, name: &str) -> Result<ColumnKind> {
    SCHEMA.iter().find(|(n, _)| *n == name).map(|(_, kind)| *kind).ok_or_else(|| BalanceError::UnknownColumn {
        path: path.into(),
        column: name.into(),
        available: SCHEMA.map(|(n, _)| n).join(", "),
    })
}

impl CohortColumns {
    /// Reads `columns` (deduplicated, each a cohort column) of `dir/cohort.parquet` and checks their types.
    pub fn read(dir: &Path, columns: &[&str]) -> Result<Self> {
        let path = dir.join(COHORT_PARQUET);
        let mut wanted: Vec<String> = Vec::new();
        for name in columns {
            column_kind(&path, name)?;
            if !wanted.iter().any(|w| w == name) {
                wanted.push(name.to_string());
            }
        }
        let file = std::fs::File::open(&path).map_err(|e| CoreError::io(&path, e))?;
        let df = ParquetReader::new(file)
            .with_columns(Some(wanted.clone()))
            .finish()
            .map_err(|e| CoreError::Table { path: path.clone(), message: e.to_string() })?;
        for name in &wanted {
            let kind = column_kind(&path, name)?;
            let column = df.column(name).map_err(|_| CoreError::missing(&path, name.as_str()))?;
            if column.dtype() != &kind.dtype() {
                return Err(BalanceError::invalid(&path, name.as_str(), kind.dtype().to_string(), column.dtype()));
            }
        }
        Ok(Self { path, df })
    }

    /// Number of rows.
    pub fn height(&self) -> usize {
        self.df.height()
    }

    fn column(&self, name: &str) -> &Column {
        self.df.column(name).unwrap_or_else(|_| panic!("column {name} was not read (programmer error)"))
    }

    /// A text column (nulls as `None`).
    ///
    /// # Panics
    /// If `name` was not read or is not a text column (a programmer error: [`CohortColumns::read`] checked types).
    pub fn strs(&self, name: &str) -> Vec<Option<&str>> {
        self.column(name).str().expect("checked type").iter().collect()
    }

    /// A text column that the schema declares non-null; a null is reported naming the row.
    pub fn required_strs(&self, name: &str) -> Result<Vec<&str>> {
        let values = self.strs(name);
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| {
                    BalanceError::invalid(&self.path, name, "a value in every row", format!("null in row {i}"))
                })
            })
            .collect()
    }

    /// A float column (nulls as `None`).
    ///
    /// # Panics
    /// As [`CohortColumns::strs`].
    pub fn f64s(&self, name: &str) -> Vec<Option<f64>> {
        self.column(name).f64().expect("checked type").iter().collect()
    }

    /// The `label` column (never null in a cohort).
    pub fn labels(&self) -> Result<Vec<i32>> {
        let column = self.column("label").i32().expect("checked type");
        column
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| BalanceError::invalid(&self.path, "label", "0 or 1", format!("null in row {i}")))
            })
            .collect()
    }

    /// The `split` column, parsed.
    pub fn splits(&self) -> Result<Vec<Split>> {
        let values = self.required_strs("split")?.into_iter().map(Some);
        Ok(parse_each(&self.path, "split", values)?.into_iter().map(|v| v.expect("no nulls in")).collect())
    }

    /// The `source` column, parsed.
    pub fn sources(&self) -> Result<Vec<Source>> {
        let values = self.required_strs("source")?.into_iter().map(Some);
        Ok(parse_each(&self.path, "source", values)?.into_iter().map(|v| v.expect("no nulls in")).collect())
    }

    /// The `sex` column, parsed (nulls as `None`).
    pub fn sexes(&self) -> Result<Vec<Option<Sex>>> {
        parse_each(&self.path, "sex", self.strs("sex"))
    }
}

/// Parses the text values of column `name`, each distinct value once (a cheap pass at any size).
fn parse_each<'v, T: FromStr<Err = String> + Copy>(
    path: &Path,
    name: &str,
    values: impl IntoIterator<Item = Option<&'v str>>,
) -> Result<Vec<Option<T>>> {
    let mut seen: Vec<(&str, T)> = Vec::new();
    values
        .into_iter()
        .map(|value| {
            let Some(value) = value else { return Ok(None) };
            if let Some((_, parsed)) = seen.iter().find(|(v, _)| *v == value) {
                return Ok(Some(*parsed));
            }
            let parsed: T = value.parse().map_err(|e: String| BalanceError::invalid(path, name, e, value))?;
            seen.push((value, parsed));
            Ok(Some(parsed))
        })
        .collect()
}

/// Writes `df` as `dir/{stem}.parquet` and its CSV twin `dir/{stem}.csv`, each atomically.
pub fn write_twin(dir: &Path, stem: &str, df: &mut DataFrame) -> Result<()> {
    let parquet = dir.join(format!("{stem}.parquet"));
    atomic::write_with(&parquet, |file| {
        ParquetWriter::new(file).finish(df).map(|_| ()).map_err(std::io::Error::other)
    })?;
    let csv = dir.join(format!("{stem}.csv"));
    atomic::write_with(&csv, |file| CsvWriter::new(file).finish(df).map_err(std::io::Error::other))?;
    Ok(())
}
