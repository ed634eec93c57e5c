//! The cohort table (DESIGN.md): one row per subject, stored as `cohort.parquet` with a `cohort.csv` twin for people.
//! This module owns the schema — column names, order and types — and the conversion between rows and a polars
//! `DataFrame`, so every stage reads and writes the same table.

use std::path::{Path, PathBuf};

use polars::prelude::*;

use crate::atomic;
use crate::error::{CoreError, Result};
use crate::subject::CohortRow;

/// File name of the cohort table inside a cohort folder.
pub const COHORT_PARQUET: &str = "cohort.parquet";
/// File name of the CSV twin.
pub const COHORT_CSV: &str = "cohort.csv";

/// Column names in table order, with their polars types. Nullable columns may hold nulls; others never do.
pub const SCHEMA: [(&str, ColumnKind); 21] = [
    ("subject_id", ColumnKind::Str),
    ("dataset", ColumnKind::Str),
    ("site", ColumnKind::Str),
    ("vendor", ColumnKind::Str),
    ("sex", ColumnKind::NullableStr),
    ("age", ColumnKind::NullableF64),
    ("height_cm", ColumnKind::NullableF64),
    ("weight_kg", ColumnKind::NullableF64),
    ("bmi", ColumnKind::NullableF64),
    ("age_band", ColumnKind::NullableStr),
    ("bmi_class", ColumnKind::NullableStr),
    ("diagnosis", ColumnKind::Str),
    ("label", ColumnKind::I32),
    ("split", ColumnKind::Str),
    ("source", ColumnKind::Str),
    ("parent_subject", ColumnKind::NullableStr),
    ("generator_sha256", ColumnKind::NullableStr),
    ("seed", ColumnKind::NullableU64),
    ("prompt", ColumnKind::Str),
    ("tensor_path", ColumnKind::Str),
    ("tensor_sha256", ColumnKind::Str),
];

/// Storage type of a cohort column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// UTF-8, never null.
    Str,
    /// UTF-8, nullable.
    NullableStr,
    /// f64, nullable.
    NullableF64,
    /// i32, never null.
    I32,
    /// u64, nullable.
    NullableU64,
}

impl ColumnKind {
    /// The polars data type of this column.
    pub fn dtype(self) -> DataType {
        match self {
            ColumnKind::Str | ColumnKind::NullableStr => DataType::String,
            ColumnKind::NullableF64 => DataType::Float64,
            ColumnKind::I32 => DataType::Int32,
            ColumnKind::NullableU64 => DataType::UInt64,
        }
    }
}

/// Builds the cohort `DataFrame` from rows, columns in [`SCHEMA`] order.
pub fn to_frame(rows: &[CohortRow]) -> DataFrame {
    fn s<'a>(rows: &'a [CohortRow], f: impl Fn(&'a CohortRow) -> &'a str) -> Vec<&'a str> {
        rows.iter().map(f).collect()
    }
    fn os<'a>(rows: &'a [CohortRow], f: impl Fn(&'a CohortRow) -> Option<&'a str>) -> Vec<Option<&'a str>> {
        rows.iter().map(f).collect()
    }
    fn of(rows: &[CohortRow], f: impl Fn(&CohortRow) -> Option<f64>) -> Vec<Option<f64>> {
        rows.iter().map(f).collect()
    }
    let columns = vec![
        Column::new("subject_id".into(), s(rows, |r| &r.subject_id)),
        Column::new("dataset".into(), s(rows, |r| &r.dataset)),
        Column::new("site".into(), s(rows, |r| &r.site)),
        Column::new("vendor".into(), s(rows, |r| &r.vendor)),
        Column::new("sex".into(), os(rows, |r| r.sex.map(|x| x.code()))),
        Column::new("age".into(), of(rows, |r| r.age)),
        Column::new("height_cm".into(), of(rows, |r| r.height_cm)),
        Column::new("weight_kg".into(), of(rows, |r| r.weight_kg)),
        Column::new("bmi".into(), of(rows, |r| r.bmi)),
        Column::new("age_band".into(), os(rows, |r| r.age_band.as_deref())),
        Column::new("bmi_class".into(), os(rows, |r| r.bmi_class.as_deref())),
        Column::new("diagnosis".into(), s(rows, |r| &r.diagnosis)),
        Column::new("label".into(), rows.iter().map(|r| r.label).collect::<Vec<i32>>()),
        Column::new("split".into(), s(rows, |r| r.split.name())),
        Column::new("source".into(), s(rows, |r| r.source.name())),
        Column::new("parent_subject".into(), os(rows, |r| r.parent_subject.as_deref())),
        Column::new("generator_sha256".into(), os(rows, |r| r.generator_sha256.as_deref())),
        Column::new("seed".into(), rows.iter().map(|r| r.seed).collect::<Vec<Option<u64>>>()),
        Column::new("prompt".into(), s(rows, |r| &r.prompt)),
        Column::new("tensor_path".into(), s(rows, |r| &r.tensor_path)),
        Column::new("tensor_sha256".into(), s(rows, |r| &r.tensor_sha256)),
    ];
    DataFrame::new(rows.len(), columns).expect("columns built from the same rows have equal length")
}

