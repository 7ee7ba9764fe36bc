//! Records read a chunk at a time, so that scoring a large file holds one chunk in memory rather
//! than the whole file: CSV and NPY tables for every model, IDX files and PNG/JPEG folders for image
//! models. The whole-file readers ([`crate::io::read_csv`], [`crate::images::read_idx`], …) drain the
//! same streams, so both paths accept and refuse exactly the same files.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::images::{self, format_err, IdxRows};
use crate::io::{is_header_cell, parse_cells, Cells, Records};
use crate::{Error, ModelMeta, Result};

fn read_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |source| Error::Read {
        path: path.to_path_buf(),
        source,
    }
}

/// A file of records, read in chunks of whole records.
pub struct RecordStream {
    cols: usize,
    source: Source,
}

enum Source {
    Csv(CsvRows),
    Npy(NpyRows),
    Idx(IdxRows),
    Images(ImageFiles),
}

impl RecordStream {
    /// Opens a table: `.npy` by extension, otherwise CSV. The header and the first record are read
    /// here, so the record size is known at once.
    pub fn open_table(path: &Path, cells: Cells) -> Result<Self> {
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("npy"))
        {
            Self::npy(path, cells)
        } else {
            Self::csv(path, cells)
        }
    }

    /// Opens a CSV of numbers (see [`crate::io::read_csv_cells`]).
    pub fn csv(path: &Path, cells: Cells) -> Result<Self> {
        let rows = CsvRows::open(path, cells)?;
        Ok(Self {
            cols: rows.cols,
            source: Source::Csv(rows),
        })
    }

    /// Opens a 1-D or 2-D float32/float64 `.npy` array (see [`crate::io::read_npy_cells`]).
    pub fn npy(path: &Path, cells: Cells) -> Result<Self> {
        let rows = NpyRows::open(path, cells)?;
        Ok(Self {
            cols: rows.cols,
            source: Source::Npy(rows),
        })
    }

    /// Opens whatever `path` holds for `meta`'s model: a table, or for image models an IDX file, a
    /// folder of PNG/JPEG images or one image. The record size (or image shape) must be the model's.
    pub fn open_for_model(path: &Path, meta: &ModelMeta, cells: Cells) -> Result<Self> {
        let d = meta.record_len();
        if !crate::input::is_image_input(path) {
            let stream = Self::open_table(path, cells)?;
            if stream.cols != d {
                return Err(format_err(
                    path,
                    format!("has {} columns, the model takes {d}", stream.cols),
                ));
            }
            return Ok(stream);
        }
        let Some(shape) = meta.image_shape() else {
            return Err(format_err(
                path,
                format!(
                    "holds images, but the model takes records of shape {:?}",
                    meta.data_shape
                ),
            ));
        };
        let source = if path.is_dir() || images::is_image_file(path) {
            Source::Images(ImageFiles::open(path, shape)?)
        } else {
            let rows = IdxRows::open(path)?;
            if rows.shape() != shape {
                return Err(format_err(
                    path,
                    format!(
                        "has images of shape {:?} (C, H, W), the model takes {shape:?}",
                        rows.shape()
                    ),
                ));
            }
            Source::Idx(rows)
        };
        Ok(Self { cols: d, source })
    }

    /// Values per record.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Up to `max_rows` (at least one) further records, or `None` once the file is exhausted.
    pub fn next_chunk(&mut self, max_rows: usize) -> Result<Option<Records>> {
        let max_rows = max_rows.max(1);
        let values = match &mut self.source {
            Source::Csv(r) => r.next_rows(max_rows)?,
            Source::Npy(r) => r.next_rows(max_rows)?,
            Source::Idx(r) => r.next_rows(max_rows)?,
            Source::Images(r) => r.next_rows(max_rows)?,
        };
        Ok((!values.is_empty()).then_some(Records {
            cols: self.cols,
            values,
        }))
    }

    /// Every remaining record.
    pub fn read_all(mut self) -> Result<Records> {
        let mut values = Vec::new();
        while let Some(chunk) = self.next_chunk(usize::MAX)? {
            values.extend(chunk.values);
        }
        Ok(Records {
            cols: self.cols,
            values,
        })
    }
}

