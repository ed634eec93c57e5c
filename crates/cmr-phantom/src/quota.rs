//! Exact quota allocation: a scenario's shares become exact subject counts for N subjects.
//!
//! The method is the largest-remainder (Hamilton) method, applied top-down:
//! 1. vendor shares → an exact count per vendor (out of N);
//! 2. per vendor, diagnosis prevalence → an exact count per (vendor, diagnosis);
//! 3. per (vendor, diagnosis), the sex mix → an exact count per (vendor, diagnosis, sex).
//!
//! At each step, with shares `s_i` (normalised by their sum) and a total `n`, every key first gets `floor(n·s_i)`;
//! the `n − Σ floor` subjects left over go one each to the keys with the largest fractional parts `n·s_i − floor`.
//! Fractional parts are compared after rounding to 9 decimals (so `0.1 + 0.2` style noise cannot reorder equal
//! parts); ties go to the key that sorts first by name (byte order: `Canon < GE < Philips < Siemens`,
//! `DCM < HCM < MINF < NOR`, `F < M`). Keys with share 0 always get 0.

use std::collections::BTreeMap;

use cmr_core::Sex;
use serde::Serialize;

use crate::{Condition, Vendor};

/// Splits `n` over `shares` (key → non-negative weight, not necessarily normalised) by the largest-remainder method.
/// Returns the count of every key (0 for zero shares); counts sum to `n`. All-zero or empty shares give all zeros
/// (callers validate shares before).
///
/// ```
/// use std::collections::BTreeMap;
/// let shares = BTreeMap::from([("a", 1.0), ("b", 1.0), ("c", 1.0)]);
/// let counts = cmr_phantom::quota::largest_remainder(10, &shares);
/// assert_eq!(counts, BTreeMap::from([("a", 4), ("b", 3), ("c", 3)]));
/// ```
pub fn largest_remainder<K: Ord + Clone>(n: usize, shares: &BTreeMap<K, f64>) -> BTreeMap<K, usize> {
    let total: f64 = shares.values().filter(|s| s.is_finite() && **s > 0.0).sum();
    let mut counts: BTreeMap<K, usize> = shares.keys().map(|k| (k.clone(), 0)).collect();
    if total <= 0.0 || n == 0 {
        return counts;
    }
    let mut remainders: Vec<(f64, K)> = Vec::with_capacity(shares.len());
    let mut given = 0usize;
    for (key, &share) in shares {
        if !(share.is_finite() && share > 0.0) {
            continue;
        }
        let exact = n as f64 * share / total;
        let floor = exact.floor();
        let count = floor as usize;
        given += count;
        counts.insert(key.clone(), count);
        remainders.push((((exact - floor) * 1e9).round() / 1e9, key.clone()));
    }
    // Largest fractional part first; equal parts keep key order (the sort is stable and keys arrive sorted).
    remainders.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (_, key) in remainders.into_iter().take(n.saturating_sub(given)) {
        *counts.get_mut(&key).expect("key inserted above") += 1;
    }
    counts
}

/// One cell of the quota table: how many subjects have this vendor, diagnosis and sex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaCell {
    /// Scanner vendor.
    pub vendor: Vendor,
    /// Phantom condition (ACDC code).
    pub diagnosis: Condition,
    /// Sex.
    pub sex: Sex,
    /// Number of subjects.
    pub count: usize,
}

/// The exact counts a scenario prescribes for N subjects, cell by cell (vendor, diagnosis, sex in name order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quotas {
    /// Cells with their counts, zero-count cells included.
    pub cells: Vec<QuotaCell>,
}

impl Quotas {
    /// Total number of subjects.
    pub fn total(&self) -> usize {
        self.cells.iter().map(|c| c.count).sum()
    }

    /// Count per vendor name.
    pub fn by_vendor(&self) -> BTreeMap<String, usize> {
        self.sum_by(|c| c.vendor.name().to_string())
    }

    /// Count per (vendor name, diagnosis code).
    pub fn by_vendor_diagnosis(&self) -> BTreeMap<(String, String), usize> {
        self.sum_by(|c| (c.vendor.name().to_string(), c.diagnosis.acdc_code().to_string()))
    }

    /// Count per ACDC diagnosis code.
    pub fn by_diagnosis(&self) -> BTreeMap<String, usize> {
        self.sum_by(|c| c.diagnosis.acdc_code().to_string())
    }

    /// Count per sex code.
    pub fn by_sex(&self) -> BTreeMap<String, usize> {
        self.sum_by(|c| c.sex.code().to_string())
    }

    fn sum_by<K: Ord>(&self, key: impl Fn(&QuotaCell) -> K) -> BTreeMap<K, usize> {
        let mut out = BTreeMap::new();
        for cell in &self.cells {
            *out.entry(key(cell)).or_insert(0) += cell.count;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_sum_to_n_and_follow_hamilton() {
        let shares = BTreeMap::from([("x", 0.5), ("y", 0.3), ("z", 0.2)]);
        for n in 0..50 {
            let c = largest_remainder(n, &shares);
            assert_eq!(c.values().sum::<usize>(), n);
            for (k, s) in &shares {
                let exact = n as f64 * s;
                assert!((c[k] as f64 - exact).abs() < 1.0, "n={n} {k}: {} vs {exact}", c[k]);
            }
        }
        // 7 × (0.5, 0.3, 0.2) = 3.5, 2.1, 1.4 → floors 3, 2, 1; one left → x (0.5 largest).
        assert_eq!(largest_remainder(7, &shares), BTreeMap::from([("x", 4), ("y", 2), ("z", 1)]));
    }

    #[test]
    fn zero_shares_get_nothing_and_ties_go_to_name_order() {
        let shares = BTreeMap::from([("b", 1.0), ("a", 1.0), ("c", 0.0)]);
        assert_eq!(largest_remainder(3, &shares), BTreeMap::from([("a", 2), ("b", 1), ("c", 0)]));
        // 0.1 + 0.2 noise: 10 × 0.3 must not lose to an equal remainder because of rounding.
        let shares = BTreeMap::from([("p", 0.1 + 0.2), ("q", 0.3), ("r", 0.4)]);
        assert_eq!(largest_remainder(10, &shares), BTreeMap::from([("p", 3), ("q", 3), ("r", 4)]));
    }
}