/// Reads rows back from a cohort `DataFrame`; `path` names the table in errors.
pub fn from_frame(df: &DataFrame, path: &Path) -> Result<Vec<CohortRow>> {
    check_schema(df, path)?;
    let table_err = |e: PolarsError| CoreError::Table { path: path.into(), message: e.to_string() };
    let strs = |name: &str| -> Result<Vec<Option<String>>> {
        Ok(df.column(name).and_then(|c| c.str()).map_err(table_err)?.iter().map(|v| v.map(str::to_string)).collect())
    };
    let floats = |name: &str| -> Result<Vec<Option<f64>>> {
        Ok(df.column(name).and_then(|c| c.f64()).map_err(table_err)?.iter().collect())
    };
    let required = |name: &'static str, values: Vec<Option<String>>| -> Result<Vec<String>> {
        values
            .into_iter()
            .enumerate()
            .map(|(i, v)| {
                v.ok_or_else(|| CoreError::invalid(path, name, "a value in every row", format!("null in row {i}")))
            })
            .collect()
    };
    let subject_id = required("subject_id", strs("subject_id")?)?;
    let dataset = required("dataset", strs("dataset")?)?;
    let site = required("site", strs("site")?)?;
    let vendor = required("vendor", strs("vendor")?)?;
    let sex = strs("sex")?;
    let (age, height_cm, weight_kg, bmi) = (floats("age")?, floats("height_cm")?, floats("weight_kg")?, floats("bmi")?);
    let (age_band, bmi_class) = (strs("age_band")?, strs("bmi_class")?);
    let diagnosis = required("diagnosis", strs("diagnosis")?)?;
    let label: Vec<Option<i32>> = df.column("label").and_then(|c| c.i32()).map_err(table_err)?.iter().collect();
    let split = required("split", strs("split")?)?;
    let source = required("source", strs("source")?)?;
    let (parent_subject, generator_sha256) = (strs("parent_subject")?, strs("generator_sha256")?);
    let seed: Vec<Option<u64>> = df.column("seed").and_then(|c| c.u64()).map_err(table_err)?.iter().collect();
    let prompt = required("prompt", strs("prompt")?)?;
    let tensor_path = required("tensor_path", strs("tensor_path")?)?;
    let tensor_sha256 = required("tensor_sha256", strs("tensor_sha256")?)?;

    (0..df.height())
        .map(|i| {
            let row_err = |field: &str, expected: &str, got: &str| {
                CoreError::invalid(path, field, expected, format!("{got:?} for subject {}", subject_id[i]))
            };
            Ok(CohortRow {
                subject_id: subject_id[i].clone(),
                dataset: dataset[i].clone(),
                site: site[i].clone(),
                vendor: vendor[i].clone(),
                sex: sex[i].as_deref().map(|s| s.parse().map_err(|e: String| row_err("sex", &e, s))).transpose()?,
                age: age[i],
                height_cm: height_cm[i],
                weight_kg: weight_kg[i],
                bmi: bmi[i],
                age_band: age_band[i].clone(),
                bmi_class: bmi_class[i].clone(),
                diagnosis: diagnosis[i].clone(),
                label: label[i].ok_or_else(|| row_err("label", "0 or 1", "null"))?,
                split: split[i].parse().map_err(|e: String| row_err("split", &e, &split[i]))?,
                source: source[i].parse().map_err(|e: String| row_err("source", &e, &source[i]))?,
                parent_subject: parent_subject[i].clone(),
                generator_sha256: generator_sha256[i].clone(),
                seed: seed[i],
                prompt: prompt[i].clone(),
                tensor_path: tensor_path[i].clone(),
                tensor_sha256: tensor_sha256[i].clone(),
            })
        })
        .collect()
}

