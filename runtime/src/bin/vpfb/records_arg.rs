//! Where records come from and go to: CSV/NPY tables for every model, and for image models also
//! IDX files, folders of PNG/JPEG images, PNG grids and folders of PNGs.

use std::path::Path;

use anyhow::{bail, Result};
use vpfb_runtime::images;
use vpfb_runtime::io::{read_records, write_records};
use vpfb_runtime::ModelMeta;

use super::solver_arg::header;

/// `[C, H, W]` when the model's records are images.
pub fn image_shape(meta: &ModelMeta) -> Option<[usize; 3]> {
    match meta.data_shape.as_slice() {
        &[c, h, w] => Some([c, h, w]),
        _ => None,
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

fn is_image_input(path: &Path) -> bool {
    path.is_dir()
        || images::is_idx_path(path)
        || matches!(extension(path).as_str(), "png" | "jpg" | "jpeg")
}

/// Records read from an input file, in raw units, row-major.
pub struct Input {
    pub values: Vec<f64>,
}

/// Reads records for `meta`'s model: CSV/NPY always; IDX files, image folders and single image
/// files for image models. The record size must match the model's.
pub fn read_input(path: &Path, meta: &ModelMeta) -> Result<Input> {
    let d = meta.record_len();
    if is_image_input(path) {
        let Some(shape) = image_shape(meta) else {
            bail!(
                "{} holds images, but the model takes records of shape {:?}",
                path.display(),
                meta.data_shape
            );
        };
        let set = images::read_images(path)?;
        if set.shape != shape {
            bail!(
                "{} has images of shape {:?} (C, H, W), the model takes {:?}",
                path.display(),
                set.shape,
                shape
            );
        }
        return Ok(Input { values: set.pixels });
    }
    let records = read_records(path)?;
    if records.cols != d {
        bail!(
            "{} has {} columns, the model takes {d}",
            path.display(),
            records.cols
        );
    }
    Ok(Input {
        values: records.values,
    })
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
