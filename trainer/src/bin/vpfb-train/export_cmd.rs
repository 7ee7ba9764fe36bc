use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::Device;
use clap::Args;
use vpfb_runtime::ModelMeta;
use vpfb_trainer::data::{to_model_space, Dataset};
use vpfb_trainer::train::Trainer;

use super::finish_export::{finish_export, DetectorArgs};

/// Fewest validation records the detector is fitted on alone.
const MIN_DETECTOR_RECORDS: usize = 200;

#[derive(Args)]
pub struct ExportArgs {
    /// Run folder written by `vpfb-train fit`.
    #[arg(long)]
    run: PathBuf,
    /// Output model file (.onnx).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    detector: DetectorArgs,
}

pub fn run(a: ExportArgs) -> Result<()> {
    let trainer = Trainer::resume(&a.run, None, Device::Cpu)
        .with_context(|| format!("loading the run in {}", a.run.display()))?;
    let net = trainer.config.arch.network();
    let mut meta = ModelMeta::new(
        net.data_shape(),
        trainer.normalization.clone(),
        net.describe(),
    );
    meta.training = Some(serde_json::json!({
        "dataset": trainer.config.data.to_string(),
        "steps": trainer.opt.step,
        "batch": trainer.config.batch,
        "seed": trainer.config.seed,
        "loss": trainer.config.loss,
        "optim": trainer.config.optim,
        "weights": "ema",
    }));
    let d = trainer.dataset.dim();
    let model_space = |raw: &[f64]| -> Vec<f32> {
        to_model_space(&trainer.normalization, raw, d)
            .into_iter()
            .map(|v| v as f32)
            .collect()
    };
    let val = model_space(&trainer.dataset.validation());
    // A detector over a few dozen statistics needs a few hundred records; a small table's
    // validation split has fewer, so the detector then also sees the training rows.
    let mut detector_records = val.clone();
    if let Dataset::Table { train, .. } = &trainer.dataset {
        if val.len() / d < MIN_DETECTOR_RECORDS {
            detector_records.extend(model_space(train));
            println!(
                "the validation split has {} records (< {MIN_DETECTOR_RECORDS}): the detector is fitted on the training records too",
                val.len() / d
            );
        }
    }
    println!(
        "exporting step {} of {} (EMA weights)",
        trainer.opt.step,
        a.run.display()
    );
    finish_export(
        &trainer.pg,
        &trainer.ema_params(),
        meta,
        &val,
        &detector_records,
        &a.detector,
        &a.out,
    )
}
