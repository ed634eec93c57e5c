//! The `weights` strategy: no generation, a sampling weight per train subject instead — `1 / size of its stratum`,
//! as the reference code's weighted sampler (PyTorch `WeightedRandomSampler` with inverse class counts) — so that a
//! classifier trained with weighted sampling can be compared with one trained on the augmented cohort.
//!
//! `weights.parquet` (+ `weights.csv`): `subject_id`, `stratum` (`key=value|…`), `weight`, one row per train
//! subject in cohort order. Each stratum's weights sum to 1.

use polars::prelude::*;

use crate::strata::{Counts, Strata};

/// The weights table of the stratified rows of a cohort whose subject ids are `subject_id`.
pub fn frame(strata: &Strata, counts: &Counts, subject_id: &[&str]) -> DataFrame {
    let names: Vec<String> = (0..strata.len()).map(|s| strata.name(s)).collect();
    let (mut ids, mut stratum, mut weight) = (Vec::new(), Vec::new(), Vec::new());
    for (row, id) in subject_id.iter().enumerate() {
        if let Some(s) = strata.of_row(row) {
            ids.push(*id);
            stratum.push(names[s].as_str());
            weight.push(1.0 / counts.total(s) as f64);
        }
    }
    let n = ids.len();
    let columns = vec![
        Column::new("subject_id".into(), ids),
        Column::new("stratum".into(), stratum),
        Column::new("weight".into(), weight),
    ];
    DataFrame::new(n, columns).expect("columns of equal length")
}
