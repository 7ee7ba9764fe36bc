//! Reading and writing records: CSV (optional header) and NPY (float32/float64, C order), always
//! written through a temporary file and a rename so a failure never leaves a partial output.

use std::io::Write;
use std::path::Path;

use crate::{Error, Result};

/// A table of records: `rows × cols` values, row-major, in raw units (the data's own units).
#[derive(Clone, Debug, PartialEq)]
pub struct Records {
    /// Values per record.
    pub cols: usize,
    /// All values, record after record.
    pub values: Vec<f64>,
}

impl Records {
    /// Number of records.
    pub fn rows(&self) -> usize {
        self.values.len().checked_div(self.cols).unwrap_or(0)
    }

    /// Record `i` (panics when `i >= rows()`, like slice indexing).
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.cols..(i + 1) * self.cols]
    }

    /// The records in order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = &[f64]> + '_ {
        self.values.chunks_exact(self.cols.max(1))
    }
}

/// Which cells a reader accepts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Cells {
    /// Finite numbers only.
    #[default]
    Finite,
    /// Finite numbers and missing values, read as NaN: in CSV an empty cell, `nan` or `NA` (any
    /// case); in NPY a NaN. Infinities are still refused.
    Gaps,
}

/// Whether a CSV cell marks a missing value.
fn is_missing(cell: &str) -> bool {
    cell.is_empty() || cell.eq_ignore_ascii_case("nan") || cell.eq_ignore_ascii_case("na")
}

/// Parses one CSV record of numbers (used for streaming too).
pub fn parse_record(line: &str) -> Result<Vec<f64>> {
    parse_cells(line, Cells::Finite)
}

/// Parses one CSV record of numbers and missing values (NaN), as [`Cells::Gaps`] describes.
pub fn parse_record_with_gaps(line: &str) -> Result<Vec<f64>> {
    parse_cells(line, Cells::Gaps)
}

pub(crate) fn parse_cells(line: &str, cells: Cells) -> Result<Vec<f64>> {
    line.split(',')
        .enumerate()
        .map(|(j, c)| {
            let c = c.trim();
            if cells == Cells::Gaps && is_missing(c) {
                return Ok(f64::NAN);
            }
            let v: f64 = c
                .parse()
                .map_err(|_| Error::Record(format!("column {}: `{c}` is not a number", j + 1)))?;
            if v.is_finite() {
                Ok(v)
            } else {
                Err(Error::Record(format!(
                    "column {}: {c} is not a finite number",
                    j + 1
                )))
            }
        })
        .collect()
}

/// The header line of a CSV file read with `cells` (see [`read_csv_cells`]), if it has one.
pub fn csv_header(path: &Path, cells: Cells) -> Result<Option<String>> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).map_err(|source| Error::Read {
        path: path.into(),
        source,
    })?;
    for line in std::io::BufReader::new(file).lines() {
        let line = line.map_err(|source| Error::Read {
            path: path.into(),
            source,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        return Ok(line
            .split(',')
            .any(|c| is_header_cell(c, cells))
            .then(|| line.trim().to_string()));
    }
    Ok(None)
}

/// Whether a cell of a first line marks it as a header: neither a number nor (with gaps) a missing value.
pub(crate) fn is_header_cell(c: &str, cells: Cells) -> bool {
    let c = c.trim();
    c.parse::<f64>().is_err() && !(cells == Cells::Gaps && is_missing(c))
}

/// Reads a CSV of numbers; the first line is a header when any of its cells is not a number.
pub fn read_csv(path: &Path) -> Result<Records> {
    read_csv_cells(path, Cells::Finite)
}

/// [`read_csv`] accepting the cells `cells` allows. With [`Cells::Gaps`] the first line is a header
/// when one of its cells is neither a number nor a missing value.
pub fn read_csv_cells(path: &Path, cells: Cells) -> Result<Records> {
    crate::record_stream::RecordStream::csv(path, cells)?.read_all()
}

/// Reads a `.npy` array of float32 or float64, 1-D (one column) or 2-D, C order.
pub fn read_npy(path: &Path) -> Result<Records> {
    read_npy_cells(path, Cells::Finite)
}

/// [`read_npy`] accepting the cells `cells` allows (with [`Cells::Gaps`], NaN marks a missing value).
pub fn read_npy_cells(path: &Path, cells: Cells) -> Result<Records> {
    crate::record_stream::RecordStream::npy(path, cells)?.read_all()
}

/// Reads `.npy` or CSV by extension.
pub fn read_records(path: &Path) -> Result<Records> {
    read_records_cells(path, Cells::Finite)
}

/// [`read_records`] accepting the cells `cells` allows.
pub fn read_records_cells(path: &Path, cells: Cells) -> Result<Records> {
    crate::record_stream::RecordStream::open_table(path, cells)?.read_all()
}

/// NPY bytes of a float32 `[rows, cols]` array.
pub fn npy_bytes(rows: usize, cols: usize, values: &[f64]) -> Vec<u8> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    for v in values {
        out.extend((*v as f32).to_le_bytes());
    }
    out
}

