//! Loading the model a command names.

use std::path::Path;

use anyhow::{Context, Result};
use vpfb_runtime::TractModel;

pub fn load(path: &Path) -> Result<TractModel> {
    TractModel::load(path).with_context(|| format!("loading model {}", path.display()))
}
