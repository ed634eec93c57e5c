//! The text metadata of datasets — CSV tables and ACDC's `Key: value` `Info.cfg` — read into typed values. Every
//! value is a [`Field`] that knows its file, name and line, so a bad value is reported as
//! `file: field `Age`: expected a number, got "abc" (line 4)`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cmr_core::attributes::Sex;
use cmr_core::Dataset;

use crate::error::{Error, Result};

/// Cell texts read as "no value" in numeric and sex columns (how pandas and R write missing values).
const MISSING_MARKERS: [&str; 4] = ["", "NA", "NaN", "nan"];

/// One raw value with where it came from.
#[derive(Debug, Clone, Copy)]
pub struct Field<'a> {
    path: &'a Path,
    name: &'a str,
    raw: &'a str,
    line: u64,
}

impl<'a> Field<'a> {
    /// An error about this value: `expected` is what a valid one looks like.
    pub fn invalid(&self, expected: impl Into<String>) -> Error {
        Error::invalid(self.path, self.name, expected, format!("{:?} (line {})", self.raw, self.line))
    }

    fn is_missing(&self) -> bool {
        MISSING_MARKERS.contains(&self.raw)
    }

    /// The trimmed text; an error when empty.
    pub fn text(&self) -> Result<&'a str> {
        if self.raw.is_empty() {
            return Err(self.invalid("a value"));
        }
        Ok(self.raw)
    }

    /// A finite number, or `None` for an empty/NA cell.
    pub fn number(&self) -> Result<Option<f64>> {
        if self.is_missing() {
            return Ok(None);
        }
        match self.raw.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(Some(v)),
            _ => Err(self.invalid("a number")),
        }
    }

    /// A whole number ≥ `min` (`"5"` or `"5.0"`).
    pub fn whole(&self, min: usize) -> Result<usize> {
        match self.raw.parse::<f64>() {
            Ok(v) if v.fract() == 0.0 && v >= min as f64 && v <= u32::MAX as f64 => Ok(v as usize),
            _ => Err(self.invalid(format!("a whole number ≥ {min}"))),
        }
    }

    /// Sex (F/M, female/male), or `None` for an empty/NA cell.
    pub fn sex(&self) -> Result<Option<Sex>> {
        if self.is_missing() {
            return Ok(None);
        }
        self.raw.parse().map(Some).map_err(|_: String| self.invalid("F or M (female or male)"))
    }

    /// A diagnosis code of `dataset`.
    pub fn diagnosis(&self, dataset: Dataset) -> Result<&'static str> {
        dataset.parse_diagnosis(self.raw).map_err(|expected| self.invalid(expected))
    }
}

/// The number of an optional key or column: `None` when absent or empty/NA.
pub fn optional_number(field: Option<Field<'_>>) -> Result<Option<f64>> {
    field.map_or(Ok(None), |f| f.number())
}

/// The sex of an optional key or column: `None` when absent or empty/NA.
pub fn optional_sex(field: Option<Field<'_>>) -> Result<Option<Sex>> {
    field.map_or(Ok(None), |f| f.sex())
}

/// The text of an optional key or column, `default` when absent or empty.
pub fn text_or(field: Option<Field<'_>>, default: &str) -> String {
    field.map(|f| f.raw).filter(|raw| !raw.is_empty()).unwrap_or(default).to_string()
}

/// A CSV file with a header row. Rows whose cells are all empty are skipped.
#[derive(Debug)]
pub struct Table {
    path: PathBuf,
    headers: Vec<String>,
    rows: Vec<(u64, Vec<String>)>,
}

/// The position of a column in a [`Table`].
#[derive(Debug, Clone, Copy)]
pub struct Column {
    index: usize,
    name: &'static str,
}

impl Table {
    /// Reads `path`; cells are trimmed and a UTF-8 byte-order mark is dropped.
    pub fn read(path: &Path) -> Result<Self> {
        let parse_err = |e: csv::Error| Error::invalid(path, "CSV", "a comma-separated table with a header row", e);
        let file = std::fs::File::open(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                Error::io(path, std::io::Error::new(e.kind(), "metadata table not found; check --root and --dataset"))
            }
            _ => Error::io(path, e),
        })?;
        let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(file);
        let headers = reader
            .headers()
            .map_err(parse_err)?
            .iter()
            .map(|h| h.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        let mut rows = Vec::new();
        for record in reader.records() {
            let record = record.map_err(parse_err)?;
            if record.iter().all(str::is_empty) {
                continue;
            }
            let line = record.position().map_or(0, |p| p.line());
            rows.push((line, record.iter().map(str::to_string).collect()));
        }
        Ok(Self { path: path.into(), headers, rows })
    }

    /// The file read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A required column.
    pub fn column(&self, name: &'static str) -> Result<Column> {
        self.optional_column(name).ok_or_else(|| Error::Missing {
            path: self.path.clone(),
            field: name.into(),
            hint: format!("; the header row has {}", self.headers.join(", ")),
        })
    }

    /// A column that may be absent.
    pub fn optional_column(&self, name: &'static str) -> Option<Column> {
        self.headers.iter().position(|h| h == name).map(|index| Column { index, name })
    }

    /// The non-blank rows.
    pub fn rows(&self) -> impl Iterator<Item = Row<'_>> {
        self.rows.iter().map(|(line, cells)| Row { path: &self.path, line: *line, cells })
    }
}

