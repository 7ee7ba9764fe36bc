use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use vpfb_runtime::contract::FORMAT_VERSION;
use vpfb_runtime::ModelFile;
use vpfb_trainer::data::{to_model_space, DataSpec};
use vpfb_trainer::model_import::{potential_from_file, refit_records};

use super::finish_export::{finish_export, DetectorArgs};

#[derive(Args)]
pub struct DetectorCmdArgs {
    /// Existing model file (any format version this vpfb reads).
    #[arg(long)]
    model: PathBuf,
    /// Output model file (may be the same path: it is replaced atomically once verified).
    #[arg(long)]
    out: PathBuf,
    /// In-distribution data to fit on (every record is used). Default: the validation split of the
    /// data set and seed recorded in the file's training metadata, as `fit` held it out.
    #[arg(long)]
    data: Option<String>,
    #[command(flatten)]
    detector: DetectorArgs,
}

/// Rebuilds the potential of an existing file from its metadata and weights, and writes it again in
/// the current format: the `hvp` output, a re-done OOD calibration and a fitted detector.
pub fn run(a: DetectorCmdArgs) -> Result<()> {
    let file =
        ModelFile::load(&a.model).with_context(|| format!("loading {}", a.model.display()))?;
    let (_, pg, params) = potential_from_file(&file)
        .with_context(|| format!("rebuilding the potential of {}", a.model.display()))?;
    let spec: Option<DataSpec> = a
        .data
        .as_deref()
        .map(str::parse)
        .transpose()
        .context("--data")?;
    let (records, source) = refit_records(&file, spec.as_ref()).with_context(|| {
        format!(
            "the records to fit {} on (--data chooses them)",
            a.model.display()
        )
    })?;
    let d = file.meta.record_len();
    println!("refitting on {} records: {source}", records.len() / d);
    let val: Vec<f32> = to_model_space(&file.meta.normalization, &records, d)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let mut meta = file.meta.clone();
    meta.format_version = FORMAT_VERSION;
    finish_export(&pg, &params, meta, &val, &val, &a.detector, &a.out)
}
