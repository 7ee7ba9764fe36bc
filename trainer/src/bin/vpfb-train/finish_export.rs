//! The last part of every export (`export` from a run, `detector` from an existing file): calibrate
//! the single-evaluation scores, fit the multi-time detector on held-out in-distribution records,
//! write the file and verify it through the runtime.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use clap::Args;
use vpfb_runtime::ood::statistics::Anchor;
use vpfb_runtime::ood::{FitOptions, Score};
use vpfb_runtime::ModelMeta;
use vpfb_trainer::calibrate::calibrate;
use vpfb_trainer::detector::fit_detector;
use vpfb_trainer::export::{export_with, parity_batches};
use vpfb_trainer::nn::PotentialGraph;

/// Options of the OOD calibration and the multi-time detector.
#[derive(Args)]
pub struct DetectorArgs {
    /// Single-evaluation score recorded as the fallback default when no detector is fitted
    /// (paper, grad-norm or recon).
    #[arg(long, default_value = "grad-norm")]
    default_score: String,
    /// Do not fit the multi-time detector (the file keeps the single-evaluation scores only).
    #[arg(long)]
    no_detector: bool,
    /// Path times of the detector's statistics, comma-separated in (0, 1]; each costs one model
    /// evaluation per scored record.
    #[arg(long, value_delimiter = ',', default_value = "0.3,0.5,0.7,0.9,1")]
    detector_times: Vec<f64>,
    /// What the path starts from besides the record: `noise` (one fixed draw, seeded by
    /// --detector-seed) or `zero`.
    #[arg(long, default_value = "noise")]
    detector_anchor: String,
    /// Seed of the anchor's noise draw.
    #[arg(long, default_value_t = 0x5eed)]
    detector_seed: u64,
    /// Largest Gaussian mixture the detector may choose (1 = one shrinkage Gaussian).
    #[arg(long, default_value_t = 3)]
    detector_components: usize,
    /// Validation records the detector is fitted on (at most).
    #[arg(long, default_value_t = 10_000)]
    detector_records: usize,
}

impl DetectorArgs {
    fn options(&self) -> Result<FitOptions> {
        let anchor = match self.detector_anchor.as_str() {
            "noise" => Anchor::Noise {
                seed: self.detector_seed,
            },
            "zero" => Anchor::Zero,
            other => anyhow::bail!("--detector-anchor `{other}`: expected noise or zero"),
        };
        Ok(FitOptions {
            times: self.detector_times.clone(),
            anchor,
            max_components: self.detector_components.max(1),
            ..FitOptions::default()
        })
    }
}

/// Calibrates the single-evaluation scores on model-space validation records `val`, fits the
/// detector on `detector_records` (model space), writes `out` and verifies it; prints a summary.
pub fn finish_export(
    pg: &PotentialGraph,
    params: &HashMap<String, Tensor>,
    mut meta: ModelMeta,
    val: &[f32],
    detector_records: &[f32],
    a: &DetectorArgs,
    out: &Path,
) -> Result<()> {
    let default: Score = a.default_score.parse().context("--default-score")?;
    anyhow::ensure!(
        default != Score::Detector,
        "--default-score names a single-evaluation score; the detector becomes the default when fitted"
    );
    let d = meta.record_len();
    let mut ood = calibrate(pg, params, val, default, &Device::Cpu)
        .context("calibrating OOD scores on the validation split")?;
    if !a.no_detector {
        let opts = a.options()?;
        let n = (detector_records.len() / d).min(a.detector_records);
        let started = Instant::now();
        eprintln!(
            "fitting the OOD detector on {n} validation records ({} evaluations each)",
            opts.times.len()
        );
        let mut last = Instant::now();
        let det = fit_detector(
            pg,
            params,
            &meta,
            detector_records,
            a.detector_records,
            &opts,
            &mut |done, all| {
                if last.elapsed().as_secs() >= 10 || done == all {
                    last = Instant::now();
                    eprint!(
                        "\r  statistics {done}/{all} records ({:.0} s)",
                        started.elapsed().as_secs_f64()
                    );
                    let _ = std::io::stderr().flush();
                }
            },
        );
        // End the progress line whatever happened, so an error starts a line of its own.
        eprintln!();
        let det = det.context("fitting the OOD detector")?;
        println!(
            "OOD detector: {} statistics at t = {:?}, {} chosen by {} ({}), 5% false-positive threshold {:.4}",
            det.statistics.len(),
            det.times,
            det.selection.chosen,
            det.selection.rule,
            det.selection.candidates_summary(),
            det.calibration.threshold
        );
        ood.default_score = Score::Detector.name().to_string();
        meta.detector = Some(det);
    }
    meta.ood = Some(ood.clone());
    let report = export_with(pg, params, &meta, out)
        .with_context(|| format!("exporting to {}", out.display()))?;
    println!(
        "wrote {} (format {}; parity vs Candle at batch {:?}: psi {:.1e}, velocity {:.1e}, dpsi_dt {:.1e})",
        out.display(),
        meta.format_version,
        parity_batches(pg),
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
