//! The OOD flags shared by `export` and `detector`, and the progress and summary printing around
//! the library's OOD export (`vpfb_trainer::export_ood`).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use candle_core::Tensor;
use clap::Args;
use vpfb_runtime::ood::statistics::Anchor;
use vpfb_runtime::ood::{FitOptions, Score};
use vpfb_runtime::ModelMeta;
use vpfb_trainer::export::parity_batches;
use vpfb_trainer::export_ood::{export_with_ood, OodSettings};
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
    /// The library's settings these flags describe.
    pub fn settings(&self) -> Result<OodSettings> {
        let default_score: Score = self.default_score.parse().context("--default-score")?;
        anyhow::ensure!(
            default_score != Score::Detector,
            "--default-score names a single-evaluation score; the detector becomes the default when fitted"
        );
        let detector = if self.no_detector {
            None
        } else {
            let anchor = match self.detector_anchor.as_str() {
                "noise" => Anchor::Noise {
                    seed: self.detector_seed,
                },
                "zero" => Anchor::Zero,
                other => anyhow::bail!("--detector-anchor `{other}`: expected noise or zero"),
            };
            Some(FitOptions {
                times: self.detector_times.clone(),
                anchor,
                max_components: self.detector_components.max(1),
                ..FitOptions::default()
            })
        };
        Ok(OodSettings {
            default_score,
            detector,
            detector_records: self.detector_records,
        })
    }
}

/// Runs the library's OOD export with progress on stderr, then prints what was written.
pub fn finish_export(
    pg: &PotentialGraph,
    params: &HashMap<String, Tensor>,
    meta: ModelMeta,
    val: &[f32],
    detector_records: &[f32],
    a: &DetectorArgs,
    out: &Path,
) -> Result<()> {
    let settings = a.settings()?;
    let d = meta.record_len();
    if let Some(opts) = &settings.detector {
        eprintln!(
            "fitting the OOD detector on {} records ({} evaluations each)",
            (detector_records.len() / d).min(settings.detector_records),
            opts.times.len()
        );
    }
    let started = Instant::now();
    let mut last = Instant::now();
    let mut progress = |done: usize, all: usize| {
        if last.elapsed().as_secs() >= 10 || done == all {
            last = Instant::now();
            eprint!(
                "\r  statistics {done}/{all} records ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
            let _ = std::io::stderr().flush();
        }
    };
    let written = export_with_ood(
        pg,
        params,
        meta,
        val,
        detector_records,
        &settings,
        out,
        &mut progress,
    );
    if settings.detector.is_some() {
        // End the progress line whatever happened, so an error starts a line of its own.
        eprintln!();
    }
    let written = written.with_context(|| format!("exporting to {}", out.display()))?;
    if let Some(det) = &written.detector {
        println!(
            "OOD detector: {} statistics at t = {:?}, {} chosen by {} ({}), 5% false-positive threshold {:.4}",
            det.statistics.len(),
            det.times,
            det.selection.chosen,
            det.selection.rule,
            det.selection.candidates_summary(),
            det.calibration.threshold
        );
    }
    let report = &written.parity;
    println!(
        "wrote {} (format {}; parity vs Candle at batch {:?}: psi {:.1e}, velocity {:.1e}, dpsi_dt {:.1e})",
        out.display(),
        written.meta.format_version,
        parity_batches(pg),
        report.psi,
        report.velocity,
        report.dpsi_dt
    );
    println!(
        "OOD calibration on {} validation records (default score {}):",
        written.calibration_records, written.calibration.default_score
    );
    for (name, cal) in &written.calibration.scores {
        println!(
            "  {name:<10} 5% false-positive threshold {:.5}",
            cal.threshold
        );
    }
    Ok(())
}
