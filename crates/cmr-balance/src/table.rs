//! Column access to the cohort table at scale. `report` and `plan` read only the columns they use (a Parquet
//! projection) and work on plain column vectors borrowed from the polars `DataFrame`, never on one `CohortRow` per
//! subject: at a million rows the per-row allocations would cost more than the whole computation.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
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
        required(&self.path, name, self.strs(name))
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
        self.parse_required("split")
    }

    /// The `source` column, parsed.
    pub fn sources(&self) -> Result<Vec<Source>> {
        self.parse_required("source")
    }

    /// The `sex` column, parsed (nulls as `None`).
    pub fn sexes(&self) -> Result<Vec<Option<Sex>>> {
        self.parse_each("sex")
    }

    /// A low-cardinality text column (site, diagnosis, bands) as [`CohortColumns::strs`] gives it, read through
    /// [`CohortColumns::dictionary`]: each distinct value is looked up once instead of once per row.
    ///
    /// # Panics
    /// As [`CohortColumns::strs`].
    pub fn categories(&self, name: &str) -> Vec<Option<&str>> {
        let dict = self.dictionary(name);
        dict.codes.iter().map(|&c| (c != NULL_CODE).then(|| dict.levels[c as usize])).collect()
    }

    /// [`CohortColumns::categories`] of a column the schema declares non-null; a null is reported naming the row.
    pub fn required_categories(&self, name: &str) -> Result<Vec<&str>> {
        required(&self.path, name, self.categories(name))
    }

    /// A text column dictionary-encoded (see [`Dictionary`]).
    ///
    /// Polars stores text as Arrow string views: a string of at most 12 bytes sits inline in its 16-byte view
    /// (length + bytes, zero-padded), so equal views mean equal strings and the lookup compares integers; longer
    /// strings are looked up by value.
    ///
    /// # Panics
    /// As [`CohortColumns::strs`].
    pub fn dictionary(&self, name: &str) -> Dictionary<'_> {
        let mut dict = Dictionary { levels: Vec::new(), codes: Vec::with_capacity(self.height()) };
        let mut inline_index: HashMap<u128, u32, BuildHasherDefault<ViewHasher>> = HashMap::default();
        let mut long_index: HashMap<&str, u32> = HashMap::new();
        let column = self.column(name).str().expect("checked type");
        // Row validity, only when there are nulls (one pass over a bitmap rather than a check per value).
        let valid: Vec<bool> = if column.null_count() > 0 {
            column.is_not_null().iter().map(|v| v == Some(true)).collect()
        } else {
            Vec::new()
        };
        for array in column.downcast_iter() {
            for (i, view) in array.views().iter().enumerate() {
                if !valid.is_empty() && !valid[dict.codes.len()] {
                    dict.codes.push(NULL_CODE);
                    continue;
                }
                let next = dict.levels.len() as u32;
                let code = if view.length as usize <= INLINE_BYTES {
                    *inline_index.entry(view.as_u128()).or_insert(next)
                } else {
                    *long_index.entry(array.value(i)).or_insert(next)
                };
                if code == next {
                    dict.levels.push(array.value(i));
                }
                dict.codes.push(code);
            }
        }
        dict
    }

    /// Parses the text values of column `name`, each distinct value once (a cheap pass at any size).
    fn parse_each<T: FromStr<Err = String> + Copy>(&self, name: &str) -> Result<Vec<Option<T>>> {
        let dict = self.dictionary(name);
        let parsed: Vec<T> = dict
            .levels
            .iter()
            .map(|v| v.parse().map_err(|e: String| BalanceError::invalid(&self.path, name, e, v)))
            .collect::<Result<_>>()?;
        Ok(dict.codes.iter().map(|&c| (c != NULL_CODE).then(|| parsed[c as usize])).collect())
    }

    /// A parsed text column that the schema declares non-null; a null is reported naming the row.
    fn parse_required<T: FromStr<Err = String> + Copy>(&self, name: &str) -> Result<Vec<T>> {
        required(&self.path, name, self.parse_each(name)?)
    }
}

