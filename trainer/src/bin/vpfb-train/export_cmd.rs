use std::path::PathBuf;

use anyhow::{Context, Result};
use candle_core::Device;
use clap::Args;
use vpfb_runtime::ood::Score;
use vpfb_runtime::ModelMeta;
use vpfb_trainer::calibrate::calibrate;
use vpfb_trainer::data::to_model_space;
use vpfb_trainer::export::export_with;
use vpfb_trainer::train::Trainer;

#[derive(Args)]
pub struct ExportArgs {
    /// Run folder written by `vpfb-train fit`.
    #[arg(long)]
    run: PathBuf,
    /// Output model file (.onnx).
    #[arg(long)]
    out: PathBuf,
    /// The anomaly score the model recommends (paper, grad-norm or recon).
    #[arg(long, default_value = "grad-norm")]
    default_score: String,
}

pub fn run(a: ExportArgs) -> Result<()> {
    let default: Score = a
        .default_score
        .parse()
        .map_err(anyhow::Error::msg)
        .context("--default-score")?;
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
    let ema = trainer.ema_params();
    let d = trainer.dataset.dim();
    let val: Vec<f32> = to_model_space(&trainer.normalization, &trainer.dataset.validation(), d)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    let ood = calibrate(&trainer.pg, &ema, &val, default, &trainer.device)
        .context("calibrating OOD scores on the validation split")?;
    meta.ood = Some(ood.clone());
    let report = export_with(&trainer.pg, &ema, &meta, &a.out)
        .with_context(|| format!("exporting to {}", a.out.display()))?;
    println!(
        "wrote {} (step {}, EMA weights; parity vs Candle at batch {:?}: psi {:.1e}, velocity {:.1e}, dpsi_dt {:.1e})",
        a.out.display(),
        trainer.opt.step,
        vpfb_trainer::export::parity_batches(&trainer.pg),
        report.psi,
        report.velocity,
        report.dpsi_dt
    );
    println!(
        "OOD calibration on {} validation records (default score {}):",
        val.len() / d,
        ood.default_score
    );
    for (name, cal) in &ood.scores {
        println!(
            "  {name:<10} 5% false-positive threshold {:.5}",
            cal.threshold
        );
    }
    Ok(())
}
