//! Rebalancing strategies: how many subjects each stratum should have, with imbalanced-learn's `sampling_strategy`
//! semantics for over-sampling (<https://imbalanced-learn.org/stable/introduction.html#sampling-strategy>), and the
//! guards that decide how many of the missing subjects can actually be planned.
//!
//! A *balancing group* is the set of strata balanced against each other: every stratum (pooled) or, with
//! `--per-site`, the strata of one site (each federated client balances its own data).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{BalanceError, Result};
use crate::strata::Counts;

/// A rebalancing strategy (`--strategy`).
#[derive(Debug, Clone, PartialEq)]
pub enum Strategy {
    /// `not-majority`: every stratum up to the largest stratum's count (imbalanced-learn `"not majority"`).
    NotMajority,
    /// `counts:FILE`: exact targets per stratum (imbalanced-learn's dict); unlisted strata keep their count; a target
    /// below the current count is an error.
    Counts(PathBuf),
    /// `ratio:R`, R in (0, 1]: every stratum to at least `⌊R × largest⌋` (imbalanced-learn's float, which truncates
    /// `R × majority − count` the same way; unlike imbalanced-learn, a stratum already above it is kept, not an error).
    Ratio(f64),
    /// `reference:FILE`: match a reference distribution of the keys (e.g. a census table), scaled to the balancing
    /// group's current size: `target = round(share × size)`; strata already above their target keep their subjects.
    Reference(PathBuf),
    /// `weights`: no generation; per-subject sampling weights `1 / stratum size` (the reference code's weighted
    /// sampler).
    Weights,
}

const EXPECTED: &str = "not-majority, counts:FILE, ratio:R (0 < R ≤ 1), reference:FILE or weights";

impl FromStr for Strategy {
    type Err = BalanceError;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = |expected: &str| BalanceError::InvalidStrategy { got: s.into(), expected: expected.into() };
        match s.split_once(':') {
            None if s == "not-majority" => Ok(Strategy::NotMajority),
            None if s == "weights" => Ok(Strategy::Weights),
            Some(("counts", file)) if !file.is_empty() => Ok(Strategy::Counts(file.into())),
            Some(("reference", file)) if !file.is_empty() => Ok(Strategy::Reference(file.into())),
            Some(("ratio", r)) => match r.parse::<f64>() {
                Ok(r) if r > 0.0 && r <= 1.0 => Ok(Strategy::Ratio(r)),
                _ => Err(invalid("a ratio R with 0 < R ≤ 1 in ratio:R (every stratum to at least R × the largest)")),
            },
            _ => Err(invalid(EXPECTED)),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::NotMajority => f.write_str("not-majority"),
            Strategy::Counts(p) => write!(f, "counts:{}", p.display()),
            Strategy::Ratio(r) => write!(f, "ratio:{r}"),
            Strategy::Reference(p) => write!(f, "reference:{}", p.display()),
            Strategy::Weights => f.write_str("weights"),
        }
    }
}

impl Strategy {
    /// The targets file of `counts` and `reference`.
    pub fn file(&self) -> Option<&Path> {
        match self {
            Strategy::Counts(p) | Strategy::Reference(p) => Some(p),
            _ => None,
        }
    }

    /// Target subject count of every stratum. Strata `[g·group_len, (g+1)·group_len)` form balancing group `g`.
    /// `listed` holds the targets file's value per stratum (`counts`, `reference`); `name` names a stratum in errors.
    ///
    /// # Panics
    /// If `listed` is `None` for `counts` or `reference`, or `group_len` is 0 (programmer errors).
    pub fn targets(
        &self,
        counts: &Counts,
        group_len: usize,
        listed: Option<&[Option<f64>]>,
        name: impl Fn(usize) -> String,
    ) -> Result<Vec<u64>> {
        let n = counts.real.len();
        let mut targets: Vec<u64> = (0..n).map(|s| counts.total(s)).collect();
        for group in (0..n).step_by(group_len).map(|start| start..(start + group_len).min(n)) {
            let largest = group.clone().map(|s| counts.total(s)).max().unwrap_or(0);
            let size: u64 = group.clone().map(|s| counts.total(s)).sum();
            match self {
                Strategy::NotMajority => group.for_each(|s| targets[s] = largest),
                Strategy::Ratio(r) => {
                    let floor = (r * largest as f64) as u64;
                    group.for_each(|s| targets[s] = targets[s].max(floor));
                }
                Strategy::Counts(path) => {
                    let listed = listed.expect("counts has a targets file");
                    for s in group {
                        let Some(target) = listed[s] else { continue };
                        let (target, current) = (target as u64, counts.total(s));
                        if target < current {
                            let stratum = name(s);
                            return Err(BalanceError::TargetBelowCurrent {
                                path: path.clone(),
                                stratum,
                                target,
                                current,
                            });
                        }
                        targets[s] = target;
                    }
                }
                Strategy::Reference(path) => {
                    let listed = listed.expect("reference has a targets file");
                    let total_share: f64 = group.clone().filter_map(|s| listed[s]).sum();
                    if total_share <= 0.0 {
                        let field = format!("share (strata {} … {})", name(group.start), name(group.end - 1));
                        return Err(BalanceError::invalid(path, field, "a positive share for some stratum", "none"));
                    }
                    for s in group {
                        let share = listed[s].unwrap_or(0.0) / total_share;
                        targets[s] = (share * size as f64).round() as u64;
                    }
                }
                Strategy::Weights => {}
            }
        }
        Ok(targets)
    }
}

