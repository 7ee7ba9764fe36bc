use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::Device;
use clap::Args;
use vpfb_trainer::export_ood::{run_metadata, run_records, MIN_DETECTOR_RECORDS};
use vpfb_trainer::train::Trainer;

use super::finish_export::{finish_export, DetectorArgs};

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
    let meta = run_metadata(&trainer);
    let (val, detector_records, with_train) = run_records(&trainer);
    if with_train {
        println!(
            "the validation split has {} records (< {MIN_DETECTOR_RECORDS}): the detector is fitted on the training records too",
            val.len() / trainer.dataset.dim()
        );
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
