//! Where records come from (the library's readers) and go to: CSV/NPY tables for every model, and
//! for image models also PNG grids and folders of PNGs.

use std::path::Path;

use anyhow::{bail, Result};
use vpfb_runtime::images;
use vpfb_runtime::input::read_for_model;
use vpfb_runtime::io::write_records;
use vpfb_runtime::{ModelMeta, Records};

use super::solver_arg::header;

/// `[C, H, W]` when the model's records are images.
pub fn image_shape(meta: &ModelMeta) -> Option<[usize; 3]> {
    meta.image_shape()
}

/// Reads the records `path` holds for `meta`'s model (tables, or images for image models).
pub fn read_input(path: &Path, meta: &ModelMeta) -> Result<Records> {
    Ok(read_for_model(path, meta)?)
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Parses `RxC` (or `R×C`) into rows and columns.
pub fn parse_grid(s: &str) -> Result<(usize, usize), String> {
    let (r, c) = s
        .split_once(['x', 'X', '×'])
        .ok_or_else(|| format!("`{s}` is not ROWSxCOLS (e.g. 8x8)"))?;
    let parse = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0);
    match (parse(r), parse(c)) {
        (Some(r), Some(c)) => Ok((r, c)),
        _ => Err(format!("`{s}`: rows and columns must be positive integers")),
    }
}

/// How an output path is written.
#[derive(Debug, PartialEq)]
pub enum OutputKind {
    /// CSV or NPY table.
    Table,
    /// One PNG with all records as tiles.
    Grid,
    /// A folder with one PNG per record.
    Folder,
}

/// Decides the output form from the path: `.png` → grid, an existing folder or a path ending in
/// `/` or with no extension → folder of PNGs (image models), otherwise a CSV/NPY table.
pub fn output_kind(path: &Path, meta: &ModelMeta) -> Result<OutputKind> {
    let ext = extension(path);
    let dir_like = path.is_dir() || path.to_string_lossy().ends_with('/') || ext.is_empty();
    let is_image = image_shape(meta).is_some();
    match (ext.as_str(), dir_like, is_image) {
        ("png", _, true) => Ok(OutputKind::Grid),
        (_, true, true) => Ok(OutputKind::Folder),
        ("png", _, false) | (_, true, false) => bail!(
            "{}: image output needs an image model; this model's records have shape {:?} (write .csv or .npy)",
            path.display(),
            meta.data_shape
        ),
        _ => Ok(OutputKind::Table),
    }
}

/// Writes `values` (raw units) to `path` in the form [`output_kind`] picks; `grid` fixes the
/// tile layout of a PNG grid (default: near-square). Returns a description for the log line.
pub fn write_output(
    path: &Path,
    meta: &ModelMeta,
    values: &[f64],
    grid: Option<(usize, usize)>,
) -> Result<String> {
    let d = meta.record_len();
    let n = values.len() / d.max(1);
    match output_kind(path, meta)? {
        OutputKind::Table => {
            write_records(path, &header(d), d, values)?;
            Ok(format!("{}", path.display()))
        }
        OutputKind::Grid => {
            let shape = image_shape(meta).expect("output_kind checked");
            let (rows, cols) = grid.unwrap_or_else(|| images::square_grid(n));
            if rows * cols < n {
                bail!(
                    "--grid {rows}x{cols} has {} tiles for {n} images",
                    rows * cols
                );
            }
            images::write_grid(path, values, shape, rows, cols)?;
            Ok(format!("{} ({rows}×{cols} grid)", path.display()))
        }
        OutputKind::Folder => {
            let shape = image_shape(meta).expect("output_kind checked");
            let paths = images::write_image_dir(path, "sample_", values, shape)?;
            Ok(format!("{} ({} PNG files)", path.display(), paths.len()))
        }
    }
}
