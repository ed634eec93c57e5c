//! Strata: the cross product of the levels of the stratum keys (`sex × age_band × bmi_class × label` by default), and
//! the stratum of every cohort row.
//!
//! Any cohort column may be a key. Text columns and `label` are used as stored; the numeric columns `age` and `bmi`
//! are binned by the attributes file (`age` by the `age_band` bins, `bmi` by the `bmi_class` bins); other numeric
//! columns have no binning and are refused. The levels of a key are the values it takes anywhere in the cohort (every
//! split, so a level seen only in val still makes an empty train stratum), with the bins of `age_band`/`bmi_class`
//! first in bin order even when unseen, then the other values sorted; labels sort numerically. Strata are numbered in
//! mixed radix, the first key most significant, so stratum order is the lexicographic order of the key levels.
//!
//! Counting is plain Rust over dictionary codes rather than a polars `group_by`: the workspace's polars is eager-only
//! without the categorical feature, and one pass over `u32` codes into a dense array is as fast as it gets.

use std::path::{Path, PathBuf};

use cmr_core::cohort::ColumnKind;
use cmr_core::{AttributeBins, Source};

use crate::error::{BalanceError, Result};
use crate::table::{column_kind, CohortColumns, Dictionary, NULL_CODE};

/// Default stratum keys (DESIGN.md, "balance").
pub const DEFAULT_KEYS: [&str; 4] = ["sex", "age_band", "bmi_class", "label"];

/// Largest number of strata (product of key levels) the stage accepts.
pub const MAX_STRATA: usize = 1 << 20;

/// Stratum code of a row outside the stratified rows.
const NONE: u32 = u32::MAX;

/// How the values of a key column become levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    /// A text column, used as stored.
    Text,
    /// The integer `label` column.
    Label,
    /// `age`, binned by the `age_band` bins.
    AgeBins,
    /// `bmi`, binned by the `bmi_class` bins.
    BmiBins,
}

fn key_kind(path: &Path, column: &str) -> Result<KeyKind> {
    match (column, column_kind(path, column)?) {
        (_, ColumnKind::Str | ColumnKind::NullableStr) => Ok(KeyKind::Text),
        (_, ColumnKind::I32) => Ok(KeyKind::Label),
        ("age", _) => Ok(KeyKind::AgeBins),
        ("bmi", _) => Ok(KeyKind::BmiBins),
        _ => Err(BalanceError::NoBinning { path: path.into(), column: column.into() }),
    }
}

/// Checks that every key is a usable cohort column (before any file is read beyond the path).
pub fn check_keys(path: &Path, keys: &[String]) -> Result<()> {
    keys.iter().try_for_each(|k| key_kind(path, k).map(|_| ()))
}

/// The strata of a cohort and the stratum of each stratified row.
#[derive(Debug, Clone)]
pub struct Strata {
    /// The cohort table (named in errors).
    pub path: PathBuf,
    /// Key columns, most significant first.
    pub keys: Vec<String>,
    /// Levels of each key, in stratum order.
    pub levels: Vec<Vec<String>>,
    /// `strides[k]`: how many strata one level of key `k` spans.
    strides: Vec<usize>,
    /// Stratum of every cohort row (`NONE` outside the stratified rows).
    of_row: Vec<u32>,
}

