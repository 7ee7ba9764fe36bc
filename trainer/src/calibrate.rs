//! OOD calibration on held-out in-distribution data: quantiles of every anomaly score and the default
//! threshold (the 5 % false-positive point), stored in the model's metadata.

use std::collections::{BTreeMap, HashMap};

use candle_core::{Device, Tensor};
use vpfb_runtime::ood::{quantile, Score, CALIBRATION_LEVELS, DEFAULT_FPR};
use vpfb_runtime::{OodCalibration, ScoreCalibration};

use crate::candle_field::CandleField;
use crate::nn::PotentialGraph;

/// Every score of the model on `x` (model space, `[n, d]` row-major) at t = 1.
pub fn scores(
    pg: &PotentialGraph,
    params: &HashMap<String, Tensor>,
    x: &[f32],
    device: &Device,
) -> candle_core::Result<BTreeMap<&'static str, Vec<f64>>> {
    let d: usize = pg.data_shape.iter().product();
    let field = CandleField {
        pg,
        params: params.clone(),
        device: device.clone(),
    };
    let mut out: BTreeMap<&'static str, Vec<f64>> =
        Score::SINGLE.iter().map(|s| (s.name(), vec![])).collect();
    // About 64 Ki values per chunk: 1024 rows of small vectors, ~80 images of 28×28.
    let rows = (65_536 / d.max(1)).clamp(1, 1024);
    for chunk in x.chunks(rows * d) {
        let n = chunk.len() / d;
        let [psi, vel, _] = field.evaluate(chunk, &vec![1.0; n])?;
        for s in Score::SINGLE {
            out.get_mut(s.name()).expect("all scores").extend(
                s.compute(chunk, &psi, &vel, d)
                    .expect("single-evaluation score"),
            );
        }
    }
    Ok(out)
}

/// Calibration of every score on validation data, with `default` as the recommended score.
pub fn calibrate(
    pg: &PotentialGraph,
    params: &HashMap<String, Tensor>,
    val: &[f32],
    default: Score,
    device: &Device,
) -> candle_core::Result<OodCalibration> {
    let all = scores(pg, params, val, device)?;
    let scores = all
        .into_iter()
        .map(|(name, mut v)| {
            v.sort_by(f64::total_cmp);
            let quantiles = CALIBRATION_LEVELS
                .iter()
                .map(|&q| (q, quantile(&v, q)))
                .collect();
            (
                name.to_string(),
                ScoreCalibration {
                    quantiles,
                    threshold: quantile(&v, 1.0 - DEFAULT_FPR),
                },
            )
        })
        .collect();
    Ok(OodCalibration {
        default_score: default.name().to_string(),
        scores,
    })
}
