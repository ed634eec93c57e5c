//! Reading the small tables users hand to a stage (generation plans, counts, predictions): CSV or Parquet by file
//! extension, every CSV column read as text so that a parse error can name the value, row and column.

use std::path::Path;

use polars::prelude::*;

use crate::error::{CoreError, Result};

/// Reads a `.csv` (header row, all columns as text) or `.parquet` file. An empty file, another extension or a
/// malformed table is an error naming the file.
pub fn read_table(path: &Path) -> Result<DataFrame> {
    let bytes = std::fs::metadata(path).map_err(|e| CoreError::io(path, e))?.len();
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let table_err = |message: String| CoreError::Table { path: path.into(), message };
    match extension.as_deref() {
        _ if bytes == 0 => Err(table_err("the file is empty".into())),
        Some("csv") => CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(0))
            .try_into_reader_with_file_path(Some(path.into()))
            .and_then(|reader| reader.finish())
            .map_err(|e| table_err(e.to_string())),
        Some("parquet") => {
            let file = std::fs::File::open(path).map_err(|e| CoreError::io(path, e))?;
            ParquetReader::new(file).finish().map_err(|e| table_err(e.to_string()))
        }
        _ => Err(table_err("unknown table format; expected a .csv or .parquet file".into())),
    }
}

/// Column `name` as text (numbers and booleans formatted), `None` for nulls; a missing column is an error.
pub fn text_column(frame: &DataFrame, path: &Path, name: &str) -> Result<Vec<Option<String>>> {
    let column = frame.column(name).map_err(|_| CoreError::MissingField {
        path: path.into(),
        field: name.into(),
        hint: format!(
            " (columns: {})",
            frame.get_column_names().iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ")
        ),
    })?;
    let cast = column.cast(&DataType::String).map_err(|_| CoreError::InvalidValue {
        path: path.into(),
        field: name.into(),
        expected: "text, numbers or booleans".into(),
        got: format!("a column of type {}", column.dtype()),
    })?;
    let strings = cast.str().map_err(|e| CoreError::Table { path: path.into(), message: e.to_string() })?;
    Ok(strings.iter().map(|v| v.map(str::to_string)).collect())
}

/// Parses cell `value` of column `name`, row `row` (0-based), with `parse`; the error names all three and what was
/// `expected`.
pub fn parse_cell<T>(
    path: &Path,
    name: &str,
    row: usize,
    value: &str,
    expected: &str,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Result<T> {
    parse(value.trim()).ok_or_else(|| CoreError::InvalidValue {
        path: path.into(),
        field: name.into(),
        expected: expected.into(),
        got: format!("{value:?} in row {}", row + 1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_columns_are_text_and_errors_name_file_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.csv");
        std::fs::write(&path, "id,seed\na,1\nb,\n").unwrap();
        let frame = read_table(&path).unwrap();
        assert_eq!(text_column(&frame, &path, "seed").unwrap(), vec![Some("1".to_string()), None]);
        let err = text_column(&frame, &path, "sede").unwrap_err().to_string();
        assert!(err.contains("plan.csv") && err.contains("`sede`") && err.contains("id, seed"), "{err}");
        let err = parse_cell(&path, "seed", 1, "x", "an integer", |v| v.parse::<u64>().ok()).unwrap_err().to_string();
        assert!(err.contains("`seed`") && err.contains("\"x\" in row 2"), "{err}");
    }

    #[test]
    fn empty_files_and_unknown_extensions_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("p.csv");
        std::fs::write(&empty, "").unwrap();
        assert!(read_table(&empty).unwrap_err().to_string().contains("empty"));
        let other = dir.path().join("p.xlsx");
        std::fs::write(&other, "x").unwrap();
        assert!(read_table(&other).unwrap_err().to_string().contains(".csv or .parquet"));
    }
}
