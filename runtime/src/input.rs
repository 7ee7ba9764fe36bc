//! The records a model takes, from whichever file holds them: CSV or NPY tables for every model,
//! and for image models also IDX files, folders of PNG/JPEG images and single image files.

use std::path::Path;

use crate::io::{Cells, Records};
use crate::record_stream::RecordStream;
use crate::{images, ModelMeta, Result};

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Whether `path` holds images (a folder, an IDX file, a PNG or JPEG) rather than a table.
pub fn is_image_input(path: &Path) -> bool {
    path.is_dir()
        || images::is_idx_path(path)
        || matches!(extension(path).as_str(), "png" | "jpg" | "jpeg")
}

/// Reads raw records for a model described by `meta`; the record size (or image shape) must be the
/// model's.
pub fn read_for_model(path: &Path, meta: &ModelMeta) -> Result<Records> {
    read_for_model_cells(path, meta, Cells::Finite)
}

/// [`read_for_model`] with tables accepting the cells `cells` allows (images have no gaps).
pub fn read_for_model_cells(path: &Path, meta: &ModelMeta, cells: Cells) -> Result<Records> {
    RecordStream::open_for_model(path, meta, cells)?.read_all()
}
