//! The OOD part of every export (from a run, or re-fitting an existing file): calibrate the
//! single-evaluation scores, fit the multi-time detector on in-distribution records, put both in
//! the metadata, then write the file and verify it through the runtime.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use vpfb_runtime::ood::{Detector, FitOptions, Score};
use vpfb_runtime::{ModelMeta, OodCalibration};

use crate::calibrate::calibrate;
use crate::data::{to_model_space, Dataset};
use crate::detector::fit_detector;
use crate::export::{export_with, ExportError, ParityReport};
use crate::nn::PotentialGraph;
use crate::train::Trainer;

/// Fewest validation records the detector is fitted on alone; a smaller table's validation split
/// is joined by its training rows.
pub const MIN_DETECTOR_RECORDS: usize = 200;

/// How an export calibrates and fits its OOD scores.
#[derive(Clone, Debug)]
pub struct OodSettings {
    /// The single-evaluation score recorded as the default when no detector is fitted.
    pub default_score: Score,
    /// The detector's options, or `None` for a file without one.
    pub detector: Option<FitOptions>,
    /// At most this many records fit the detector.
    pub detector_records: usize,
}

impl Default for OodSettings {
    fn default() -> Self {
        Self {
            default_score: Score::GradNorm,
            detector: Some(FitOptions::default()),
            detector_records: 10_000,
        }
    }
}

/// What [`export_with_ood`] wrote.
#[derive(Clone, Debug)]
pub struct OodExport {
    /// The metadata written (with its calibration and detector).
    pub meta: ModelMeta,
    /// The single-evaluation calibration (also in `meta`).
    pub calibration: OodCalibration,
    /// The fitted detector, when one was asked for (also in `meta`).
    pub detector: Option<Detector>,
    /// Validation records the calibration used.
    pub calibration_records: usize,
    /// tract vs Candle on the written file.
    pub parity: ParityReport,
}

/// Calibrates on model-space validation records `val`, fits the detector on `detector_records`
/// (model space), writes `out` and verifies it. `progress(done, total)` follows the detector's
/// statistics pass.
#[allow(clippy::too_many_arguments)]
pub fn export_with_ood(
    pg: &PotentialGraph,
    params: &HashMap<String, Tensor>,
    mut meta: ModelMeta,
    val: &[f32],
    detector_records: &[f32],
    settings: &OodSettings,
    out: &Path,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<OodExport, ExportError> {
    if settings.default_score == Score::Detector {
        return Err(ExportError::Settings(
            "the fallback default score must be a single-evaluation score; the detector becomes \
             the default when it is fitted"
                .into(),
        ));
    }
    let d = meta.record_len();
    let mut calibration = calibrate(pg, params, val, settings.default_score, &Device::Cpu)
        .map_err(ExportError::Calibration)?;
    let detector = match &settings.detector {
        Some(opts) => {
            let det = fit_detector(
                pg,
                params,
                &meta,
                detector_records,
                settings.detector_records,
                opts,
                progress,
            )
            .map_err(|e| ExportError::DetectorFit(Box::new(e)))?;
            calibration.default_score = Score::Detector.name().to_string();
            Some(det)
        }
        None => None,
    };
    meta.detector = detector.clone();
    meta.ood = Some(calibration.clone());
    let parity = export_with(pg, params, &meta, out)?;
    Ok(OodExport {
        meta,
        calibration,
        detector,
        calibration_records: val.len() / d.max(1),
        parity,
    })
}

/// The metadata of an export of `trainer`'s run: data shape, normalisation, architecture, and
/// what the training was (data set, steps, batch, seed, loss, optimiser; EMA weights).
pub fn run_metadata(trainer: &Trainer) -> ModelMeta {
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
    meta
}

/// The in-distribution records of a run, in model space: the validation split (calibration) and
/// the detector's fitting records — the validation split, joined by the training rows when a
/// table's split has fewer than [`MIN_DETECTOR_RECORDS`] (the flag says whether it was).
pub fn run_records(trainer: &Trainer) -> (Vec<f32>, Vec<f32>, bool) {
    let d = trainer.dataset.dim();
    let model_space = |raw: &[f64]| -> Vec<f32> {
        to_model_space(&trainer.normalization, raw, d)
            .into_iter()
            .map(|v| v as f32)
            .collect()
    };
    let val = model_space(&trainer.dataset.validation());
    let mut detector_records = val.clone();
    let mut with_train = false;
    if let Dataset::Table { train, .. } = &trainer.dataset {
        if val.len() / d < MIN_DETECTOR_RECORDS {
            detector_records.extend(model_space(train));
            with_train = true;
        }
    }
    (val, detector_records, with_train)
}