/// The values of column `name` of `path`, or an error naming the first null row.
fn required<T>(path: &Path, name: &str, values: Vec<Option<T>>) -> Result<Vec<T>> {
    values
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            v.ok_or_else(|| BalanceError::invalid(path, name, "a value in every row", format!("null in row {i}")))
        })
        .collect()
}

/// Code of a null in [`Dictionary::codes`].
pub const NULL_CODE: u32 = u32::MAX;

/// A low-cardinality text column (sex, bands, split, site, …) dictionary-encoded: its distinct values in first-seen
/// order and each row's index into them ([`NULL_CODE`] for a null).
#[derive(Debug)]
pub struct Dictionary<'a> {
    /// Distinct values, in order of first appearance.
    pub levels: Vec<&'a str>,
    /// One code per row.
    pub codes: Vec<u32>,
}

/// Longest string an Arrow string view holds inline.
const INLINE_BYTES: usize = 12;

/// Hashes an inline string view (one `u128`) by a multiply-xorshift: a dictionary of a handful of short levels is
/// looked up once per row, and SipHash would cost more than the rest of the encoding.
#[derive(Default)]
struct ViewHasher(u64);

impl Hasher for ViewHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, v: u64) {
        let x = (self.0 ^ v).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        self.0 = x ^ (x >> 29);
    }

    fn write_u128(&mut self, v: u128) {
        self.write_u64(v as u64);
        self.write_u64((v >> 64) as u64);
    }
}

/// Writes `df` as `dir/{stem}.parquet` and its CSV twin `dir/{stem}.csv`, each atomically, the two at once.
pub fn write_twin(dir: &Path, stem: &str, df: &mut DataFrame) -> Result<()> {
    let parquet = dir.join(format!("{stem}.parquet"));
    let csv = dir.join(format!("{stem}.csv"));
    let mut for_csv = df.clone(); // shares the column buffers
    let (parquet_written, csv_written) = rayon::join(
        || {
            atomic::write_with(&parquet, |file| {
                ParquetWriter::new(file).finish(df).map(|_| ()).map_err(std::io::Error::other)
            })
        },
        || atomic::write_with(&csv, |file| CsvWriter::new(file).finish(&mut for_csv).map_err(std::io::Error::other)),
    );
    parquet_written?;
    csv_written?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_codes_equal_a_naive_encoding_for_short_long_and_many_levels() {
        // 40 levels (past the scan limit), some longer than an inline view, nulls, and values differing only in length.
        let values: Vec<Option<String>> = (0..400)
            .map(|i| match i % 43 {
                0 => None,
                k if k % 3 == 0 => Some(format!("a-rather-long-site-name-{k}")),
                // 12 bytes (the longest inline view) and 13 (the shortest stored apart), same prefix
                k if k % 5 == 1 => Some(format!("{k:0>12}")),
                k if k % 5 == 2 => Some(format!("{k:0>13}")),
                k => Some("x".repeat(k % 7 + 1) + &k.to_string()),
            })
            .collect();
        let column = Column::new("site".into(), values.clone());
        let cols =
            CohortColumns { path: PathBuf::from("cohort.parquet"), df: DataFrame::new(400, vec![column]).unwrap() };
        let dict = cols.dictionary("site");
        let mut naive: Vec<&str> = Vec::new();
        for (value, code) in values.iter().zip(&dict.codes) {
            match value {
                None => assert_eq!(*code, NULL_CODE),
                Some(v) => {
                    let expected = naive.iter().position(|n| n == v).unwrap_or_else(|| {
                        naive.push(v);
                        naive.len() - 1
                    });
                    assert_eq!(*code as usize, expected, "{v}");
                }
            }
        }
        assert_eq!(dict.levels, naive);
        assert!(dict.levels.len() > 16);
    }
}
