use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use vpfb_runtime::contract::FORMAT_VERSION;
use vpfb_runtime::ModelFile;
use vpfb_trainer::data::{to_model_space, DataSpec, Dataset};
use vpfb_trainer::model_import::potential_from_file;

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
    let training = file.meta.training.clone().unwrap_or_default();
    let (records, source) = match &a.data {
        Some(spec) => {
            let spec: DataSpec = spec.parse().map_err(anyhow::Error::msg).context("--data")?;
            let set = Dataset::load(&spec, 0).with_context(|| format!("loading {spec}"))?;
            let mut all = set.validation();
            if let Dataset::Table { train, .. } = &set {
                all.extend(train);
            }
            (all, format!("every record of {spec}"))
        }
        None => {
            let spec = training
                .get("dataset")
                .and_then(|v| v.as_str())
                .context("the file records no training data set; pass --data")?;
            let seed = training
                .get("seed")
                .and_then(|v| v.as_u64())
                .context("the file records no training seed; pass --data")?;
            let parsed: DataSpec = spec
                .parse()
                .map_err(anyhow::Error::msg)
                .with_context(|| format!("the file's training data set `{spec}`"))?;
            let set = Dataset::load(&parsed, seed).with_context(|| format!("loading {spec}"))?;
            (
                set.validation(),
                format!("the validation split of {spec} (seed {seed})"),
            )
        }
    };
    let d = file.meta.record_len();
    anyhow::ensure!(
        records.len() % d == 0 && !records.is_empty(),
        "the data has records of another size than the model's {d} values"
    );
    println!("refitting on {} records: {source}", records.len() / d);
    let val: Vec<f32> = to_model_space(&file.meta.normalization, &records, d)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let mut meta = file.meta.clone();
    meta.format_version = FORMAT_VERSION;
    finish_export(&pg, &params, meta, &val, &val, &a.detector, &a.out)
}
