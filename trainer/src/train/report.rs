//! After training: plots of the run and the quality of samples drawn by integrating the flow.

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::Tensor;
use rand::{rngs::StdRng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};
use vpfb_runtime::solver::{integrate, Solver, T_END, T_START};

use super::{FitError, Trainer, LOSS_CSV};
use crate::candle_field::CandleField;
use crate::data::{to_model_space, to_raw_space, Dataset};
use crate::metrics::{escaped, sliced_wasserstein};
use crate::plot;

/// Sliced-Wasserstein distances of flow samples to fresh true samples.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SampleQuality {
    pub samples: usize,
    pub solver: String,
    /// SW₂(model samples, true samples): raw units for generators, model space for tables.
    pub swd: f64,
    /// SW₂ between two independent true samples of the same size (for tables: training rows against
    /// the validation rows): the best achievable.
    pub swd_floor: f64,
    /// swd / swd_floor.
    pub ratio: f64,
    /// Samples farther from the data than three times its own reach ([`escaped`]): a few of them
    /// can make the ratio large on their own. Absent from metrics written before it existed.
    #[serde(default)]
    pub escaped: usize,
}

/// Draws `n` samples (raw units) from a potential by RK4 with `steps` steps, from seeded noise.
pub fn draw_samples(
    trainer: &Trainer,
    params: &HashMap<String, Tensor>,
    n: usize,
    steps: usize,
    seed: u64,
) -> Result<Vec<f64>, FitError> {
    let model = draw_model_samples(trainer, params, n, steps, seed)?;
    Ok(to_raw_space(
        &trainer.normalization,
        &model,
        trainer.dataset.dim(),
    ))
}

/// [`draw_samples`] left in the model's normalised space.
fn draw_model_samples(
    trainer: &Trainer,
    params: &HashMap<String, Tensor>,
    n: usize,
    steps: usize,
    seed: u64,
) -> Result<Vec<f64>, FitError> {
    let d = trainer.dataset.dim();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut x: Vec<f32> = (0..n * d)
        .map(|_| StandardNormal.sample(&mut rng))
        .collect();
    let field = CandleField {
        pg: &trainer.pg,
        params: params.clone(),
        device: trainer.device.clone(),
    };
    integrate(&field, &mut x, Solver::Rk4 { steps }, T_START, T_END)
        .map_err(|e| FitError::Invalid(e.to_string()))?;
    Ok(x.into_iter().map(f64::from).collect())
}

/// The seed of the noise that sample-quality draws start from.
const QUALITY_SEED: u64 = 0x5a3e;

/// Sample quality: for generator data against fresh true samples (raw units); for tables against the
/// held-out validation rows, with as many training rows giving the floor, both in the standardised model
/// space so that no column dominates by its units. None for images, where distances between raw pixel
/// vectors say little and drawing a validation-sized sample is slow.
pub fn sample_quality(
    trainer: &Trainer,
    params: &HashMap<String, Tensor>,
    n: usize,
    steps: usize,
) -> Result<Option<SampleQuality>, FitError> {
    let d = trainer.dataset.dim();
    let (samples, truth, truth2, n) = match &trainer.dataset {
        Dataset::Generator(toy) => (
            draw_samples(trainer, params, n, steps, QUALITY_SEED)?,
            toy.sample(n, &mut StdRng::seed_from_u64(0x7e57)),
            toy.sample(n, &mut StdRng::seed_from_u64(0x7e58)),
            n,
        ),
        Dataset::Table { image: Some(_), .. } => return Ok(None),
        Dataset::Table { train, val, .. } => {
            let n = n.min(val.len() / d).min(train.len() / d);
            let model = |raw: &[f64]| to_model_space(&trainer.normalization, raw, d);
            (
                draw_model_samples(trainer, params, n, steps, QUALITY_SEED)?,
                model(&val[..n * d]),
                model(&train[..n * d]),
                n,
            )
        }
    };
    let swd = sliced_wasserstein(&samples, &truth, d, 256);
    let floor = sliced_wasserstein(&truth2, &truth, d, 256);
    Ok(Some(SampleQuality {
        samples: n,
        solver: format!("rk4, {steps} steps"),
        swd,
        swd_floor: floor,
        ratio: swd / floor,
        escaped: escaped(&samples, &truth, d),
    }))
}

/// Writes `loss.png` and, for 2-D data, `psi.png` (ψ(x, 1) of the EMA weights); returns the paths.
pub fn write_plots(trainer: &Trainer) -> Result<Vec<PathBuf>, FitError> {
    let mut written = vec![];
    let csv = trainer.dir.join(LOSS_CSV);
    let text = std::fs::read_to_string(&csv).map_err(|source| FitError::Io {
        path: csv.clone(),
        source,
    })?;
    let points: Vec<(f64, f64)> = text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let mut it = l.split(',');
            Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
        })
        .collect();
    let loss_png = trainer.dir.join("loss.png");
    plot::loss_curve(&points, &loss_png)
        .map_err(|e| FitError::Invalid(format!("writing {}: {e}", loss_png.display())))?;
    written.push(loss_png);
    if trainer.dataset.dim() == 2 {
        let val = trainer.dataset.validation();
        let (mut lo, mut hi) = ((f64::MAX, f64::MAX), (f64::MIN, f64::MIN));
        for p in val.chunks(2) {
            lo = (lo.0.min(p[0]), lo.1.min(p[1]));
            hi = (hi.0.max(p[0]), hi.1.max(p[1]));
        }
        // A square window around the data with a 15 % margin.
        let (cx, cy) = ((lo.0 + hi.0) / 2.0, (lo.1 + hi.1) / 2.0);
        let half = 0.5 * 1.3 * (hi.0 - lo.0).max(hi.1 - lo.1);
        let (lo, hi) = ((cx - half, cy - half), (cx + half, cy + half));
        let res = 256;
        let mut raw = Vec::with_capacity(res * res * 2);
        for r in 0..res {
            for c in 0..res {
                raw.push(lo.0 + (c as f64 + 0.5) / res as f64 * (hi.0 - lo.0));
                raw.push(hi.1 - (r as f64 + 0.5) / res as f64 * (hi.1 - lo.1));
            }
        }
        let x: Vec<f32> = to_model_space(&trainer.normalization, &raw, 2)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let field = CandleField {
            pg: &trainer.pg,
            params: trainer.ema_params(),
            device: trainer.device.clone(),
        };
        let mut psi = Vec::with_capacity(res * res);
        for chunk in x.chunks(8192) {
            let [p, _, _] = field.evaluate(chunk, &vec![1.0; chunk.len() / 2])?;
            psi.extend(p.into_iter().map(f64::from));
        }
        let points: Vec<(f64, f64)> = val.chunks(2).take(1000).map(|p| (p[0], p[1])).collect();
        let psi_png = trainer.dir.join("psi.png");
        plot::heatmap(&psi, res, lo, hi, &points, &psi_png)
            .map_err(|e| FitError::Invalid(format!("writing {}: {e}", psi_png.display())))?;
        written.push(psi_png);
    }
    Ok(written)
}