/// How many records of `cols` values make a chunk of about `values` values.
pub fn rows_per_chunk(cols: usize, values: usize) -> usize {
    (values / cols.max(1)).max(1)
}

/// CSV lines after the header; blank lines are skipped and line numbers count them.
struct CsvRows {
    path: PathBuf,
    lines: std::io::Lines<BufReader<File>>,
    line_no: usize,
    cells: Cells,
    cols: usize,
    /// The first record, read by `open` to learn the record size.
    first: Option<Vec<f64>>,
}

impl CsvRows {
    fn open(path: &Path, cells: Cells) -> Result<Self> {
        let file = File::open(path).map_err(read_err(path))?;
        let mut rows = Self {
            path: path.into(),
            lines: BufReader::new(file).lines(),
            line_no: 0,
            cells,
            cols: 0,
            first: None,
        };
        let mut header_checked = false;
        while let Some((i, line)) = rows.next_line()? {
            if !header_checked {
                header_checked = true;
                if line.split(',').any(|c| is_header_cell(c, cells)) {
                    continue;
                }
            }
            let rec = rows.parse(i, &line)?;
            rows.cols = rec.len();
            rows.first = Some(rec);
            return Ok(rows);
        }
        Err(format_err(path, "no data rows"))
    }

    /// The next non-blank line and its 1-based number.
    fn next_line(&mut self) -> Result<Option<(usize, String)>> {
        for line in self.lines.by_ref() {
            self.line_no += 1;
            let line = line.map_err(read_err(&self.path))?;
            if !line.trim().is_empty() {
                return Ok(Some((self.line_no, line)));
            }
        }
        Ok(None)
    }

    fn parse(&self, line_no: usize, line: &str) -> Result<Vec<f64>> {
        parse_cells(line, self.cells)
            .map_err(|e| format_err(&self.path, format!("line {line_no}, {e}")))
    }

    fn next_rows(&mut self, max_rows: usize) -> Result<Vec<f64>> {
        let mut values = self.first.take().unwrap_or_default();
        let mut rows = usize::from(!values.is_empty());
        while rows < max_rows {
            let Some((i, line)) = self.next_line()? else {
                break;
            };
            let rec = self.parse(i, &line)?;
            if rec.len() != self.cols {
                return Err(format_err(
                    &self.path,
                    format!("line {i} has {} columns, expected {}", rec.len(), self.cols),
                ));
            }
            values.extend(rec);
            rows += 1;
        }
        Ok(values)
    }
}

/// The rows of a 1-D or 2-D little-endian float32/float64 `.npy` array in C order.
struct NpyRows {
    path: PathBuf,
    reader: BufReader<File>,
    cells: Cells,
    width: usize,
    cols: usize,
    rows_left: usize,
    rows_read: usize,
}