/// Checks that `df` has every cohort column with its type (extra columns are allowed).
pub fn check_schema(df: &DataFrame, path: &Path) -> Result<()> {
    for (name, kind) in SCHEMA {
        let column = df.column(name).map_err(|_| CoreError::missing(path, name))?;
        if column.dtype() != &kind.dtype() {
            return Err(CoreError::invalid(path, name, kind.dtype().to_string(), column.dtype()));
        }
    }
    Ok(())
}

/// Writes `cohort.parquet` and `cohort.csv` into `dir` (each atomically). Returns the two paths.
pub fn write(dir: &Path, rows: &[CohortRow]) -> Result<[PathBuf; 2]> {
    let mut df = to_frame(rows);
    let parquet = dir.join(COHORT_PARQUET);
    let csv = dir.join(COHORT_CSV);
    atomic::write_with(&parquet, |file| {
        ParquetWriter::new(file).finish(&mut df).map(|_| ()).map_err(std::io::Error::other)
    })?;
    atomic::write_with(&csv, |file| CsvWriter::new(file).finish(&mut df).map_err(std::io::Error::other))?;
    Ok([parquet, csv])
}

/// Reads the cohort table of a cohort folder (`cohort.parquet`).
pub fn read(dir: &Path) -> Result<Vec<CohortRow>> {
    let path = dir.join(COHORT_PARQUET);
    let df = read_frame(&path)?;
    from_frame(&df, &path)
}

/// Reads a Parquet file into a `DataFrame`.
pub fn read_frame(path: &Path) -> Result<DataFrame> {
    let file = std::fs::File::open(path).map_err(|e| CoreError::io(path, e))?;
    ParquetReader::new(file).finish().map_err(|e| CoreError::Table { path: path.into(), message: e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attributes::Sex;
    use crate::subject::{Source, Split};

    fn row(id: &str, sex: Option<Sex>, seed: Option<u64>) -> CohortRow {
        CohortRow {
            subject_id: format!("acdc:{id}"),
            dataset: "acdc".into(),
            site: "acdc".into(),
            vendor: "Siemens".into(),
            sex,
            age: Some(61.5),
            height_cm: None,
            weight_kg: Some(80.0),
            bmi: None,
            age_band: Some("60s".into()),
            bmi_class: None,
            diagnosis: "HCM".into(),
            label: 1,
            split: Split::Val,
            source: Source::Synthetic,
            parent_subject: Some("acdc:p1".into()),
            generator_sha256: None,
            seed,
            prompt: "Female, age in 60s, hypertrophic cardiomyopathy".into(),
            tensor_path: format!("tensors/{id}.safetensors"),
            tensor_sha256: "ab".repeat(32),
        }
    }

    #[test]
    fn rows_round_trip_through_parquet_with_nulls() {
        let dir = tempfile::tempdir().unwrap();
        let rows = vec![row("p1", Some(Sex::F), Some(u64::MAX)), row("p2", None, None)];
        let [parquet, csv] = write(dir.path(), &rows).unwrap();
        assert!(parquet.exists() && csv.exists());
        assert_eq!(read(dir.path()).unwrap(), rows);
        let header = std::fs::read_to_string(csv).unwrap().lines().next().unwrap().to_string();
        assert_eq!(header, SCHEMA.map(|(n, _)| n).join(","));
    }

    #[test]
    fn a_missing_column_is_named() {
        let mut df = to_frame(&[row("p1", None, None)]);
        df.drop_in_place("bmi_class").unwrap();
        let err = from_frame(&df, Path::new("c.parquet")).unwrap_err().to_string();
        assert!(err.contains("c.parquet") && err.contains("bmi_class"), "{err}");
    }
}
