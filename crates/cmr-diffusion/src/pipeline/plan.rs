//! The generation plan `balance plan` writes (Parquet, or its CSV twin): one row per synthetic subject.
//!
//! | column | required | meaning |
//! |---|---|---|
//! | `plan_id` | yes | id of the row and of the synthetic subject (`synthetic:` is prefixed when it has no `:`) |
//! | `mask_source` | yes | train-split subject whose mask conditions the images |
//! | `prompt` | yes | text condition |
//! | `seed` | yes | seed of the row's noise |
//! | `sex`, `age`, `bmi`, `age_band`, `bmi_class`, `label`, `diagnosis`, `site` | no | target attributes, copied to the cohort row (the mask source's label, diagnosis and site when absent) |

use std::path::Path;

use cmr_core::table::{parse_cell, read_table, text_column};
use cmr_core::Sex;

use crate::error::{DiffusionError, Result};

/// One row of a generation plan.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanRow {
    /// Row id.
    pub plan_id: String,
    /// Subject whose mask conditions the generation.
    pub mask_source: String,
    /// Text condition.
    pub prompt: String,
    /// Seed of the row.
    pub seed: u64,
    /// Target sex.
    pub sex: Option<Sex>,
    /// Target age in years.
    pub age: Option<f64>,
    /// Target BMI.
    pub bmi: Option<f64>,
    /// Target age band.
    pub age_band: Option<String>,
    /// Target BMI class.
    pub bmi_class: Option<String>,
    /// Task label.
    pub label: Option<i32>,
    /// Diagnosis code.
    pub diagnosis: Option<String>,
    /// Site the subject is attributed to.
    pub site: Option<String>,
}

/// Reads and checks a plan: required columns present with a value in every row, numbers that parse, unique ids.
pub fn read_plan(path: &Path) -> Result<Vec<PlanRow>> {
    let frame = read_table(path)?;
    let required = |name: &str| -> Result<Vec<String>> {
        text_column(&frame, path, name)?
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.filter(|v| !v.trim().is_empty())
                    .ok_or_else(|| DiffusionError::input(path, format!("column `{name}` is empty in row {}", i + 1)))
            })
            .collect()
    };
    let optional = |name: &str| -> Result<Vec<Option<String>>> {
        if frame.column(name).is_ok() {
            Ok(text_column(&frame, path, name)?.into_iter().map(|v| v.filter(|v| !v.trim().is_empty())).collect())
        } else {
            Ok(vec![None; frame.height()])
        }
    };
    let (ids, sources, prompts, seeds) =
        (required("plan_id")?, required("mask_source")?, text_column(&frame, path, "prompt")?, required("seed")?);
    let (sex, age, bmi) = (optional("sex")?, optional("age")?, optional("bmi")?);
    let (age_band, bmi_class, label) = (optional("age_band")?, optional("bmi_class")?, optional("label")?);
    let (diagnosis, site) = (optional("diagnosis")?, optional("site")?);
    let number = |name: &str, i: usize, v: &Option<String>| -> Result<Option<f64>> {
        v.as_deref()
            .map(|v| parse_cell(path, name, i, v, "a number", |v| v.parse::<f64>().ok()))
            .transpose()
            .map_err(Into::into)
    };
    let mut rows = Vec::with_capacity(frame.height());
    let mut seen = std::collections::HashSet::new();
    for i in 0..frame.height() {
        if !seen.insert(ids[i].clone()) {
            return Err(DiffusionError::input(path, format!("plan_id {} appears twice (row {})", ids[i], i + 1)));
        }
        rows.push(PlanRow {
            plan_id: ids[i].clone(),
            mask_source: sources[i].clone(),
            prompt: prompts[i].clone().unwrap_or_default(),
            seed: parse_cell(path, "seed", i, &seeds[i], "a non-negative integer", |v| v.parse().ok())?,
            sex: sex[i].as_deref().map(|v| parse_cell(path, "sex", i, v, "F or M", |v| v.parse().ok())).transpose()?,
            age: number("age", i, &age[i])?,
            bmi: number("bmi", i, &bmi[i])?,
            age_band: age_band[i].clone(),
            bmi_class: bmi_class[i].clone(),
            label: label[i]
                .as_deref()
                .map(|v| parse_cell(path, "label", i, v, "0 or 1", |v| v.parse().ok()))
                .transpose()?,
            diagnosis: diagnosis[i].clone(),
            site: site[i].clone(),
        });
    }
    Ok(rows)
}