impl Strata {
    /// Assigns the rows where `selected` is true to strata of `keys`. `scope` names those rows in errors ("train").
    /// A key that is null in a selected row is an error that counts the rows and names the first subjects.
    pub fn build(
        cols: &CohortColumns,
        keys: &[String],
        bins: &AttributeBins,
        selected: &[bool],
        scope: &str,
    ) -> Result<Self> {
        let path = cols.path.clone();
        let mut levels = Vec::with_capacity(keys.len());
        let mut codes = Vec::with_capacity(keys.len());
        for key in keys {
            let (key_levels, key_codes) = encode(cols, key, key_kind(&path, key)?, bins)?;
            let nulls: Vec<usize> = (0..key_codes.len()).filter(|&i| selected[i] && key_codes[i] == NONE).collect();
            if !nulls.is_empty() {
                let ids = cols.required_strs("subject_id")?;
                let mut subjects: Vec<&str> = nulls.iter().take(5).map(|&i| ids[i]).collect();
                if nulls.len() > 5 {
                    subjects.push("…");
                }
                return Err(BalanceError::NullKeys {
                    path,
                    column: key.clone(),
                    scope: scope.into(),
                    rows: nulls.len(),
                    subjects: subjects.join(", "),
                });
            }
            levels.push(key_levels);
            codes.push(key_codes);
        }
        let strata: u128 = levels.iter().map(|l: &Vec<String>| l.len() as u128).product();
        if strata > MAX_STRATA as u128 {
            return Err(BalanceError::TooManyStrata { path, keys: keys.join(","), strata, limit: MAX_STRATA });
        }
        let mut strides = vec![1usize; keys.len()];
        for k in (0..keys.len().saturating_sub(1)).rev() {
            strides[k] = strides[k + 1] * levels[k + 1].len();
        }
        let of_row = (0..cols.height())
            .map(|i| {
                if !selected[i] {
                    return NONE;
                }
                codes.iter().zip(&strides).map(|(c, stride)| c[i] as usize * stride).sum::<usize>() as u32
            })
            .collect();
        Ok(Self { path, keys: keys.to_vec(), levels, strides, of_row })
    }

    /// Number of strata (product of the key levels; 1 with no keys).
    pub fn len(&self) -> usize {
        self.levels.iter().map(Vec::len).product()
    }

    /// Whether there are no strata (a key without any level).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many consecutive strata share one level of key `k`.
    pub fn stride(&self, k: usize) -> usize {
        self.strides[k]
    }

    /// The stratum of cohort row `row`, or `None` outside the stratified rows.
    pub fn of_row(&self, row: usize) -> Option<usize> {
        let s = self.of_row[row];
        (s != NONE).then_some(s as usize)
    }

    /// Level index of key `k` in stratum `s`.
    pub fn level(&self, s: usize, k: usize) -> usize {
        s / self.strides[k] % self.levels[k].len()
    }

    /// The key values of stratum `s`, in key order.
    pub fn values(&self, s: usize) -> Vec<String> {
        (0..self.keys.len()).map(|k| self.levels[k][self.level(s, k)].clone()).collect()
    }

    /// The value of key `column` in stratum `s`, if `column` is a key.
    pub fn value_of(&self, s: usize, column: &str) -> Option<&str> {
        let k = self.keys.iter().position(|key| key == column)?;
        Some(&self.levels[k][self.level(s, k)])
    }

    /// `key=value` pairs of stratum `s`, joined by `|` (a stable name used in messages and seed streams).
    pub fn name(&self, s: usize) -> String {
        self.keys.iter().zip(self.values(s)).map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("|")
    }

    /// Real and synthetic subjects per stratum.
    pub fn counts(&self, sources: &[Source]) -> Counts {
        let mut counts = Counts { real: vec![0; self.len()], synthetic: vec![0; self.len()] };
        for (&s, source) in self.of_row.iter().zip(sources) {
            if s != NONE {
                match source {
                    Source::Real => counts.real[s as usize] += 1,
                    Source::Synthetic => counts.synthetic[s as usize] += 1,
                }
            }
        }
        counts
    }

    /// The stratified rows for which `include` holds, grouped by stratum (rows ascending within a stratum).
    pub fn members(&self, include: impl Fn(usize) -> bool) -> Members {
        let mut offsets = vec![0usize; self.len() + 1];
        for (i, &s) in self.of_row.iter().enumerate() {
            if s != NONE && include(i) {
                offsets[s as usize + 1] += 1;
            }
        }
        for s in 0..self.len() {
            offsets[s + 1] += offsets[s];
        }
        let mut next = offsets.clone();
        let mut rows = vec![0u32; offsets[self.len()]];
        for (i, &s) in self.of_row.iter().enumerate() {
            if s != NONE && include(i) {
                rows[next[s as usize]] = i as u32;
                next[s as usize] += 1;
            }
        }
        Members { offsets, rows }
    }
}