/// One row of a [`Table`].
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    path: &'a Path,
    line: u64,
    cells: &'a [String],
}

impl<'a> Row<'a> {
    /// The cell of `column` (empty when the row is short).
    pub fn get(&self, column: Column) -> Field<'a> {
        let raw = self.cells.get(column.index).map_or("", String::as_str);
        Field { path: self.path, name: column.name, raw, line: self.line }
    }

    /// The cell of an optional column; an absent column reads as an empty cell.
    pub fn get_opt(&self, column: Option<Column>) -> Option<Field<'a>> {
        column.map(|c| self.get(c))
    }
}

/// A `Key: value` file (ACDC `Info.cfg`).
#[derive(Debug)]
pub struct KeyValues {
    path: PathBuf,
    values: BTreeMap<String, (u64, String)>,
}

impl KeyValues {
    /// Reads `path`. Blank lines are skipped; a line without `:` or a repeated key is an error.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        let mut values = BTreeMap::new();
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let line_no = i as u64 + 1;
            let Some((key, value)) = line.split_once(':') else {
                return Err(Error::invalid(path, format!("line {line_no}"), "`Key: value`", format!("{line:?}")));
            };
            let key = key.trim().to_string();
            if values.insert(key.clone(), (line_no, value.trim().to_string())).is_some() {
                return Err(Error::invalid(path, key, "one entry per key", format!("a repeat at line {line_no}")));
            }
        }
        Ok(Self { path: path.into(), values })
    }

    /// A required key.
    pub fn get(&self, key: &'static str) -> Result<Field<'_>> {
        self.get_opt(key).ok_or_else(|| Error::missing(&self.path, key))
    }

    /// A key that may be absent.
    pub fn get_opt(&self, key: &'static str) -> Option<Field<'_>> {
        self.values.get(key).map(|(line, raw)| Field { path: &self.path, name: key, raw, line: *line })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_typed_with_line_numbers_and_blank_rows_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "\u{feff}code, Age ,Sex\nA1,61.5,F\n,,\nB2,abc,\nC3,NaN,male\n").unwrap();
        let table = Table::read(&path).unwrap();
        let (code, age, sex) =
            (table.column("code").unwrap(), table.column("Age").unwrap(), table.column("Sex").unwrap());
        let rows: Vec<_> = table.rows().collect();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].get(code).text().unwrap(), "A1");
        assert_eq!(rows[0].get(age).number().unwrap(), Some(61.5));
        assert_eq!(rows[0].get(sex).sex().unwrap(), Some(Sex::F));
        assert_eq!(rows[2].get(age).number().unwrap(), None);
        assert_eq!(rows[2].get(sex).sex().unwrap(), Some(Sex::M));
        let err = rows[1].get(age).number().unwrap_err().to_string();
        assert!(err.contains("t.csv") && err.contains("`Age`") && err.contains("\"abc\" (line 4)"), "{err}");
        let err = table.column("Weight").unwrap_err().to_string();
        assert!(err.contains("`Weight`") && err.contains("code, Age, Sex"), "{err}");
    }

    #[test]
    fn info_cfg_keys_are_required_or_optional() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Info.cfg");
        std::fs::write(&path, "ED: 1\nES: 12\n\nGroup: DCM\n").unwrap();
        let kv = KeyValues::read(&path).unwrap();
        assert_eq!(kv.get("ES").unwrap().whole(1).unwrap(), 12);
        assert!(kv.get_opt("Weight").is_none());
        assert!(kv.get("NbFrame").unwrap_err().to_string().contains("missing field `NbFrame`"));
        std::fs::write(&path, "ED: 1\nED: 2\n").unwrap();
        assert!(KeyValues::read(&path).unwrap_err().to_string().contains("one entry per key"));
    }
}