/// Writes `bytes` to `path` via a temporary file in the same folder and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let err = |source| Error::Write {
        path: path.into(),
        source,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| err(std::io::Error::other("not a file path")))?;
    let tmp = dir.join(format!(
        ".{}.tmp{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .and_then(|_| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(err)
}

/// Writes records as `.npy` (by extension) or CSV with the given header.
pub fn write_records(path: &Path, header: &str, cols: usize, values: &[f64]) -> Result<()> {
    let rows = values.len().checked_div(cols).unwrap_or(0);
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
    {
        return write_atomic(path, &npy_bytes(rows, cols, values));
    }
    let mut text = String::with_capacity(values.len() * 12 + header.len() + 1);
    text.push_str(header);
    text.push('\n');
    for row in values.chunks(cols.max(1)) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v}")).collect();
        text.push_str(&cells.join(","));
        text.push('\n');
    }
    write_atomic(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaps_are_nan_and_a_first_line_of_gaps_is_not_a_header() {
        let path = npy_file("gaps.csv", b",NA\n1.5,nan\n");
        let r = read_csv_cells(&path, Cells::Gaps).unwrap();
        assert_eq!(r.rows(), 2);
        assert!(r.values[0].is_nan() && r.values[1].is_nan() && r.values[3].is_nan());
        assert_eq!(r.values[2], 1.5);
        assert_eq!(csv_header(&path, Cells::Gaps).unwrap(), None);
        // Without gaps allowed, the same first line is a header and the second is refused.
        assert!(read_csv(&path).is_err());
        let named = npy_file("named.csv", b"temp,flow\n1,\n");
        assert_eq!(
            csv_header(&named, Cells::Gaps).unwrap().as_deref(),
            Some("temp,flow")
        );
        assert!(parse_record_with_gaps("1,inf").is_err());
    }

    fn npy_file(name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("vpfb-io-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    /// NPY bytes with a hand-written header.
    fn npy(header: &str, data: &[u8]) -> Vec<u8> {
        let mut h = header.to_string();
        h.push_str(&" ".repeat((64 - (10 + h.len() + 1) % 64) % 64));
        h.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((h.len() as u16).to_le_bytes());
        out.extend(h.as_bytes());
        out.extend(data);
        out
    }

    #[test]
    fn npy_round_trips_and_reads_float64_and_1d() {
        let values = [1.5, -2.0, 0.25, 8.0, 3.0, -0.5];
        let path = npy_file("rt.npy", &npy_bytes(3, 2, &values));
        assert_eq!(
            read_npy(&path).unwrap(),
            Records {
                cols: 2,
                values: values.to_vec()
            }
        );
        let f8: Vec<u8> = [0.1f64, 0.2, 0.3]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let path = npy_file(
            "f8.npy",
            &npy(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
                &f8,
            ),
        );
        let r = read_npy(&path).unwrap();
        assert_eq!((r.cols, r.values), (1, vec![0.1, 0.2, 0.3]));
    }

    #[test]
    fn malformed_npy_files_are_format_errors() {
        let four = 1.0f32.to_le_bytes().repeat(4);
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("magic.npy", b"NUMPY not really".to_vec(), "bad magic"),
            (
                "fortran.npy",
                npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", &four),
                "Fortran",
            ),
            (
                "int.npy",
                npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }", &four),
                "float32",
            ),
            (
                "short.npy",
                npy("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", &four),
                "truncated",
            ),
            (
                "huge.npy",
                npy(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551615, 2), }",
                    &four,
                ),
                "truncated",
            ),
            (
                "rank3.npy",
                npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 2), }", &four),
                "1-D or 2-D",
            ),
            (
                "nan.npy",
                npy(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }",
                    &[four[..12].to_vec(), f32::NAN.to_le_bytes().to_vec()].concat(),
                ),
                "row 2, column 2",
            ),
        ];
        for (name, bytes, needle) in cases {
            match read_npy(&npy_file(name, &bytes)) {
                Err(Error::Format { reason, .. }) => {
                    assert!(reason.contains(needle), "{name}: {reason}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
    }

    #[test]
    fn csv_records_skip_a_header_and_name_bad_cells() {
        let path = npy_file("t.csv", b"a,b\n1,2\n\n3,4\n");
        assert_eq!(read_csv(&path).unwrap().values, vec![1.0, 2.0, 3.0, 4.0]);
        assert!(parse_record("1, inf")
            .unwrap_err()
            .to_string()
            .contains("column 2"));
        assert!(parse_record("1,x").unwrap_err().to_string().contains("`x`"));
    }
}