/// Subject counts per stratum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counts {
    /// Real subjects per stratum.
    pub real: Vec<u64>,
    /// Synthetic subjects per stratum.
    pub synthetic: Vec<u64>,
}

impl Counts {
    /// Real + synthetic subjects of stratum `s`.
    pub fn total(&self, s: usize) -> u64 {
        self.real[s] + self.synthetic[s]
    }
}

/// Row indices grouped by stratum (compressed: one offsets array, one rows array).
#[derive(Debug, Clone)]
pub struct Members {
    offsets: Vec<usize>,
    rows: Vec<u32>,
}

impl Members {
    /// Rows of stratum `s`.
    pub fn of(&self, s: usize) -> &[u32] {
        &self.rows[self.offsets[s]..self.offsets[s + 1]]
    }
}

/// Levels of one key and the level index of every row (`NONE` for null).
fn encode(cols: &CohortColumns, column: &str, kind: KeyKind, bins: &AttributeBins) -> Result<(Vec<String>, Vec<u32>)> {
    Ok(match kind {
        KeyKind::Text => encode_text(cols.dictionary(column), bins.labels(column).unwrap_or_default()),
        KeyKind::Label => {
            let values = cols.labels()?;
            let mut distinct = values.clone();
            distinct.sort_unstable();
            distinct.dedup();
            let codes = values.iter().map(|v| distinct.binary_search(v).expect("value is listed") as u32).collect();
            (distinct.iter().map(i32::to_string).collect(), codes)
        }
        KeyKind::AgeBins | KeyKind::BmiBins => {
            let bins = if kind == KeyKind::AgeBins { &bins.age_band } else { &bins.bmi_class };
            let labels: Vec<&str> = bins.iter().map(|b| b.label.as_str()).collect();
            let codes = cols
                .f64s(column)
                .iter()
                .map(|v| match v {
                    Some(v) if !v.is_nan() => cmr_core::attributes::bin_index(bins, *v) as u32,
                    _ => NONE,
                })
                .collect();
            (labels.iter().map(|l| l.to_string()).collect(), codes)
        }
    })
}

/// Orders the levels of a dictionary-encoded text column: `preferred` levels first (in their order, even when
/// unseen), then the other values sorted; returns the levels and each row's code in that order.
fn encode_text(dict: Dictionary<'_>, preferred: Vec<&str>) -> (Vec<String>, Vec<u32>) {
    let mut others: Vec<&str> = dict.levels.iter().copied().filter(|v| !preferred.contains(v)).collect();
    others.sort_unstable();
    let levels: Vec<&str> = preferred.into_iter().chain(others).collect();
    let remap: Vec<u32> = dict
        .levels
        .iter()
        .map(|v| levels.iter().position(|l| l == v).expect("every seen value is a level") as u32)
        .collect();
    let codes = dict.codes.into_iter().map(|c| if c == NULL_CODE { NONE } else { remap[c as usize] }).collect();
    (levels.into_iter().map(str::to_string).collect(), codes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_levels_put_bins_first_then_sorted_values() {
        // rows: obese, null, zeta, normal, alpha, obese
        let dict =
            Dictionary { levels: vec!["obese", "zeta", "normal", "alpha"], codes: vec![0, NULL_CODE, 1, 2, 3, 0] };
        let (levels, codes) = encode_text(dict, vec!["underweight", "normal", "overweight", "obese"]);
        assert_eq!(levels, ["underweight", "normal", "overweight", "obese", "alpha", "zeta"]);
        assert_eq!(codes, [3, NONE, 5, 1, 4, 3]);
    }
}
