//! Reading numeric CSV tables: comma-separated, optional header row, every cell a finite number.

use std::path::Path;

use super::DataError;

/// Reads a CSV of numbers; returns `(columns, row-major values)`.
///
/// The first line is a header when any of its cells is not a number. Ragged rows, non-numeric cells,
/// NaN/Inf and empty tables are errors naming the line and column.
pub fn read_csv(path: &Path) -> Result<(usize, Vec<f64>), DataError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: name.clone(),
        source,
    })?;
    let err = |reason: String| DataError::Csv {
        path: name.clone(),
        reason,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .peekable();
    let Some(&(_, first)) = lines.peek() else {
        return Err(err("the file has no data rows".into()));
    };
    let has_header = first.split(',').any(|c| c.trim().parse::<f64>().is_err());
    if has_header {
        lines.next();
    }
    let mut dim = 0;
    let mut values = Vec::new();
    for (i, line) in lines {
        let cells: Vec<&str> = line.split(',').collect();
        if dim == 0 {
            dim = cells.len();
        } else if cells.len() != dim {
            return Err(err(format!(
                "line {} has {} columns, expected {dim}",
                i + 1,
                cells.len()
            )));
        }
        for (j, cell) in cells.iter().enumerate() {
            let v: f64 = cell.trim().parse().map_err(|_| {
                err(format!(
                    "line {}, column {}: `{}` is not a number",
                    i + 1,
                    j + 1,
                    cell.trim()
                ))
            })?;
            if !v.is_finite() {
                return Err(err(format!(
                    "line {}, column {}: {} is not a finite number",
                    i + 1,
                    j + 1,
                    cell.trim()
                )));
            }
            values.push(v);
        }
    }
    if dim == 0 {
        return Err(err("the file has no data rows".into()));
    }
    Ok((dim, values))
}