/// The guards of a plan (issue 4: "Guards").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Guards {
    /// Strata with fewer real subjects cannot be synthesised from (no mask to condition on); ≥ 1 (default 1).
    pub min_real: u64,
    /// Cap on synthetic / real subjects per stratum, counting synthetic subjects already present; `None`: no cap.
    pub max_synthetic_ratio: Option<f64>,
}

impl Default for Guards {
    fn default() -> Self {
        Self { min_real: 1, max_synthetic_ratio: None }
    }
}

impl Guards {
    /// Checks the values (`--min-real` ≥ 1, `--max-synthetic-ratio` finite and ≥ 0).
    pub fn check(&self) -> Result<()> {
        if self.min_real == 0 {
            let expected = "at least 1 (a synthetic subject needs a real mask to condition on)";
            return Err(BalanceError::InvalidOption { option: "--min-real", expected, got: "0".into() });
        }
        match self.max_synthetic_ratio {
            Some(r) if !(r.is_finite() && r >= 0.0) => Err(BalanceError::InvalidOption {
                option: "--max-synthetic-ratio",
                expected: "a finite ratio ≥ 0",
                got: r.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// How many of `needed` subjects a stratum with `real` and `synthetic` subjects may get, and why fewer (if so).
    pub fn apply(&self, needed: u64, real: u64, synthetic: u64) -> (u64, Option<String>) {
        if needed == 0 {
            return (0, None);
        }
        if real < self.min_real {
            let why = format!("{real} real subjects (< --min-real {}): no mask to condition on", self.min_real);
            return (0, Some(why));
        }
        match self.max_synthetic_ratio {
            Some(r) => {
                let allowed = ((r * real as f64).floor() as u64).saturating_sub(synthetic);
                if allowed < needed {
                    let why = format!("capped by --max-synthetic-ratio {r} ({real} real, {synthetic} synthetic)");
                    (allowed, Some(why))
                } else {
                    (needed, None)
                }
            }
            None => (needed, None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(real: &[u64]) -> Counts {
        Counts { real: real.to_vec(), synthetic: vec![0; real.len()] }
    }

    #[test]
    fn strategies_parse_and_refuse_bad_ratios() {
        assert_eq!("not-majority".parse::<Strategy>().unwrap(), Strategy::NotMajority);
        assert_eq!("ratio:0.5".parse::<Strategy>().unwrap(), Strategy::Ratio(0.5));
        assert_eq!("counts:c.csv".parse::<Strategy>().unwrap(), Strategy::Counts("c.csv".into()));
        for bad in ["ratio:0", "ratio:1.5", "ratio:-1", "ratio:x", "ratio:NaN"] {
            let err = bad.parse::<Strategy>().unwrap_err().to_string();
            assert!(err.contains(bad) && err.contains("0 < R ≤ 1"), "{err}");
        }
        assert!("majority".parse::<Strategy>().unwrap_err().to_string().contains("not-majority"));
    }

    #[test]
    fn targets_per_group_by_hand() {
        // Two sites × two strata: [10, 4 | 3, 0].
        let c = counts(&[10, 4, 3, 0]);
        let name = |s: usize| format!("s{s}");
        assert_eq!(Strategy::NotMajority.targets(&c, 4, None, name).unwrap(), [10, 10, 10, 10]);
        assert_eq!(Strategy::NotMajority.targets(&c, 2, None, name).unwrap(), [10, 10, 3, 3]);
        // ⌊0.45 × 10⌋ = 4; ⌊0.45 × 3⌋ = 1.
        assert_eq!(Strategy::Ratio(0.45).targets(&c, 4, None, name).unwrap(), [10, 4, 4, 4]);
        assert_eq!(Strategy::Ratio(0.45).targets(&c, 2, None, name).unwrap(), [10, 4, 3, 1]);
        let listed = [None, Some(6.0), Some(3.0), Some(5.0)];
        let counts_strategy = Strategy::Counts("c.csv".into());
        assert_eq!(counts_strategy.targets(&c, 4, Some(&listed), name).unwrap(), [10, 6, 3, 5]);
        let err = counts_strategy.targets(&c, 4, Some(&[None, Some(3.0), None, None]), name).unwrap_err();
        assert!(matches!(err, BalanceError::TargetBelowCurrent { target: 3, current: 4, .. }), "{err}");
        // Shares 1:1:2 of 17 subjects (s3 unlisted = 0): 4.25 → 4, 4.25 → 4, 8.5 → 9 (round half away from zero).
        let shares = [Some(1.0), Some(1.0), Some(2.0), None];
        let reference = Strategy::Reference("r.csv".into());
        assert_eq!(reference.targets(&c, 4, Some(&shares), name).unwrap(), [4, 4, 9, 0]);
    }

    #[test]
    fn guards_refuse_thin_strata_and_cap_the_ratio() {
        let guards = Guards { min_real: 2, max_synthetic_ratio: Some(1.5) };
        assert_eq!(guards.apply(0, 0, 0), (0, None));
        let (planned, why) = guards.apply(5, 1, 0);
        assert_eq!(planned, 0);
        assert!(why.unwrap().contains("--min-real 2"));
        // ⌊1.5 × 4⌋ − 1 existing = 5 allowed of 9 needed.
        let (planned, why) = guards.apply(9, 4, 1);
        assert_eq!(planned, 5);
        assert!(why.unwrap().contains("--max-synthetic-ratio"));
        assert_eq!(guards.apply(3, 4, 1), (3, None));
        assert!(Guards { min_real: 0, ..Guards::default() }.check().is_err());
        assert!(Guards { max_synthetic_ratio: Some(f64::NAN), ..Guards::default() }.check().is_err());
    }
}