impl NpyRows {
    fn open(path: &Path, cells: Cells) -> Result<Self> {
        let fmt = |reason: &str| format_err(path, reason);
        let mut file = File::open(path).map_err(read_err(path))?;
        let file_len = file.metadata().map_err(read_err(path))?.len();
        let mut prefix = Vec::with_capacity(12);
        (&mut file)
            .take(12)
            .read_to_end(&mut prefix)
            .map_err(read_err(path))?;
        if prefix.len() < 10 || &prefix[..6] != b"\x93NUMPY" {
            return Err(fmt("not an NPY file (bad magic)"));
        }
        let (hlen, hstart) = match prefix[6] {
            1 => (u16::from_le_bytes([prefix[8], prefix[9]]) as usize, 10),
            2 | 3 if prefix.len() >= 12 => (
                u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]) as usize,
                12,
            ),
            _ => return Err(fmt("unsupported NPY version")),
        };
        file.seek(SeekFrom::Start(hstart as u64))
            .map_err(read_err(path))?;
        let mut header = Vec::with_capacity(hlen.min(1 << 16));
        (&mut file)
            .take(hlen as u64)
            .read_to_end(&mut header)
            .map_err(read_err(path))?;
        if header.len() != hlen {
            return Err(fmt("truncated header"));
        }
        let header = String::from_utf8_lossy(&header);
        if header.contains("'fortran_order': True") {
            return Err(fmt("Fortran-ordered arrays are not supported"));
        }
        let width = if header.contains("'<f4'") {
            4
        } else if header.contains("'<f8'") {
            8
        } else {
            return Err(fmt(
                "only little-endian float32 ('<f4') or float64 ('<f8') arrays are supported",
            ));
        };
        let shape_txt = header
            .split("'shape':")
            .nth(1)
            .and_then(|s| s.split(')').next())
            .ok_or_else(|| fmt("no shape in header"))?;
        let dims: Vec<usize> = shape_txt
            .trim_start_matches([' ', '('])
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().map_err(|_| fmt("bad shape in header")))
            .collect::<Result<_>>()?;
        let (rows, cols) = match dims.as_slice() {
            [n] => (*n, 1),
            [n, d] => (*n, *d),
            _ => return Err(fmt("expected a 1-D or 2-D array")),
        };
        let expected = rows
            .checked_mul(cols)
            .and_then(|v| v.checked_mul(width))
            .map(|v| v as u64);
        if expected != Some(file_len - (hstart + hlen) as u64) {
            return Err(fmt(
                "data length does not match the header's shape (truncated?)",
            ));
        }
        if rows == 0 {
            return Err(fmt("no data rows"));
        }
        Ok(Self {
            path: path.into(),
            reader: BufReader::new(file),
            cells,
            width,
            cols,
            rows_left: rows,
            rows_read: 0,
        })
    }

    fn next_rows(&mut self, max_rows: usize) -> Result<Vec<f64>> {
        let rows = max_rows.min(self.rows_left);
        let mut bytes = vec![0u8; rows * self.cols * self.width];
        self.reader
            .read_exact(&mut bytes)
            .map_err(read_err(&self.path))?;
        let values: Vec<f64> = if self.width == 4 {
            bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]) as f64)
                .collect()
        } else {
            bytes
                .chunks_exact(8)
                .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect()
        };
        let cells = self.cells;
        let refused = |v: &f64| !(v.is_finite() || (cells == Cells::Gaps && v.is_nan()));
        if let Some(i) = values.iter().position(refused) {
            let cols = self.cols.max(1);
            return Err(format_err(
                &self.path,
                format!(
                    "row {}, column {}: not a finite number",
                    self.rows_read + i / cols + 1,
                    i % cols + 1
                ),
            ));
        }
        self.rows_left -= rows;
        self.rows_read += rows;
        Ok(values)
    }
}

/// PNG/JPEG files (a folder's, sorted by name, or one file) decoded a chunk of files at a time into
/// the model's image shape; gray images are repeated into three channels for a colour model.
struct ImageFiles {
    files: Vec<PathBuf>,
    next: usize,
    shape: [usize; 3],
}

impl ImageFiles {
    fn open(path: &Path, shape: [usize; 3]) -> Result<Self> {
        let files = if path.is_dir() {
            images::image_files_in(path)?
        } else {
            vec![path.to_path_buf()]
        };
        Ok(Self {
            files,
            next: 0,
            shape,
        })
    }

    fn next_rows(&mut self, max_rows: usize) -> Result<Vec<f64>> {
        let end = self.files.len().min(self.next.saturating_add(max_rows));
        if self.next == end {
            return Ok(vec![]);
        }
        let files = &self.files[self.next..end];
        let set = images::read_image_files(files)?;
        let [c, h, w] = self.shape;
        let pixels = if set.shape == self.shape {
            set.pixels
        } else if set.shape == [1, h, w] && c == 3 {
            set.pixels
                .chunks_exact(h * w)
                .flat_map(|img| img.iter().chain(img).chain(img).copied())
                .collect()
        } else {
            return Err(format_err(
                &files[0],
                format!(
                    "has images of shape {:?} (C, H, W), the model takes {:?}",
                    set.shape, self.shape
                ),
            ));
        };
        self.next = end;
        Ok(pixels)
    }
}
