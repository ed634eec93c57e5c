//! Subject-level train/val/test splits, stratified by label and site and fixed by a seed (DESIGN.md, "Splits").

use std::collections::BTreeMap;

use rand::seq::SliceRandom;

use crate::seed;
use crate::subject::Split;

/// Fractions of subjects in the validation and test splits; the rest is train.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SplitFractions {
    /// Share of each stratum in `val` (default 0.15).
    pub val: f64,
    /// Share of each stratum in `test` (default 0.15).
    pub test: f64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        Self { val: 0.15, test: 0.15 }
    }
}

/// What the split needs to know of a subject.
#[derive(Debug, Clone, Copy)]
pub struct SplitKey<'a> {
    /// Unique subject id (orders subjects before shuffling, so input order does not matter).
    pub subject_id: &'a str,
    /// Site (a stratum key).
    pub site: &'a str,
    /// Task label (a stratum key).
    pub label: i32,
}

/// Assigns a split to every subject: within each (site, label) stratum, subjects are shuffled by a stream derived
/// from `root_seed` and the stratum, then `round(n·val)` go to val, `round(n·test)` to test, the rest to train;
/// a stratum always keeps at least one train subject.
pub fn assign(subjects: &[SplitKey<'_>], fractions: SplitFractions, root_seed: u64) -> Vec<Split> {
    let mut strata: BTreeMap<(&str, i32), Vec<usize>> = BTreeMap::new();
    for (i, s) in subjects.iter().enumerate() {
        strata.entry((s.site, s.label)).or_default().push(i);
    }
    let mut splits = vec![Split::Train; subjects.len()];
    for ((site, label), mut members) in strata {
        members.sort_by_key(|&i| subjects[i].subject_id);
        let mut rng = seed::rng(root_seed, &["split", site, &label.to_string()]);
        members.shuffle(&mut rng);
        let n = members.len();
        let n_val = ((n as f64 * fractions.val).round() as usize).min(n.saturating_sub(1));
        let n_test = ((n as f64 * fractions.test).round() as usize).min(n - 1 - n_val);
        for (rank, &i) in members.iter().enumerate() {
            splits[i] = if rank < n_val {
                Split::Val
            } else if rank < n_val + n_test {
                Split::Test
            } else {
                Split::Train
            };
        }
    }
    splits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ids: &[String]) -> Vec<SplitKey<'_>> {
        ids.iter()
            .enumerate()
            .map(|(i, id)| SplitKey {
                subject_id: id,
                site: if i % 2 == 0 { "a" } else { "b" },
                label: (i % 3 == 0) as i32,
            })
            .collect()
    }

    #[test]
    fn split_is_stratified_deterministic_and_order_free() {
        let ids: Vec<String> = (0..120).map(|i| format!("s{i:03}")).collect();
        let k = keys(&ids);
        let a = assign(&k, SplitFractions::default(), 3);
        assert_eq!(a, assign(&k, SplitFractions::default(), 3));
        assert_ne!(a, assign(&k, SplitFractions::default(), 4));
        // Per stratum: 20 subjects (a,1) → 3 val, 3 test, 14 train.
        let count = |site: &str, label: i32, split: Split| {
            k.iter().zip(&a).filter(|(s, sp)| s.site == site && s.label == label && **sp == split).count()
        };
        assert_eq!((count("a", 1, Split::Val), count("a", 1, Split::Test), count("a", 1, Split::Train)), (3, 3, 14));
        // Reversed input order gives each subject the same split.
        let rev: Vec<_> = k.iter().rev().copied().collect();
        let b = assign(&rev, SplitFractions::default(), 3);
        assert!(rev
            .iter()
            .zip(&b)
            .all(|(s, sp)| a[k.iter().position(|x| x.subject_id == s.subject_id).unwrap()] == *sp));
    }

    #[test]
    fn a_singleton_stratum_stays_in_train() {
        let ids = ["only".to_string()];
        let k = [SplitKey { subject_id: &ids[0], site: "x", label: 1 }];
        assert_eq!(assign(&k, SplitFractions { val: 0.5, test: 0.5 }, 0), vec![Split::Train]);
    }
}
